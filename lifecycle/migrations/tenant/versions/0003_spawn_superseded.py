"""spawn cycles a repair retired: token_spawn.superseded_at

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 14:00:00

A second spawn cycle on one instance is the duplicate-spawn trace the
``multi_spawn_instance`` check reports; its repair scraps the cycle's live tokens and
marks the cycle superseded, after which neither the check nor the spawn guard counts it.
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0003'
down_revision: Union[str, Sequence[str], None] = '0002'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('token_spawn', schema=None) as batch_op:
        batch_op.add_column(sa.Column('superseded_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('token_spawn', schema=None) as batch_op:
        batch_op.drop_column('superseded_at')
