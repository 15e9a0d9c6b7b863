"""The repair tables of the monitor store (its history is ``checks/migrations``).

A plan is an immutable list of rows with a content hash; an approval names the hash it
approves; ``repair_audit`` is the monitor's copy of the tenants' authoritative audit rows
(``repair_audit`` in each tenant DB, written in the transaction of the change).
"""

from __future__ import annotations

import sqlalchemy as sa

from checks.schema import monitor_metadata
from lifecycle.schema import Timestamp, created_column, repair_audit_columns

repair_plan = sa.Table(
    "repair_plan", monitor_metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("tenant_code", sa.String(32), nullable=False),
    sa.Column("checks", sa.JSON, nullable=False),
    sa.Column("rows", sa.JSON, nullable=False),
    sa.Column("guidance", sa.JSON, nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Column("row_cap", sa.Integer, nullable=False),
    sa.Column("created_by", sa.String(64), nullable=False),
    created_column(),
    sa.Index("ix_repair_plan_tenant_code", "tenant_code"),
)

repair_approval = sa.Table(
    "repair_approval", monitor_metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("plan_id", sa.String(32), sa.ForeignKey("repair_plan.id"), nullable=False),
    sa.Column("plan_hash", sa.String(64), nullable=False),
    sa.Column("approved_by", sa.String(64), nullable=False),
    sa.Column("approved_at", Timestamp, nullable=False),
    created_column(),
    sa.Index("ix_repair_approval_plan_id", "plan_id"),
)

repair_audit = sa.Table(
    "repair_audit", monitor_metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("tenant_code", sa.String(32), nullable=False),
    sa.Column("tenant_audit_id", sa.Integer, nullable=False),
    *repair_audit_columns(),
    sa.Column("applied_at", Timestamp, nullable=False),
    created_column(),
    sa.UniqueConstraint("tenant_code", "tenant_audit_id"),
    sa.Index("ix_repair_audit_plan_id", "plan_id"),
)

# The incidents a plan's rows belong to (written with the plan); ``repair show`` and
# ``incident show`` read it both ways.
repair_plan_incident = sa.Table(
    "repair_plan_incident", monitor_metadata,
    sa.Column("plan_id", sa.String(32), sa.ForeignKey("repair_plan.id"), primary_key=True),
    sa.Column("incident_id", sa.Integer, sa.ForeignKey("incident.id"), primary_key=True),
    created_column(),
    sa.Index("ix_repair_plan_incident_incident_id", "incident_id"),
)
