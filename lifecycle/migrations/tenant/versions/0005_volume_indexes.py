"""timestamp indexes for the hourly lifecycle volumes

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 17:10:00

The monitor counts one hour of activity per run (``checks/volumes.py``): spawn cycles,
scrapped tokens, archived instances, sessions opened and ended, serials issued and
relayed. Each count is a range scan of one of these indexes, so a run costs one hour's
rows whatever the size of the tenant. The indexes of nullable timestamps are partial
(``IS NOT NULL``): most tokens are never scrapped.
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0005'
down_revision: Union[str, Sequence[str], None] = '0004'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

# (table, index, column, partial)
INDEXES = [
    ('token_spawn', 'ix_token_spawn_created_at', 'created_at', False),
    ('flow_token', 'ix_flow_token_scrapped_at', 'scrapped_at', True),
    ('job_graph_instance', 'ix_job_graph_instance_archived_at', 'archived_at', True),
    ('token_work_session', 'ix_token_work_session_started_at', 'started_at', False),
    ('token_work_session', 'ix_token_work_session_ended_at', 'ended_at', True),
    ('serial_registry', 'ix_serial_registry_created_at', 'created_at', False),
    ('serial_outbox', 'ix_serial_outbox_published_at', 'published_at', True),
]


def upgrade() -> None:
    for table, name, column, partial in INDEXES:
        where = sa.text(f'{column} IS NOT NULL') if partial else None
        op.create_index(name, table, [column], unique=False, postgresql_where=where, sqlite_where=where)


def downgrade() -> None:
    for table, name, _column, _partial in reversed(INDEXES):
        op.drop_index(name, table_name=table)
