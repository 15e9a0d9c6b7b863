"""check history for dashboards: run summary, finding family, latest_finding view

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 09:30:00

``latest_finding`` is the last result of every (tenant, check), answered from
``ix_finding_tenant_check`` (the repair planner and the reports read it).
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0002'
down_revision: Union[str, Sequence[str], None] = '0001'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

LATEST_FINDING_VIEW = """
CREATE VIEW latest_finding AS
SELECT f.*
FROM finding f
WHERE f.id = (SELECT max(g.id) FROM finding g WHERE g.tenant_code = f.tenant_code AND g.check_id = f.check_id)
"""


def upgrade() -> None:
    with op.batch_alter_table('check_run', schema=None) as batch_op:
        batch_op.add_column(sa.Column('status', sa.String(length=16), server_default='finished', nullable=False))
        batch_op.add_column(sa.Column('selection', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('violation_count', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('error_count', sa.Integer(), server_default='0', nullable=False))
        batch_op.create_check_constraint(op.f('ck_check_run_status'), "status IN ('running', 'finished')")
    with op.batch_alter_table('finding', schema=None) as batch_op:
        batch_op.add_column(sa.Column('family', sa.String(length=16), nullable=True))
        batch_op.create_index('ix_finding_run_id', ['run_id'], unique=False)
    op.execute(LATEST_FINDING_VIEW)


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS latest_finding")
    with op.batch_alter_table('finding', schema=None) as batch_op:
        batch_op.drop_index('ix_finding_run_id')
        batch_op.drop_column('family')
    with op.batch_alter_table('check_run', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_check_run_status'), type_='check')
        batch_op.drop_column('error_count')
        batch_op.drop_column('violation_count')
        batch_op.drop_column('selection')
        batch_op.drop_column('status')
