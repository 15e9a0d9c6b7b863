"""latest result per (tenant, check) kept on write; check runs indexed by age for retention

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 17:10:00

``check_latest`` holds one row per (tenant, check): the last finding, the last finding
without error and the error counter, written in each run's transaction. It is filled here
from the existing history; ``latest_finding`` now reads through it instead of scanning
``finding``.
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0005'
down_revision: Union[str, Sequence[str], None] = '0004'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

_NOW = sa.text('(CURRENT_TIMESTAMP)')

_LAST = "(SELECT max(g.id) FROM finding g WHERE g.tenant_code = f.tenant_code AND g.check_id = f.check_id{})"

BACKFILL = f"""
INSERT INTO check_latest (tenant_code, check_id, severity, finding_id, finished_at, duration_seconds, error,
                          success_finding_id, success_count, success_at, error_count)
SELECT f.tenant_code, f.check_id, f.severity, f.id, f.finished_at, f.duration_seconds, f.error,
       s.id, s.count, s.finished_at,
       (SELECT count(*) FROM finding e
        WHERE e.tenant_code = f.tenant_code AND e.check_id = f.check_id AND e.error IS NOT NULL)
FROM finding f
LEFT JOIN finding s ON s.id = {_LAST.format(" AND g.error IS NULL")}
WHERE f.id = {_LAST.format("")}
"""

LATEST_FINDING_VIEW = """
CREATE VIEW latest_finding AS
SELECT f.*
FROM finding f JOIN check_latest l ON l.finding_id = f.id
"""

OLD_LATEST_FINDING_VIEW = """
CREATE VIEW latest_finding AS
SELECT f.*
FROM finding f
WHERE f.id = (SELECT max(g.id) FROM finding g WHERE g.tenant_code = f.tenant_code AND g.check_id = f.check_id)
"""


def upgrade() -> None:
    op.create_table('check_latest',
    sa.Column('tenant_code', sa.String(length=32), nullable=False),
    sa.Column('check_id', sa.String(length=64), nullable=False),
    sa.Column('severity', sa.String(length=16), nullable=False),
    sa.Column('finding_id', sa.Integer(), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('duration_seconds', sa.Float(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('success_finding_id', sa.Integer(), nullable=True),
    sa.Column('success_count', sa.Integer(), nullable=True),
    sa.Column('success_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('error_count', sa.Integer(), server_default='0', nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=_NOW, nullable=False),
    sa.ForeignKeyConstraint(['finding_id'], ['finding.id'], name=op.f('fk_check_latest_finding_id_finding')),
    sa.ForeignKeyConstraint(['success_finding_id'], ['finding.id'],
                            name=op.f('fk_check_latest_success_finding_id_finding')),
    sa.PrimaryKeyConstraint('tenant_code', 'check_id', name=op.f('pk_check_latest'))
    )
    with op.batch_alter_table('check_run', schema=None) as batch_op:
        batch_op.create_index('ix_check_run_created_at', ['created_at'], unique=False)
    op.execute(BACKFILL)
    op.execute("DROP VIEW IF EXISTS latest_finding")
    op.execute(LATEST_FINDING_VIEW)


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS latest_finding")
    op.execute(OLD_LATEST_FINDING_VIEW)
    with op.batch_alter_table('check_run', schema=None) as batch_op:
        batch_op.drop_index('ix_check_run_created_at')
    op.drop_table('check_latest')
