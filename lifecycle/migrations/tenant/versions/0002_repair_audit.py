"""repair audit: the authoritative before/after of every guarded repair row

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 10:10:00

Written in the same transaction as the repair it records; one terminal outcome per
(plan, row) through ``ux_repair_audit_plan_row``.
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0002'
down_revision: Union[str, Sequence[str], None] = '0001'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('repair_audit',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('plan_id', sa.String(length=32), nullable=False),
    sa.Column('row_seq', sa.Integer(), nullable=False),
    sa.Column('check_id', sa.String(length=64), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('row_key', sa.JSON(), nullable=False),
    sa.Column('before', sa.JSON(), nullable=True),
    sa.Column('after', sa.JSON(), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.CheckConstraint("outcome IN ('applied', 'skipped')", name=op.f('ck_repair_audit_outcome')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_repair_audit'))
    )
    with op.batch_alter_table('repair_audit', schema=None) as batch_op:
        batch_op.create_index('ux_repair_audit_plan_row', ['plan_id', 'row_seq'], unique=True)


def downgrade() -> None:
    with op.batch_alter_table('repair_audit', schema=None) as batch_op:
        batch_op.drop_index('ux_repair_audit_plan_row')
    op.drop_table('repair_audit')
