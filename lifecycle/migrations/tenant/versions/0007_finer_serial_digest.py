"""finer serial digest: 2^20 buckets instead of 65,536, its triggers and bucket index rebuilt

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29 23:50:00

At 10 M serials a bucket of 65,536 held ~150 serials, so every differing bucket cost the
reconciliation ~150 rows of each registry. The digest now keeps 2^20 buckets (~10 serials
each at 10 M) and beside them one row per group of 16 (65,536 coarse buckets, kept at
bucket 2^20 + c by the same trigger statement), compared in two levels
(``checks/crossdb.py``): the coarse rows first, then the fine buckets of the coarse ones
that differ. The bucket function changes, so the triggers, ``ix_serial_registry_bucket``
and the digest itself are made again from the registry (one read of it; writers wait
meanwhile). PostgreSQL only.
"""
from typing import Sequence, Union

from alembic import op

from lifecycle import digest

revision: str = '0007'
down_revision: Union[str, Sequence[str], None] = '0006'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

BUCKETS = 1 << 20  # this revision's buckets, and their coarse rows
PREVIOUS_BUCKETS = 65536  # one level, revision 0006's


def _rebuild(buckets: int, coarse: bool) -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.execute('LOCK TABLE serial_registry IN SHARE MODE')
    for statement in digest.drop_ddl('tenant') + digest.tenant_ddl(buckets, coarse):
        op.execute(statement)


def upgrade() -> None:
    _rebuild(BUCKETS, coarse=True)


def downgrade() -> None:
    _rebuild(PREVIOUS_BUCKETS, coarse=False)
