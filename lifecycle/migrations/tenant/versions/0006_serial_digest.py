"""serial digest kept on write, and the bucket index of the serial registry

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 21:20:00

The reconciliation with core compares per-bucket summaries of the two registries and
reads only the rows of buckets that differ (``checks/crossdb.py``). ``serial_digest``
holds the tenant side's summary, appended to by statement-level triggers on every write
(``lifecycle/digest.py``), so an hourly comparison reads 65,536 rows instead of the
registry; ``ix_serial_registry_bucket`` makes reading one bucket's rows an index scan.
PostgreSQL only: SQLite gets the empty table and keeps the paged comparison. The first
fill reads the registry once.
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

from lifecycle import digest

revision: str = '0006'
down_revision: Union[str, Sequence[str], None] = '0005'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

BUCKETS = 65536  # this revision's buckets, one level (the next revision made them finer, in two)


def upgrade() -> None:
    op.create_table(
        'serial_digest',
        sa.Column('bucket', sa.Integer(), nullable=False),
        sa.Column('n', sa.BigInteger(), nullable=False),
        sa.Column('h', sa.Numeric(), nullable=False),
    )
    op.create_index('ix_serial_digest_bucket', 'serial_digest', ['bucket'], unique=False)
    if op.get_bind().dialect.name == 'postgresql':
        for statement in digest.tenant_ddl(BUCKETS, coarse=False):
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        for statement in digest.DROP_TENANT + digest.DROP_COMMON:
            op.execute(statement)
        op.execute('DROP INDEX IF EXISTS ix_serial_registry_bucket')
    op.drop_index('ix_serial_digest_bucket', table_name='serial_digest')
    op.drop_table('serial_digest')
