"""partial indexes that hold only the rows a history check must read

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 18:00:00

``scrapped_token_resurrected`` starts from the scrapped events (``ix_token_event_scrapped``)
and from tokens whose ``scrapped_at`` disagrees with their status (an index that stays empty
while the CHECK constraint holds); ``temp_serial_on_production_tenant`` reads TEMP serials
only; ``duplicate_serial`` groups ``flow_token.serial_code`` from its index, in order, instead
of sorting every token's serial.
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0004'
down_revision: Union[str, Sequence[str], None] = '0003'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

INDEXES = (
    ("ix_token_event_scrapped", "token_event", ["token_id"], "to_status = 'scrapped'"),
    ("ix_flow_token_scrapped_at_not_scrapped", "flow_token", ["id"],
     "scrapped_at IS NOT NULL AND status <> 'scrapped'"),
    ("ix_flow_token_serial_code", "flow_token", ["serial_code"], "serial_code IS NOT NULL"),
    ("ix_serial_registry_temp", "serial_registry", ["serial_code"], "mode = 'TEMP'"),
)


def upgrade() -> None:
    for name, table, columns, where in INDEXES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_index(name, columns, unique=False, postgresql_where=sa.text(where),
                                  sqlite_where=sa.text(where))


def downgrade() -> None:
    for name, table, _, where in reversed(INDEXES):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(name, postgresql_where=sa.text(where), sqlite_where=sa.text(where))
