"""serial_event_receipt: what the outbox relay delivered to core, and how often

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 09:05:00

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0002'
down_revision: Union[str, Sequence[str], None] = '0001'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('serial_event_receipt',
    sa.Column('event_id', sa.String(length=36), nullable=False),
    sa.Column('tenant_code', sa.String(length=32), nullable=False),
    sa.Column('serial_code', sa.String(length=96), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('deliveries', sa.Integer(), server_default='1', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.CheckConstraint('deliveries > 0', name=op.f('ck_serial_event_receipt_deliveries_positive')),
    sa.PrimaryKeyConstraint('event_id', name=op.f('pk_serial_event_receipt'))
    )
    with op.batch_alter_table('serial_event_receipt', schema=None) as batch_op:
        batch_op.create_index('ix_serial_event_receipt_serial_code', ['serial_code'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('serial_event_receipt', schema=None) as batch_op:
        batch_op.drop_index('ix_serial_event_receipt_serial_code')
    op.drop_table('serial_event_receipt')
