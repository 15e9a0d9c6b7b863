"""Table definitions of the lifecycle's two stores, the tenant DBs and the core DB, in SQLAlchemy Core.

The invariants live here first: CHECK constraints on status columns (those of the state
machines built from the enums of ``lifecycle.states``), CHECKs tying statuses to their
timestamps, and partial unique indexes for "at most one active instance per job", "one
open session per token", "one active assignment per token", "one running session per
operator". Alembic's migrations (``lifecycle/migrations``) create exactly this schema,
plus the ``work_queue`` view and the trigger that keeps scrapped tokens scrapped;
``tests/integration/test_migrations.py`` compares the two. The data model is described
in ``docs/data-model.md``.
"""

from __future__ import annotations

import sqlalchemy as sa

from .states import (
    AssignmentSource,
    AssignmentStatus,
    InstanceStatus,
    JobStatus,
    NodeKind,
    ProductionMode,
    SerialMode,
    SerialStatus,
    SessionStatus,
    TokenStatus,
    values,
)

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

Timestamp = sa.DateTime(timezone=True)


def _in(column: str, enum_cls) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values(enum_cls))})"


def created_column() -> sa.Column:
    return sa.Column("created_at", Timestamp, nullable=False, server_default=sa.func.current_timestamp())


def updated_column() -> sa.Column:
    return sa.Column("updated_at", Timestamp, nullable=False, server_default=sa.func.current_timestamp())


def _status(default) -> sa.Column:
    return sa.Column("status", sa.String(16), nullable=False, server_default=default.value)


# --------------------------------------------------------------------------- tenant
tenant_metadata = sa.MetaData(naming_convention=NAMING)

routing_graph = sa.Table(
    "routing_graph", tenant_metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("code", sa.String(64), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False, server_default="active"),
    created_column(), updated_column(),
    sa.UniqueConstraint("code", "version"),
    sa.CheckConstraint("status IN ('active', 'retired')", name="status"),
    sa.CheckConstraint("version > 0", name="version_positive"),
)

routing_node = sa.Table(
    "routing_node", tenant_metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("graph_id", sa.Integer, sa.ForeignKey("routing_graph.id"), nullable=False),
    sa.Column("node_code", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(8), nullable=False),
    created_column(),
    sa.UniqueConstraint("graph_id", "node_code"),
    sa.CheckConstraint(_in("kind", NodeKind), name="kind"),
)

routing_edge = sa.Table(
    "routing_edge", tenant_metadata,
    sa.Column("graph_id", sa.Integer, sa.ForeignKey("routing_graph.id"), primary_key=True),
    sa.Column("from_node_id", sa.Integer, sa.ForeignKey("routing_node.id"), primary_key=True),
    sa.Column("to_node_id", sa.Integer, sa.ForeignKey("routing_node.id"), primary_key=True),
    created_column(),
    sa.CheckConstraint("from_node_id <> to_node_id", name="no_self_loop"),
)

hatthasilpa_job = sa.Table(
    "hatthasilpa_job", tenant_metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("job_code", sa.String(64), nullable=False, unique=True),
    sa.Column("sku", sa.String(64), nullable=False),
    sa.Column("quantity", sa.Integer, nullable=False),
    sa.Column("graph_id", sa.Integer, sa.ForeignKey("routing_graph.id"), nullable=False),
    sa.Column("production_mode", sa.String(8), nullable=False, server_default="piece"),
    _status(JobStatus.PLANNED),
    created_column(), updated_column(),
    sa.CheckConstraint("quantity > 0", name="quantity_positive"),
    sa.CheckConstraint(_in("production_mode", ProductionMode), name="production_mode"),
    sa.CheckConstraint(_in("status", JobStatus), name="status"),
)

job_graph_instance = sa.Table(
    "job_graph_instance", tenant_metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("job_id", sa.Integer, sa.ForeignKey("hatthasilpa_job.id"), nullable=False),
    sa.Column("graph_id", sa.Integer, sa.ForeignKey("routing_graph.id"), nullable=False),
    _status(InstanceStatus.ACTIVE),
    sa.Column("archived_at", Timestamp),
    created_column(), updated_column(),
    sa.CheckConstraint(_in("status", InstanceStatus), name="status"),
    sa.CheckConstraint(
        "(status = 'archived' AND archived_at IS NOT NULL) OR (status <> 'archived' AND archived_at IS NULL)",
        name="archived_at"),
    sa.Index("ux_job_graph_instance_one_active", "job_id", unique=True,
             postgresql_where=sa.text("status = 'active'"), sqlite_where=sa.text("status = 'active'")),
    sa.Index("ix_job_graph_instance_job_id", "job_id"),
    sa.Index("ix_job_graph_instance_archived_at", "archived_at", postgresql_where=sa.text("archived_at IS NOT NULL"), sqlite_where=sa.text("archived_at IS NOT NULL")),
)

