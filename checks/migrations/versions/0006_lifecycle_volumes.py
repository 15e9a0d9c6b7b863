"""lifecycle volumes: the hourly series per tenant and kind, and their seasonal baselines

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 17:10:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0006'
down_revision: Union[str, Sequence[str], None] = '0005'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

_NOW = sa.text('(CURRENT_TIMESTAMP)')


def upgrade() -> None:
    op.create_table('lifecycle_volume',
    sa.Column('tenant_code', sa.String(length=32), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('hour', sa.DateTime(timezone=True), nullable=False),
    sa.Column('value', sa.Float(), nullable=False),
    sa.Column('source', sa.String(length=16), server_default='counted', nullable=False),
    sa.Column('expected', sa.Float(), nullable=True),
    sa.Column('scale', sa.Float(), nullable=True),
    sa.Column('score', sa.Float(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=_NOW, nullable=False),
    sa.CheckConstraint("source IN ('counted', 'generated')", name=op.f('ck_lifecycle_volume_source')),
    sa.PrimaryKeyConstraint('tenant_code', 'kind', 'hour', name=op.f('pk_lifecycle_volume'))
    )
    op.create_index('ix_lifecycle_volume_hour', 'lifecycle_volume', ['hour'], unique=False)
    op.create_table('volume_baseline',
    sa.Column('tenant_code', sa.String(length=32), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('slot', sa.Integer(), nullable=False),
    sa.Column('median', sa.Float(), nullable=False),
    sa.Column('mad', sa.Float(), nullable=False),
    sa.Column('weeks', sa.Integer(), nullable=False),
    sa.Column('month_end_factor', sa.Float(), server_default='1.0', nullable=False),
    sa.Column('computed_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('slot >= 0 AND slot < 168', name=op.f('ck_volume_baseline_slot')),
    sa.PrimaryKeyConstraint('tenant_code', 'kind', 'slot', name=op.f('pk_volume_baseline'))
    )


def downgrade() -> None:
    op.drop_table('volume_baseline')
    op.drop_index('ix_lifecycle_volume_hour', table_name='lifecycle_volume')
    op.drop_table('lifecycle_volume')
