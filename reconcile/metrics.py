"""The repair counters of the monitor's metrics, and ``SOURCES``: every family the monitor exports.

``hatthasilpa_repairs_applied_total{tenant,check,action}`` and
``hatthasilpa_repair_rows_skipped_total{tenant,check}`` count the outcomes in the
monitor's copy of the repair audit. ``metrics serve`` and the runs that push to a
Pushgateway export ``SOURCES``.
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
from prometheus_client.core import CounterMetricFamily, Metric

from checks import metrics
from lifecycle.db import Settings

from .audit import APPLIED, SKIPPED
from .schema import repair_audit


def _counts(conn: sa.Connection, tenant: str | None, outcome: str, *labels) -> list:
    """Rows of ``outcome`` per label set, zero included for every label set that had any repair row
    (a counter that exists at zero lets ``increase()`` see its first step)."""
    counted = sa.func.sum(sa.case((repair_audit.c.outcome == outcome, 1), else_=0))
    query = sa.select(*labels, counted).group_by(*labels).order_by(*labels)
    if tenant is not None:
        query = query.where(repair_audit.c.tenant_code == tenant)
    return conn.execute(query).all()


def repair_families(settings: Settings, conn: sa.Connection, tenant: str | None) -> Iterable[Metric]:
    applied = CounterMetricFamily("hatthasilpa_repairs_applied_total", "Repair actions applied to rows",
                                  labels=["tenant", "check", "action"])
    skipped = CounterMetricFamily("hatthasilpa_repair_rows_skipped_total",
                                  "Planned repair rows skipped because they no longer qualified",
                                  labels=["tenant", "check"])
    for *labels, n in _counts(conn, tenant, APPLIED, repair_audit.c.tenant_code, repair_audit.c.check_id,
                              repair_audit.c.action):
        applied.add_metric(labels, n)
    for *labels, n in _counts(conn, tenant, SKIPPED, repair_audit.c.tenant_code, repair_audit.c.check_id):
        skipped.add_metric(labels, n)
    return applied, skipped


SOURCES: tuple[metrics.Source, ...] = metrics.SOURCES + (repair_families,)