node_instance = sa.Table(
    "node_instance", tenant_metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("instance_id", sa.Integer, sa.ForeignKey("job_graph_instance.id"), nullable=False),
    sa.Column("node_id", sa.Integer, sa.ForeignKey("routing_node.id"), nullable=False),
    sa.Column("status", sa.String(16), nullable=False, server_default="open"),
    created_column(), updated_column(),
    sa.UniqueConstraint("instance_id", "node_id"),
    sa.CheckConstraint("status IN ('open', 'closed', 'archived')", name="status"),
)

token_spawn = sa.Table(
    "token_spawn", tenant_metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("instance_id", sa.Integer, sa.ForeignKey("job_graph_instance.id"), nullable=False),
    sa.Column("job_id", sa.Integer, sa.ForeignKey("hatthasilpa_job.id"), nullable=False),
    sa.Column("token_count", sa.Integer, nullable=False),
    sa.Column("idempotency_key", sa.String(128)),
    sa.Column("superseded_at", Timestamp),  # a repair retired this cycle (a duplicate spawn)
    created_column(),
    sa.CheckConstraint("token_count > 0", name="token_count_positive"),
    sa.Index("ix_token_spawn_instance_id", "instance_id"),
    sa.Index("ix_token_spawn_created_at", "created_at"),
)

flow_token = sa.Table(
    "flow_token", tenant_metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("instance_id", sa.Integer, sa.ForeignKey("job_graph_instance.id"), nullable=False),
    sa.Column("job_id", sa.Integer, sa.ForeignKey("hatthasilpa_job.id"), nullable=False),
    sa.Column("spawn_id", sa.Integer, sa.ForeignKey("token_spawn.id"), nullable=False),
    sa.Column("piece_index", sa.Integer, nullable=False),
    sa.Column("current_node_id", sa.Integer, sa.ForeignKey("routing_node.id"), nullable=False),
    sa.Column("serial_code", sa.String(96)),
    _status(TokenStatus.READY),
    sa.Column("scrapped_at", Timestamp),
    sa.Column("completed_at", Timestamp),
    created_column(), updated_column(),
    sa.UniqueConstraint("spawn_id", "piece_index"),
    sa.CheckConstraint(_in("status", TokenStatus), name="status"),
    sa.CheckConstraint("piece_index > 0", name="piece_index_positive"),
    sa.CheckConstraint(
        "(status = 'scrapped' AND scrapped_at IS NOT NULL) OR (status <> 'scrapped' AND scrapped_at IS NULL)",
        name="scrapped_at"),
    sa.CheckConstraint(
        "(status = 'completed' AND completed_at IS NOT NULL) OR (status <> 'completed' AND completed_at IS NULL)",
        name="completed_at"),
    sa.Index("ix_flow_token_instance_id_status", "instance_id", "status"),
    sa.Index("ix_flow_token_job_id", "job_id"),
    sa.Index("ix_flow_token_live", "instance_id",
             postgresql_where=sa.text("status IN ('ready', 'active', 'paused')"),
             sqlite_where=sa.text("status IN ('ready', 'active', 'paused')")),
    # history checks read only what can break their rule (checks/tokens.py, checks/serials.py)
    sa.Index("ix_flow_token_scrapped_at_not_scrapped", "id",
             postgresql_where=sa.text("scrapped_at IS NOT NULL AND status <> 'scrapped'"),
             sqlite_where=sa.text("scrapped_at IS NOT NULL AND status <> 'scrapped'")),
    sa.Index("ix_flow_token_serial_code", "serial_code", postgresql_where=sa.text("serial_code IS NOT NULL"),
             sqlite_where=sa.text("serial_code IS NOT NULL")),
    sa.Index("ix_flow_token_scrapped_at", "scrapped_at", postgresql_where=sa.text("scrapped_at IS NOT NULL"), sqlite_where=sa.text("scrapped_at IS NOT NULL")),
)

