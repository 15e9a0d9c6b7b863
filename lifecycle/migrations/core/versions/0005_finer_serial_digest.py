"""finer serial digest: 2^20 buckets instead of 65,536, its triggers and bucket index rebuilt

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 23:50:00

Core's side of tenant migration 0007 (``lifecycle/digest.py``): the digest of every
tenant, the triggers and ``ix_serial_registry_tenant_bucket`` made again with 2^20
buckets and their 65,536 coarse rows from the registry (one read of it; writers wait
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

revision: str = '0005'
down_revision: Union[str, Sequence[str], None] = '0004'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

BUCKETS = 1 << 20  # this revision's buckets, and their coarse rows
PREVIOUS_BUCKETS = 65536  # one level, revision 0004's


def _digest_table(folded: bool) -> None:
    """An empty serial_digest (made anew: a rebuild that deleted the old rows would leave them to
    vacuum, and in the partial index of the unfolded rows until then)."""
    op.create_table(
        'serial_digest',
        sa.Column('tenant_code', sa.String(length=32), nullable=False),
        sa.Column('bucket', sa.Integer(), nullable=False),
        sa.Column('n', sa.BigInteger(), nullable=False),
        sa.Column('h', sa.Numeric(), nullable=False),
        *([sa.Column('folded', sa.Boolean(), nullable=False, server_default=sa.false())] if folded else []),
    )
    op.create_index('ix_serial_digest_tenant_bucket', 'serial_digest', ['tenant_code', 'bucket'], unique=False)


def _remake(buckets: int, folded: bool) -> None:
    postgres = op.get_bind().dialect.name == 'postgresql'
    if postgres:
        op.execute('LOCK TABLE serial_registry IN SHARE MODE')
        for statement in digest.drop_ddl('core'):
            op.execute(statement)
    op.drop_table('serial_digest')
    _digest_table(folded)
    if postgres:
        for statement in digest.core_ddl(buckets, coarse=folded):
            op.execute(statement)
    if folded:  # after the fill, whose rows are folded
        op.create_index('ix_serial_digest_tenant_unfolded', 'serial_digest', ['tenant_code', 'bucket'], unique=False,
                        postgresql_where=sa.text('NOT folded'), sqlite_where=sa.text('NOT folded'))


def upgrade() -> None:
    _remake(BUCKETS, folded=True)


def downgrade() -> None:
    _remake(PREVIOUS_BUCKETS, folded=False)
