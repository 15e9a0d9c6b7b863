"""The monitor store: its metadata, the tables of check runs and findings, and its migrations.

The monitor store is the monitor's own database (``HATTHASILPA_MONITOR_URL``). Its one
Alembic history is ``checks/migrations``; the tables it creates are declared here (check
runs and findings) and in ``reconcile/schema.py`` (repair plans, approvals and the audit
copy), all on ``monitor_metadata``. ``MONITOR`` is the store as ``lifecycle.migrate``
migrates it.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from lifecycle.migrate import Store
from lifecycle.schema import NAMING, Timestamp, created_column

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