token_event = sa.Table(
    "token_event", tenant_metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("token_id", sa.Integer, sa.ForeignKey("flow_token.id"), nullable=False),
    sa.Column("event_type", sa.String(32), nullable=False),
    sa.Column("from_status", sa.String(16)),
    sa.Column("to_status", sa.String(16)),
    sa.Column("node_id", sa.Integer, sa.ForeignKey("routing_node.id")),
    sa.Column("actor", sa.String(64)),
    sa.Column("at", Timestamp, nullable=False, server_default=sa.func.current_timestamp()),
    created_column(),
    sa.Index("ix_token_event_token_id", "token_id"),
    sa.Index("ix_token_event_scrapped", "token_id", postgresql_where=sa.text("to_status = 'scrapped'"),
             sqlite_where=sa.text("to_status = 'scrapped'")),
)

manager_assignment = sa.Table(
    "manager_assignment", tenant_metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("job_id", sa.Integer, sa.ForeignKey("hatthasilpa_job.id"), nullable=False),
    sa.Column("node_id", sa.Integer, sa.ForeignKey("routing_node.id"), nullable=False),
    sa.Column("operator_id", sa.String(64), nullable=False),
    created_column(), updated_column(),
    sa.UniqueConstraint("job_id", "node_id"),
)

token_assignment = sa.Table(
    "token_assignment", tenant_metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("token_id", sa.Integer, sa.ForeignKey("flow_token.id"), nullable=False),
    sa.Column("operator_id", sa.String(64), nullable=False),
    _status(AssignmentStatus.ACTIVE),
    sa.Column("source", sa.String(8), nullable=False),
    created_column(), updated_column(),
    sa.CheckConstraint(_in("status", AssignmentStatus), name="status"),
    sa.CheckConstraint(_in("source", AssignmentSource), name="source"),
    sa.Index("ux_token_assignment_one_active", "token_id", unique=True,
             postgresql_where=sa.text("status = 'active'"), sqlite_where=sa.text("status = 'active'")),
    sa.Index("ix_token_assignment_token_id", "token_id"),
)

token_work_session = sa.Table(
    "token_work_session", tenant_metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("token_id", sa.Integer, sa.ForeignKey("flow_token.id"), nullable=False),
    sa.Column("assignment_id", sa.Integer, sa.ForeignKey("token_assignment.id")),
    sa.Column("operator_id", sa.String(64), nullable=False),
    _status(SessionStatus.ACTIVE),
    sa.Column("started_at", Timestamp, nullable=False),
    sa.Column("resumed_at", Timestamp),
    sa.Column("ended_at", Timestamp),
    sa.Column("work_seconds", sa.Float, nullable=False, server_default="0"),
    sa.Column("close_reason", sa.String(64)),
    created_column(), updated_column(),
    sa.CheckConstraint(_in("status", SessionStatus), name="status"),
    sa.CheckConstraint("work_seconds >= 0", name="work_seconds_nonnegative"),
    sa.CheckConstraint(
        "(status = 'closed' AND ended_at IS NOT NULL) OR (status <> 'closed' AND ended_at IS NULL)",
        name="ended_at"),
    sa.CheckConstraint("ended_at IS NULL OR ended_at >= started_at", name="ended_after_start"),
    sa.Index("ux_token_work_session_one_open", "token_id", unique=True,
             postgresql_where=sa.text("status IN ('active', 'paused')"),
             sqlite_where=sa.text("status IN ('active', 'paused')")),
    sa.Index("ux_token_work_session_one_running_per_operator", "operator_id", unique=True,
             postgresql_where=sa.text("status = 'active'"), sqlite_where=sa.text("status = 'active'")),
    sa.Index("ix_token_work_session_token_id", "token_id"),
    sa.Index("ix_token_work_session_started_at", "started_at"),
    sa.Index("ix_token_work_session_ended_at", "ended_at", postgresql_where=sa.text("ended_at IS NOT NULL"), sqlite_where=sa.text("ended_at IS NOT NULL")),
)

