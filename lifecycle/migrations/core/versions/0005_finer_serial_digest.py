"""finer serial digest: 2^20 buckets instead of 65,536, its triggers and bucket index rebuilt

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 23:50:00

Core's side of tenant migration 0007 (``lifecycle/digest.py``): the digest of every
tenant, the triggers and ``ix_serial_registry_tenant_bucket`` made again with 2^20
buckets and their 65,536 coarse rows from the registry (one read of it; writers wait
meanwhile). PostgreSQL only.
"""
from typing import Sequence, Union

from alembic import op

from lifecycle import digest

revision: str = '0005'
down_revision: Union[str, Sequence[str], None] = '0004'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

BUCKETS = 1 << 20  # this revision's buckets, and their coarse rows
PREVIOUS_BUCKETS = 65536  # one level, revision 0004's


def _rebuild(buckets: int, coarse: bool) -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.execute('LOCK TABLE serial_registry IN SHARE MODE')
    for statement in digest.drop_ddl('core') + digest.core_ddl(buckets, coarse):
        op.execute(statement)


def upgrade() -> None:
    _rebuild(BUCKETS, coarse=True)


def downgrade() -> None:
    _rebuild(PREVIOUS_BUCKETS, coarse=False)
