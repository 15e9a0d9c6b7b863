"""tenant codes unique regardless of case (tenant URLs lower-case the code)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 17:10:00

A core that already holds two codes differing only in case fails this upgrade on the
unique index: merge or rename one of them first (docs/runbook.md).
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0003'
down_revision: Union[str, Sequence[str], None] = '0002'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_index('ux_tenant_code_ci', 'tenant', [sa.text('lower(tenant_code)')], unique=True)


def downgrade() -> None:
    op.drop_index('ux_tenant_code_ci', table_name='tenant')