serial_registry = sa.Table(
    "serial_registry", tenant_metadata,
    sa.Column("serial_code", sa.String(96), primary_key=True),
    sa.Column("tenant_code", sa.String(32), nullable=False),
    sa.Column("sku", sa.String(64), nullable=False),
    sa.Column("job_id", sa.Integer, sa.ForeignKey("hatthasilpa_job.id"), nullable=False),
    sa.Column("token_id", sa.Integer, sa.ForeignKey("flow_token.id"), nullable=False),
    sa.Column("mode", sa.String(4), nullable=False),
    sa.Column("status", sa.String(16), nullable=False, server_default="issued"),
    sa.Column("version", sa.Integer, nullable=False, server_default="1"),
    created_column(), updated_column(),
    sa.CheckConstraint(_in("mode", SerialMode), name="mode"),
    sa.CheckConstraint(_in("status", SerialStatus), name="status"),
    sa.Index("ux_serial_registry_token_id", "token_id", unique=True),
    sa.Index("ix_serial_registry_temp", "serial_code", postgresql_where=sa.text("mode = 'TEMP'"),
             sqlite_where=sa.text("mode = 'TEMP'")),
    sa.Index("ix_serial_registry_created_at", "created_at"),
    # the reconciliation reads the rows of a serial digest's differing buckets (digest.BUCKETS, lifecycle/digest.py)
    sa.Index("ix_serial_registry_bucket", sa.text("(hashtextextended(serial_code, 0) & 1048575)")).ddl_if(
        dialect="postgresql"),
)

# Per bucket of serial codes, the registry's row count and checksum, appended on write by
# triggers and folded by the relay (lifecycle/digest.py; PostgreSQL only, empty on SQLite).
serial_digest = sa.Table(
    "serial_digest", tenant_metadata,
    sa.Column("bucket", sa.Integer, nullable=False),
    sa.Column("n", sa.BigInteger, nullable=False),
    sa.Column("h", sa.Numeric, nullable=False),
    sa.Column("folded", sa.Boolean, nullable=False, server_default=sa.false()),  # a compaction's row, not a delta
    sa.Index("ix_serial_digest_bucket", "bucket"),
    sa.Index("ix_serial_digest_unfolded", "bucket", postgresql_where=sa.text("NOT folded"),
             sqlite_where=sa.text("NOT folded")),
)

serial_sequence = sa.Table(
    "serial_sequence", tenant_metadata,
    sa.Column("tenant_code", sa.String(32), primary_key=True),
    sa.Column("sku", sa.String(64), primary_key=True),
    sa.Column("last_value", sa.Integer, nullable=False, server_default="0"),
    created_column(), updated_column(),
)

