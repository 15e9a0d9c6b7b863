"""repairs: plans, approvals and the copy of the tenants' repair audit

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 10:10:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0003'
down_revision: Union[str, Sequence[str], None] = '0002'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

_NOW = sa.text('(CURRENT_TIMESTAMP)')


def upgrade() -> None:
    op.create_table('repair_plan',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('tenant_code', sa.String(length=32), nullable=False),
    sa.Column('checks', sa.JSON(), nullable=False),
    sa.Column('rows', sa.JSON(), nullable=False),
    sa.Column('guidance', sa.JSON(), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.Column('row_cap', sa.Integer(), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=_NOW, nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_repair_plan'))
    )
    with op.batch_alter_table('repair_plan', schema=None) as batch_op:
        batch_op.create_index('ix_repair_plan_tenant_code', ['tenant_code'], unique=False)
    op.create_table('repair_approval',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('plan_id', sa.String(length=32), nullable=False),
    sa.Column('plan_hash', sa.String(length=64), nullable=False),
    sa.Column('approved_by', sa.String(length=64), nullable=False),
    sa.Column('approved_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=_NOW, nullable=False),
    sa.ForeignKeyConstraint(['plan_id'], ['repair_plan.id'], name=op.f('fk_repair_approval_plan_id_repair_plan')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_repair_approval'))
    )
    with op.batch_alter_table('repair_approval', schema=None) as batch_op:
        batch_op.create_index('ix_repair_approval_plan_id', ['plan_id'], unique=False)
    op.create_table('repair_audit',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('tenant_code', sa.String(length=32), nullable=False),
    sa.Column('tenant_audit_id', sa.Integer(), nullable=False),
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
    sa.Column('applied_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=_NOW, nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_repair_audit')),
    sa.UniqueConstraint('tenant_code', 'tenant_audit_id', name=op.f('uq_repair_audit_tenant_code_tenant_audit_id'))
    )
    with op.batch_alter_table('repair_audit', schema=None) as batch_op:
        batch_op.create_index('ix_repair_audit_plan_id', ['plan_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('repair_audit', schema=None) as batch_op:
        batch_op.drop_index('ix_repair_audit_plan_id')
    op.drop_table('repair_audit')
    with op.batch_alter_table('repair_approval', schema=None) as batch_op:
        batch_op.drop_index('ix_repair_approval_plan_id')
    op.drop_table('repair_approval')
    with op.batch_alter_table('repair_plan', schema=None) as batch_op:
        batch_op.drop_index('ix_repair_plan_tenant_code')
    op.drop_table('repair_plan')
