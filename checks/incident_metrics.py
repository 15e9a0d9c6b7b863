"""The incident and audit-chain metrics (``docs/operations.md``), read from the monitor store.

- ``hatthasilpa_integrity_incident_open{tenant,check,severity,state}``: 1 per unresolved
  incident, ``state`` as of the scrape (``open``, ``acknowledged`` or ``muted``);
- ``hatthasilpa_integrity_incident_muted{tenant,check}``: 1 while a mute holds, else 0;
- ``hatthasilpa_integrity_time_to_acknowledge_seconds`` and ``…_time_to_resolve_seconds``
  (histograms by tenant and check) from the incidents' ``ack_seconds`` and
  ``resolve_seconds``, bucketed in SQL;
- ``hatthasilpa_integrity_incidents_opened_total`` and ``…_incidents_resolved_total``
  (counters by tenant and check): every incident ever opened, and resolved, counted in SQL.
  Every pair that has run exports both, 0 before its first incident, so ``increase(…[1w])``
  counts a pair's first incident too: the dashboard's weekly new and resolved;
- ``hatthasilpa_audit_chain_ok``: 1 when the last ``audit verify`` found the chain intact,
  0 when it found it broken (no series before the first verification).

Each reads unresolved incidents through a partial index, or one aggregate row per
(tenant, check): the cost follows the open incidents and the pairs, not the run history.
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from lifecycle.db import Settings
from lifecycle.uow import utcnow

from . import audit_log
from .incidents import IncidentState, effective_state
from .schema import check_latest, incident

BUCKETS = (60.0, 300.0, 900.0, 1800.0, 3600.0, 4 * 3600.0, 12 * 3600.0, 86400.0, 3 * 86400.0, 7 * 86400.0)


def _histogram(conn: sa.Connection, tenant: str | None, column, name: str, doc: str) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, doc, labels=["tenant", "check"])
    counts = [sa.func.sum(sa.case((column <= b, 1), else_=0)) for b in BUCKETS]
    query = (sa.select(incident.c.tenant_code, incident.c.check_id, sa.func.count(), sa.func.sum(column), *counts)
             .where(column.is_not(None)).group_by(incident.c.tenant_code, incident.c.check_id)
             .order_by(incident.c.tenant_code, incident.c.check_id))
    if tenant is not None:
        query = query.where(incident.c.tenant_code == tenant)
    for code, check, total, total_sum, *le in conn.execute(query):
        buckets = [(repr(b), int(n or 0)) for b, n in zip(BUCKETS, le)] + [("+Inf", int(total))]
        family.add_metric([code, check], buckets, float(total_sum or 0.0))
    return family


def _counters(conn: sa.Connection, tenant: str | None) -> tuple[CounterMetricFamily, CounterMetricFamily]:
    opened = CounterMetricFamily("hatthasilpa_integrity_incidents_opened",
                                 "Incidents opened, ever (increase over a week: the week's new incidents)",
                                 labels=["tenant", "check"])
    resolved = CounterMetricFamily("hatthasilpa_integrity_incidents_resolved",
                                   "Incidents resolved, ever (increase over a week: the week's resolved incidents)",
                                   labels=["tenant", "check"])
    pairs = sa.select(check_latest.c.tenant_code, check_latest.c.check_id)
    counts = sa.select(incident.c.tenant_code, incident.c.check_id, sa.func.count(),
                       sa.func.count(incident.c.resolved_at)).group_by(incident.c.tenant_code, incident.c.check_id)
    if tenant is not None:
        pairs = pairs.where(check_latest.c.tenant_code == tenant)
        counts = counts.where(incident.c.tenant_code == tenant)
    totals = {(code, check): (0, 0) for code, check in conn.execute(pairs)}
    totals.update({(code, check): (n, done) for code, check, n, done in conn.execute(counts)})
    for (code, check), (n, done) in sorted(totals.items()):
        opened.add_metric([code, check], n)
        resolved.add_metric([code, check], done)
    return opened, resolved


def incident_families(settings: Settings, conn: sa.Connection, tenant: str | None) -> Iterable[Metric]:
    now = utcnow()
    open_ = GaugeMetricFamily("hatthasilpa_integrity_incident_open", "1 per unresolved incident, by its state",
                              labels=["tenant", "check", "severity", "state"])
    muted = GaugeMetricFamily("hatthasilpa_integrity_incident_muted",
                              "1 while an incident's mute holds (its violation alerts are held back)",
                              labels=["tenant", "check"])
    query = sa.select(incident).where(incident.c.resolved_at.is_(None)).order_by(incident.c.id)
    if tenant is not None:
        query = query.where(incident.c.tenant_code == tenant)
    for row in conn.execute(query):
        state = effective_state(row, now)
        open_.add_metric([row.tenant_code, row.check_id, row.severity, state], 1)
        muted.add_metric([row.tenant_code, row.check_id], 1 if state == IncidentState.MUTED.value else 0)
    return (open_, muted,
            _histogram(conn, tenant, incident.c.ack_seconds, "hatthasilpa_integrity_time_to_acknowledge_seconds",
                       "Seconds from an incident's opening to its first acknowledgement"),
            _histogram(conn, tenant, incident.c.resolve_seconds, "hatthasilpa_integrity_time_to_resolve_seconds",
                       "Seconds from an incident's opening to its resolution"),
            *_counters(conn, tenant))


def audit_families(settings: Settings, conn: sa.Connection, tenant: str | None) -> Iterable[Metric]:
    ok = GaugeMetricFamily("hatthasilpa_audit_chain_ok",
                           "1 when the last verification found the audit log's hash chain intact, else 0")
    if tenant is None:  # one chain per monitor store: not a tenant's metric
        last = audit_log.last_verification(conn)
        if last is not None:
            ok.add_metric([], 1 if last.ok else 0)
    return (ok,)