serial_outbox = sa.Table(
    "serial_outbox", tenant_metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("event_id", sa.String(36), nullable=False, unique=True),
    sa.Column("serial_code", sa.String(96), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("published_at", Timestamp),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_error", sa.Text),
    sa.Column("next_attempt_at", Timestamp),
    sa.Column("parked_at", Timestamp),
    created_column(),
    sa.Index("ix_serial_outbox_pending", "id",
             postgresql_where=sa.text("published_at IS NULL"), sqlite_where=sa.text("published_at IS NULL")),
    sa.Index("ix_serial_outbox_published_at", "published_at", postgresql_where=sa.text("published_at IS NOT NULL"), sqlite_where=sa.text("published_at IS NOT NULL")),
)

command_idempotency = sa.Table(
    "command_idempotency", tenant_metadata,
    sa.Column("idempotency_key", sa.String(128), primary_key=True),
    sa.Column("command", sa.String(32), nullable=False),
    sa.Column("request_hash", sa.String(64), nullable=False),
    sa.Column("response", sa.JSON, nullable=False),
    created_column(),
)

# The authoritative repair audit: written by ``reconcile`` in the same transaction as the
# change it records (or the skip). One terminal outcome per plan row: the unique index is
# what makes two applies of one plan apply each row once.
def repair_audit_columns() -> list[sa.Column]:
    """What a repair audit row records — here, and in the monitor's copy (``reconcile.schema``)."""
    return [sa.Column("plan_id", sa.String(32), nullable=False),
            sa.Column("row_seq", sa.Integer, nullable=False),
            sa.Column("check_id", sa.String(64), nullable=False),
            sa.Column("action", sa.String(32), nullable=False),
            sa.Column("outcome", sa.String(16), nullable=False),
            sa.Column("row_key", sa.JSON, nullable=False),
            sa.Column("before", sa.JSON),
            sa.Column("after", sa.JSON),
            sa.Column("reason", sa.Text),
            sa.Column("actor", sa.String(64), nullable=False)]


tenant_repair_audit = sa.Table(
    "repair_audit", tenant_metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    *repair_audit_columns(),
    created_column(),
    sa.CheckConstraint("outcome IN ('applied', 'skipped')", name="outcome"),
    sa.Index("ux_repair_audit_plan_row", "plan_id", "row_seq", unique=True),
)

# --------------------------------------------------------------------------- core
core_metadata = sa.MetaData(naming_convention=NAMING)

tenant = sa.Table(
    "tenant", core_metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("tenant_code", sa.String(32), nullable=False, unique=True),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("is_test_tenant", sa.Boolean, nullable=False, server_default=sa.false()),
    created_column(), updated_column(),
)
# One tenant per code regardless of case: tenant URLs lower-case the code.
sa.Index("ux_tenant_code_ci", sa.func.lower(tenant.c.tenant_code), unique=True)

feature_flag = sa.Table(
    "feature_flag", core_metadata,
    sa.Column("tenant_code", sa.String(32), sa.ForeignKey("tenant.tenant_code"), primary_key=True),
    sa.Column("flag_key", sa.String(64), primary_key=True),
    sa.Column("enabled", sa.Boolean, nullable=False),
    created_column(), updated_column(),
)

feature_flag_audit = sa.Table(
    "feature_flag_audit", core_metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("tenant_code", sa.String(32), nullable=False),
    sa.Column("flag_key", sa.String(64), nullable=False),
    sa.Column("old_enabled", sa.Boolean),
    sa.Column("new_enabled", sa.Boolean, nullable=False),
    sa.Column("actor", sa.String(64), nullable=False),
    created_column(),
)

core_serial_registry = sa.Table(
    "serial_registry", core_metadata,
    sa.Column("serial_code", sa.String(96), primary_key=True),
    sa.Column("tenant_code", sa.String(32), nullable=False),
    sa.Column("sku", sa.String(64), nullable=False),
    sa.Column("job_ref", sa.String(64), nullable=False),
    sa.Column("token_ref", sa.String(64), nullable=False),
    sa.Column("mode", sa.String(4), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("version", sa.Integer, nullable=False, server_default="1"),
    created_column(), updated_column(),
    sa.CheckConstraint(_in("mode", SerialMode), name="mode"),
    sa.CheckConstraint(_in("status", SerialStatus), name="status"),
    sa.Index("ix_serial_registry_tenant_code", "tenant_code"),
    sa.Index("ix_serial_registry_tenant_bucket", "tenant_code",
             sa.text("(hashtextextended(serial_code, 0) & 1048575)")).ddl_if(dialect="postgresql"),
)

# Core's serial digest, per tenant and bucket (lifecycle/digest.py).
core_serial_digest = sa.Table(
    "serial_digest", core_metadata,
    sa.Column("tenant_code", sa.String(32), nullable=False),
    sa.Column("bucket", sa.Integer, nullable=False),
    sa.Column("n", sa.BigInteger, nullable=False),
    sa.Column("h", sa.Numeric, nullable=False),
    sa.Column("folded", sa.Boolean, nullable=False, server_default=sa.false()),  # a compaction's row, not a delta
    sa.Index("ix_serial_digest_tenant_bucket", "tenant_code", "bucket"),
    sa.Index("ix_serial_digest_tenant_unfolded", "tenant_code", "bucket", postgresql_where=sa.text("NOT folded"),
             sqlite_where=sa.text("NOT folded")),
)

# One row per outbox event the relay delivered to core: proof of what core received and
# how often (``deliveries`` > 1 means a redelivery after a relay crash, applied once).
serial_event_receipt = sa.Table(
    "serial_event_receipt", core_metadata,
    sa.Column("event_id", sa.String(36), primary_key=True),
    sa.Column("tenant_code", sa.String(32), nullable=False),
    sa.Column("serial_code", sa.String(96), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("deliveries", sa.Integer, nullable=False, server_default="1"),
    created_column(), updated_column(),
    sa.CheckConstraint("deliveries > 0", name="deliveries_positive"),
    sa.Index("ix_serial_event_receipt_serial_code", "serial_code"),
)
