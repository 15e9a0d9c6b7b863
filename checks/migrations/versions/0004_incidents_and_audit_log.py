"""incidents (keys, events, plan links) and the hash-chained audit log with its verifications

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 17:10:00

``audit_log`` is append-only: a trigger refuses UPDATE and DELETE (and, on PostgreSQL,
TRUNCATE) for every role that does not switch triggers off.
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0004'
down_revision: Union[str, Sequence[str], None] = '0003'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

_NOW = sa.text('(CURRENT_TIMESTAMP)')
_UNRESOLVED = sa.text('resolved_at IS NULL')

PG_APPEND_ONLY = [
    """
CREATE FUNCTION audit_log_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql
""",
    "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log "
    "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()",
    "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log "
    "FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()",
]
SQLITE_APPEND_ONLY = [
    "CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log "
    "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: UPDATE refused'); END",
    "CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log "
    "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: DELETE refused'); END",
]


def upgrade() -> None:
    op.create_table('incident',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('tenant_code', sa.String(length=32), nullable=False),
    sa.Column('check_id', sa.String(length=64), nullable=False),
    sa.Column('severity', sa.String(length=16), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('opened_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('opened_run_id', sa.Integer(), nullable=False),
    sa.Column('last_run_id', sa.Integer(), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('keys_tracked', sa.Integer(), server_default='0', nullable=False),
    sa.Column('acknowledged_by', sa.String(length=64), nullable=True),
    sa.Column('acknowledged_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('muted_by', sa.String(length=64), nullable=True),
    sa.Column('muted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('muted_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('muted_count', sa.Integer(), nullable=True),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('resolved_run_id', sa.Integer(), nullable=True),
    sa.Column('resolved_by_plan', sa.String(length=32), nullable=True),
    sa.Column('ack_seconds', sa.Float(), nullable=True),
    sa.Column('resolve_seconds', sa.Float(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=_NOW, nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=_NOW, nullable=False),
    sa.CheckConstraint("state IN ('open', 'acknowledged', 'muted', 'resolved')", name=op.f('ck_incident_state')),
    sa.CheckConstraint("(state = 'resolved') = (resolved_at IS NOT NULL)",
                       name=op.f('ck_incident_resolved_has_time')),
    sa.CheckConstraint("state <> 'muted' OR muted_until IS NOT NULL", name=op.f('ck_incident_muted_has_end')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_incident'))
    )
    with op.batch_alter_table('incident', schema=None) as batch_op:
        batch_op.create_index('ux_incident_one_unresolved', ['tenant_code', 'check_id'], unique=True,
                              postgresql_where=_UNRESOLVED, sqlite_where=_UNRESOLVED)
        batch_op.create_index('ix_incident_tenant_code_check_id_id', ['tenant_code', 'check_id', 'id'], unique=False)
        batch_op.create_index('ix_incident_unresolved', ['id'], unique=False,
                              postgresql_where=_UNRESOLVED, sqlite_where=_UNRESOLVED)
    op.create_table('incident_key',
    sa.Column('incident_id', sa.Integer(), nullable=False),
    sa.Column('row_key', sa.String(length=500), nullable=False),
    sa.Column('first_seen', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen', sa.DateTime(timezone=True), nullable=False),
    sa.Column('returns', sa.Integer(), server_default='0', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=_NOW, nullable=False),
    sa.ForeignKeyConstraint(['incident_id'], ['incident.id'], name=op.f('fk_incident_key_incident_id_incident')),
    sa.PrimaryKeyConstraint('incident_id', 'row_key', name=op.f('pk_incident_key'))
    )
    op.create_table('incident_event',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('incident_id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('from_state', sa.String(length=16), nullable=True),
    sa.Column('to_state', sa.String(length=16), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('run_id', sa.Integer(), nullable=True),
    sa.Column('plan_id', sa.String(length=32), nullable=True),
    sa.Column('detail', sa.JSON(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=_NOW, nullable=False),
    sa.ForeignKeyConstraint(['incident_id'], ['incident.id'], name=op.f('fk_incident_event_incident_id_incident')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_incident_event'))
    )
    with op.batch_alter_table('incident_event', schema=None) as batch_op:
        batch_op.create_index('ix_incident_event_incident_id', ['incident_id'], unique=False)
    op.create_table('repair_plan_incident',
    sa.Column('plan_id', sa.String(length=32), nullable=False),
    sa.Column('incident_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=_NOW, nullable=False),
    sa.ForeignKeyConstraint(['incident_id'], ['incident.id'],
                            name=op.f('fk_repair_plan_incident_incident_id_incident')),
    sa.ForeignKeyConstraint(['plan_id'], ['repair_plan.id'], name=op.f('fk_repair_plan_incident_plan_id_repair_plan')),
    sa.PrimaryKeyConstraint('plan_id', 'incident_id', name=op.f('pk_repair_plan_incident'))
    )
    with op.batch_alter_table('repair_plan_incident', schema=None) as batch_op:
        batch_op.create_index('ix_repair_plan_incident_incident_id', ['incident_id'], unique=False)
    op.create_table('audit_log',
    sa.Column('seq', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('subject', sa.String(length=128), nullable=False),
    sa.Column('body', sa.JSON(), nullable=False),
    sa.Column('prev_hash', sa.String(length=64), nullable=False),
    sa.Column('entry_hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_audit_log')),
    sa.UniqueConstraint('entry_hash', name=op.f('uq_audit_log_entry_hash'))
    )
    op.create_table('audit_verification',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('verified_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ok', sa.Boolean(), nullable=False),
    sa.Column('entries', sa.Integer(), nullable=False),
    sa.Column('first_broken', sa.Integer(), nullable=True),
    sa.Column('message', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=_NOW, nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_verification'))
    )
    for statement in (PG_APPEND_ONLY if op.get_bind().dialect.name == 'postgresql' else SQLITE_APPEND_ONLY):
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log")
        op.execute("DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log")
        op.execute("DROP FUNCTION IF EXISTS audit_log_append_only()")
    else:
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_update")
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_delete")
    op.drop_table('audit_verification')
    op.drop_table('audit_log')
    with op.batch_alter_table('repair_plan_incident', schema=None) as batch_op:
        batch_op.drop_index('ix_repair_plan_incident_incident_id')
    op.drop_table('repair_plan_incident')
    with op.batch_alter_table('incident_event', schema=None) as batch_op:
        batch_op.drop_index('ix_incident_event_incident_id')
    op.drop_table('incident_event')
    op.drop_table('incident_key')
    with op.batch_alter_table('incident', schema=None) as batch_op:
        batch_op.drop_index('ix_incident_unresolved', postgresql_where=_UNRESOLVED, sqlite_where=_UNRESOLVED)
        batch_op.drop_index('ix_incident_tenant_code_check_id_id')
        batch_op.drop_index('ux_incident_one_unresolved', postgresql_where=_UNRESOLVED, sqlite_where=_UNRESOLVED)
    op.drop_table('incident')
