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
meanwhile); the table is made anew, empty on SQLite, which keeps no digest.

The digest also marks the rows a compaction wrote (``folded``; the fill's too): the relay's
compaction finds the buckets to fold through the partial index of the unfolded rows, so
it costs the writes since its last pass instead of a read of the (now 16 times larger)
digest.
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

from lifecycle import digest

revision: str = '0007'
down_revision: Union[str, Sequence[str], None] = '0006'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

BUCKETS = 1 << 20  # this revision's buckets, and their coarse rows
PREVIOUS_BUCKETS = 65536  # one level, revision 0006's


def _digest_table(folded: bool) -> None:
    """An empty serial_digest (made anew: a rebuild that deleted the old rows would leave them to
    vacuum, and in the partial index of the unfolded rows until then)."""
    op.create_table(
        'serial_digest',
        sa.Column('bucket', sa.Integer(), nullable=False),
        sa.Column('n', sa.BigInteger(), nullable=False),
        sa.Column('h', sa.Numeric(), nullable=False),
        *([sa.Column('folded', sa.Boolean(), nullable=False, server_default=sa.false())] if folded else []),
    )
    op.create_index('ix_serial_digest_bucket', 'serial_digest', ['bucket'], unique=False)


def _remake(buckets: int, folded: bool) -> None:
    postgres = op.get_bind().dialect.name == 'postgresql'
    if postgres:
        op.execute('LOCK TABLE serial_registry IN SHARE MODE')
        for statement in digest.drop_ddl('tenant'):
            op.execute(statement)
    op.drop_table('serial_digest')
    _digest_table(folded)
    if postgres:
        for statement in digest.tenant_ddl(buckets, coarse=folded):
            op.execute(statement)
    if folded:  # after the fill, whose rows are folded
        op.create_index('ix_serial_digest_unfolded', 'serial_digest', ['bucket'], unique=False,
                        postgresql_where=sa.text('NOT folded'), sqlite_where=sa.text('NOT folded'))


def upgrade() -> None:
    _remake(BUCKETS, folded=True)


def downgrade() -> None:
    _remake(PREVIOUS_BUCKETS, folded=False)
