"""incident counters per (tenant, check) kept on write, filled from the existing incidents

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29 23:50:00

``incident_tally`` holds, per (tenant, check), the incidents opened and resolved, ever, and
the histograms of time to acknowledge and to resolve (count, sum and one cumulative count per
bound), written in the transaction that opens, acknowledges or resolves an incident. It is
filled here from the incidents already recorded, with the aggregates the exporter computed
at every scrape until now.
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0007'
down_revision: Union[str, Sequence[str], None] = '0006'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

_NOW = sa.text('(CURRENT_TIMESTAMP)')

BOUNDS = (60, 300, 900, 1800, 3600, 14400, 43200, 86400, 259200, 604800)  # the histograms' bounds, seconds
DURATIONS = ('ack', 'resolve')  # incident.ack_seconds, incident.resolve_seconds


def _duration_columns(duration: str) -> list[str]:
    return [f'{duration}_count', f'{duration}_sum', *(f'{duration}_le_{bound}' for bound in BOUNDS)]


def _duration_aggregates(duration: str) -> list[str]:
    value = f'{duration}_seconds'
    return [f'count({value})', f'coalesce(sum({value}), 0)',
            *(f'sum(CASE WHEN {value} <= {bound} THEN 1 ELSE 0 END)' for bound in BOUNDS)]


COLUMNS = ['opened', 'resolved', *(c for d in DURATIONS for c in _duration_columns(d))]
AGGREGATES = ['count(*)', 'count(resolved_at)', *(a for d in DURATIONS for a in _duration_aggregates(d))]

BACKFILL = f"""
INSERT INTO incident_tally (tenant_code, check_id, {', '.join(COLUMNS)})
SELECT tenant_code, check_id, {', '.join(AGGREGATES)}
FROM incident
GROUP BY tenant_code, check_id
"""


def upgrade() -> None:
    op.create_table('incident_tally',
    sa.Column('tenant_code', sa.String(length=32), nullable=False),
    sa.Column('check_id', sa.String(length=64), nullable=False),
    sa.Column('opened', sa.Integer(), server_default='0', nullable=False),
    sa.Column('resolved', sa.Integer(), server_default='0', nullable=False),
    *(sa.Column(name, sa.Float() if name.endswith('_sum') else sa.Integer(), server_default='0', nullable=False)
      for duration in DURATIONS for name in _duration_columns(duration)),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=_NOW, nullable=False),
    sa.PrimaryKeyConstraint('tenant_code', 'check_id', name=op.f('pk_incident_tally'))
    )
    op.execute(BACKFILL)


def downgrade() -> None:
    op.drop_table('incident_tally')
