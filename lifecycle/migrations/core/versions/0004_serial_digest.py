"""core's serial digest per tenant, kept on write, and the bucket index of its registry

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 21:20:00

Core's side of the digest the reconciliation compares (``lifecycle/digest.py``): per
tenant and bucket, the row count and checksum of the registry, appended to by
statement-level triggers on every write. PostgreSQL only; the first fill reads the
registry once.
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

from lifecycle import digest

revision: str = '0004'
down_revision: Union[str, Sequence[str], None] = '0003'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

BUCKETS = 65536  # this revision's buckets, one level (the next revision made them finer, in two)


def upgrade() -> None:
    op.create_table(
        'serial_digest',
        sa.Column('tenant_code', sa.String(length=32), nullable=False),
        sa.Column('bucket', sa.Integer(), nullable=False),
        sa.Column('n', sa.BigInteger(), nullable=False),
        sa.Column('h', sa.Numeric(), nullable=False),
    )
    op.create_index('ix_serial_digest_tenant_bucket', 'serial_digest', ['tenant_code', 'bucket'], unique=False)
    if op.get_bind().dialect.name == 'postgresql':
        for statement in digest.core_ddl(BUCKETS, coarse=False):
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        for statement in digest.DROP_COMMON:
            op.execute(statement)
        op.execute('DROP INDEX IF EXISTS ix_serial_registry_tenant_bucket')
    op.drop_index('ix_serial_digest_tenant_bucket', table_name='serial_digest')
    op.drop_table('serial_digest')
