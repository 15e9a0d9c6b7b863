"""The monitor store: its metadata, the tables of check runs and findings, and its migrations.

The monitor store is the monitor's own database (``HATTHASILPA_MONITOR_URL``). Its one
Alembic history is ``checks/migrations``; the tables it creates are declared here (check
runs, findings, the latest result of each (tenant, check), incidents with their keys and
events, the incident counters of each (tenant, check), the hash-chained audit log and its
verifications) and in ``reconcile/schema.py`` (repair plans, approvals, the audit copy
and the plan-to-incident links), all on ``monitor_metadata``.

References an incident holds to check runs (``opened_run_id``, ``last_run_id``,
``resolved_run_id``) are plain ids, not foreign keys: history retention may prune the runs
of resolved incidents, and must keep every run an unresolved incident names. ``MONITOR`` is the store as ``lifecycle.migrate``
migrates it.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from lifecycle.migrate import Store
from lifecycle.schema import NAMING, Timestamp, created_column, updated_column

monitor_metadata = sa.MetaData(naming_convention=NAMING)
MONITOR = Store("monitor", Path(__file__).parent / "migrations", monitor_metadata)


check_run = sa.Table(
    "check_run", monitor_metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("started_at", Timestamp, nullable=False),
    sa.Column("finished_at", Timestamp),
    sa.Column("trigger", sa.String(32), nullable=False, server_default="cli"),
    sa.Column("status", sa.String(16), nullable=False, server_default="finished"),
    sa.Column("selection", sa.JSON),
    sa.Column("violation_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("error_count", sa.Integer, nullable=False, server_default="0"),
    created_column(),
    sa.CheckConstraint("status IN ('running', 'finished')", name="status"),
    sa.Index("ix_check_run_created_at", "created_at"),
)

finding = sa.Table(
    "finding", monitor_metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("run_id", sa.Integer, sa.ForeignKey("check_run.id"), nullable=False),
    sa.Column("tenant_code", sa.String(32), nullable=False),
    sa.Column("check_id", sa.String(64), nullable=False),
    sa.Column("family", sa.String(16)),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("sample", sa.JSON, nullable=False),
    sa.Column("started_at", Timestamp, nullable=False),
    sa.Column("finished_at", Timestamp, nullable=False),
    sa.Column("duration_seconds", sa.Float, nullable=False),
    sa.Column("error", sa.Text),
    created_column(),
    sa.Index("ix_finding_tenant_check", "tenant_code", "check_id", "id"),
    sa.Index("ix_finding_run_id", "run_id"),
)


INCIDENT_STATES = ("open", "acknowledged", "muted", "resolved")  # checks.incidents.IncidentState
UNRESOLVED = sa.text("resolved_at IS NULL")

incident = sa.Table(
    "incident", monitor_metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("tenant_code", sa.String(32), nullable=False),
    sa.Column("check_id", sa.String(64), nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("count", sa.Integer, nullable=False),  # rows found by the last run (0 once resolved)
    sa.Column("opened_at", Timestamp, nullable=False),
    sa.Column("opened_run_id", sa.Integer, nullable=False),
    sa.Column("last_run_id", sa.Integer, nullable=False),
    sa.Column("last_seen_at", Timestamp, nullable=False),
    sa.Column("keys_tracked", sa.Integer, nullable=False, server_default="0"),
    sa.Column("acknowledged_by", sa.String(64)),
    sa.Column("acknowledged_at", Timestamp),
    sa.Column("muted_by", sa.String(64)),
    sa.Column("muted_at", Timestamp),
    sa.Column("muted_until", Timestamp),
    sa.Column("muted_count", sa.Integer),  # rows at muting: a run finding more ends the mute
    sa.Column("resolved_at", Timestamp),
    sa.Column("resolved_run_id", sa.Integer),
    sa.Column("resolved_by_plan", sa.String(32)),
    sa.Column("ack_seconds", sa.Float),  # opened -> first acknowledged
    sa.Column("resolve_seconds", sa.Float),  # opened -> resolved
    created_column(),
    updated_column(),
    sa.CheckConstraint("state IN ('open', 'acknowledged', 'muted', 'resolved')", name="state"),
    sa.CheckConstraint("(state = 'resolved') = (resolved_at IS NOT NULL)", name="resolved_has_time"),
    sa.CheckConstraint("state <> 'muted' OR muted_until IS NOT NULL", name="muted_has_end"),
    sa.Index("ux_incident_one_unresolved", "tenant_code", "check_id", unique=True,
             postgresql_where=UNRESOLVED, sqlite_where=UNRESOLVED),
    sa.Index("ix_incident_tenant_code_check_id_id", "tenant_code", "check_id", "id"),
    sa.Index("ix_incident_unresolved", "id", postgresql_where=UNRESOLVED, sqlite_where=UNRESOLVED),
)

incident_key = sa.Table(
    "incident_key", monitor_metadata,
    sa.Column("incident_id", sa.Integer, sa.ForeignKey("incident.id"), primary_key=True),
    sa.Column("row_key", sa.String(500), primary_key=True),  # the key's canonical JSON
    sa.Column("first_seen", Timestamp, nullable=False),
    sa.Column("last_seen", Timestamp, nullable=False),
    sa.Column("returns", sa.Integer, nullable=False, server_default="0"),  # times it came back after a gap
    created_column(),
)

incident_event = sa.Table(
    "incident_event", monitor_metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("incident_id", sa.Integer, sa.ForeignKey("incident.id"), nullable=False),
    sa.Column("at", Timestamp, nullable=False),
    sa.Column("actor", sa.String(64), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("from_state", sa.String(16)),
    sa.Column("to_state", sa.String(16), nullable=False),
    sa.Column("note", sa.Text),
    sa.Column("run_id", sa.Integer),
    sa.Column("plan_id", sa.String(32)),
    sa.Column("detail", sa.JSON),
    created_column(),
    sa.Index("ix_incident_event_incident_id", "incident_id"),
)

# Append-only and hash-chained (checks.audit_log): no code path updates or deletes an entry,
# and triggers refuse UPDATE and DELETE.
audit_log = sa.Table(
    "audit_log", monitor_metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("actor", sa.String(64), nullable=False),
    sa.Column("subject", sa.String(128), nullable=False),
    sa.Column("body", sa.JSON, nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("entry_hash", sa.String(64), nullable=False),
    sa.UniqueConstraint("entry_hash"),
)

audit_verification = sa.Table(
    "audit_verification", monitor_metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("verified_at", Timestamp, nullable=False),
    sa.Column("ok", sa.Boolean, nullable=False),
    sa.Column("entries", sa.Integer, nullable=False),
    sa.Column("first_broken", sa.Integer),
    sa.Column("message", sa.Text),
    created_column(),
)

# The latest result of every (tenant, check), kept on write in the run's transaction
# (``checks.store.record_run``): the exporter reads one row per pair, whatever the length of
# the history, and retention never prunes the findings it points at.
check_latest = sa.Table(
    "check_latest", monitor_metadata,
    sa.Column("tenant_code", sa.String(32), primary_key=True),
    sa.Column("check_id", sa.String(64), primary_key=True),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("finding_id", sa.Integer, sa.ForeignKey("finding.id"), nullable=False),  # the last run
    sa.Column("finished_at", Timestamp, nullable=False),
    sa.Column("duration_seconds", sa.Float, nullable=False),
    sa.Column("error", sa.Text),
    sa.Column("success_finding_id", sa.Integer, sa.ForeignKey("finding.id")),  # the last run without error
    sa.Column("success_count", sa.Integer),
    sa.Column("success_at", Timestamp),
    sa.Column("error_count", sa.Integer, nullable=False, server_default="0"),  # runs that ended in an error
    updated_column(),
)

# The bounds (seconds) of the histograms of time to acknowledge and to resolve an incident:
# the exporter's ``le`` labels and the columns of ``incident_tally``.
DURATION_BUCKETS = (60.0, 300.0, 900.0, 1800.0, 3600.0, 4 * 3600.0, 12 * 3600.0, 86400.0, 3 * 86400.0,
                    7 * 86400.0)
DURATIONS = ("ack", "resolve")  # incident.ack_seconds and incident.resolve_seconds


def bucket_column(duration: str, bound: float) -> str:
    """The ``incident_tally`` column counting the ``duration``s of at most ``bound`` seconds."""
    return f"{duration}_le_{int(bound)}"


# The incident counters of every (tenant, check), kept on write in the transaction that opens,
# acknowledges or resolves an incident (``checks.incident_tally``): incidents opened and
# resolved, ever, and the histograms of time to acknowledge and to resolve (count, sum, and one
# cumulative count per bound). The exporter reads one row per pair, whatever the number of incidents.
incident_tally = sa.Table(
    "incident_tally", monitor_metadata,
    sa.Column("tenant_code", sa.String(32), primary_key=True),
    sa.Column("check_id", sa.String(64), primary_key=True),
    sa.Column("opened", sa.Integer, nullable=False, server_default="0"),
    sa.Column("resolved", sa.Integer, nullable=False, server_default="0"),
    *(column for duration in DURATIONS for column in (
        sa.Column(f"{duration}_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column(f"{duration}_sum", sa.Float, nullable=False, server_default="0"),
        *(sa.Column(bucket_column(duration, bound), sa.Integer, nullable=False, server_default="0")
          for bound in DURATION_BUCKETS))),
    updated_column(),
)

# The lifecycle's hourly pulse (``checks/volumes.py``): one row per (tenant, kind, hour), the
# hour being its start in UTC. ``source`` says whether the value was counted from the tenant
# DB or generated (the demo's history). ``expected``, ``scale`` and ``score`` are the seasonal
# baseline's verdict on the hour (``checks/baselines.py``), empty until it is scored or while
# its slot has too little history.
lifecycle_volume = sa.Table(
    "lifecycle_volume", monitor_metadata,
    sa.Column("tenant_code", sa.String(32), primary_key=True),
    sa.Column("kind", sa.String(32), primary_key=True),
    sa.Column("hour", Timestamp, primary_key=True),
    sa.Column("value", sa.Float, nullable=False),
    sa.Column("source", sa.String(16), nullable=False, server_default="counted"),
    sa.Column("expected", sa.Float),
    sa.Column("scale", sa.Float),
    sa.Column("score", sa.Float),
    created_column(),
    sa.CheckConstraint("source IN ('counted', 'generated')", name="source"),
    sa.Index("ix_lifecycle_volume_hour", "hour"),
)

# The seasonal baseline of each (tenant, kind): median and MAD of every hour-of-week slot
# (0 = Monday 00:00 UTC … 167 = Sunday 23:00) over the last weeks, and the month-end factor
# where the history shows one (1.0 where it does not).
volume_baseline = sa.Table(
    "volume_baseline", monitor_metadata,
    sa.Column("tenant_code", sa.String(32), primary_key=True),
    sa.Column("kind", sa.String(32), primary_key=True),
    sa.Column("slot", sa.Integer, primary_key=True),
    sa.Column("median", sa.Float, nullable=False),
    sa.Column("mad", sa.Float, nullable=False),
    sa.Column("weeks", sa.Integer, nullable=False),
    sa.Column("month_end_factor", sa.Float, nullable=False, server_default="1.0"),
    sa.Column("computed_at", Timestamp, nullable=False),
    sa.CheckConstraint("slot >= 0 AND slot < 168", name="slot"),
)
