"""The incident and audit-chain metrics (``docs/operations.md``), read from the monitor store.

- ``hatthasilpa_integrity_incident_open{tenant,check,severity,state}``: 1 per unresolved
  incident, ``state`` as of the scrape (``open``, ``acknowledged`` or ``muted``);
- ``hatthasilpa_integrity_incident_muted{tenant,check}``: 1 while a mute holds, else 0;
- ``hatthasilpa_integrity_time_to_acknowledge_seconds`` and ``…_time_to_resolve_seconds``
  (histograms by tenant and check) of the incidents' ``ack_seconds`` and ``resolve_seconds``;
- ``hatthasilpa_integrity_incidents_opened_total`` and ``…_incidents_resolved_total``
  (counters by tenant and check): every incident ever opened, and resolved.
  Every pair that has run exports both, 0 before its first incident, so ``increase(…[1w])``
  counts a pair's first incident too: the dashboard's weekly new and resolved;
- ``hatthasilpa_audit_chain_ok``: 1 when the last ``audit verify`` found the chain intact,
  0 when it found it broken (no series before the first verification).

The histograms and the counters read the pair's ``incident_tally`` row, counted on write
(``checks.incident_tally``) — never the ``incident`` table — and ``check_latest`` for the
pairs that ran; the two gauges read the unresolved incidents through a partial index. The
cost follows the open incidents and the pairs, not the history of runs or incidents.
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from lifecycle.db import Settings
from lifecycle.uow import utcnow

from . import audit_log
from .incidents import IncidentState, effective_state
from .schema import DURATION_BUCKETS, bucket_column, check_latest, incident, incident_tally

def _histogram(tallies: list, duration: str, name: str, doc: str) -> HistogramMetricFamily:
    """One series per pair with at least one ``duration`` counted, from its ``incident_tally`` row."""
    family = HistogramMetricFamily(name, doc, labels=["tenant", "check"])
    for row in tallies:
        counts = row._mapping
        if counts[f"{duration}_count"]:
            buckets = [(repr(b), counts[bucket_column(duration, b)]) for b in DURATION_BUCKETS]
            family.add_metric([row.tenant_code, row.check_id], [*buckets, ("+Inf", counts[f"{duration}_count"])],
                              float(counts[f"{duration}_sum"]))
    return family


def _counters(conn: sa.Connection, tenant: str | None,
              tallies: list) -> tuple[CounterMetricFamily, CounterMetricFamily]:
    opened = CounterMetricFamily("hatthasilpa_integrity_incidents_opened",
                                 "Incidents opened, ever (increase over a week: the week's new incidents)",
                                 labels=["tenant", "check"])
    resolved = CounterMetricFamily("hatthasilpa_integrity_incidents_resolved",
                                   "Incidents resolved, ever (increase over a week: the week's resolved incidents)",
                                   labels=["tenant", "check"])
    pairs = sa.select(check_latest.c.tenant_code, check_latest.c.check_id)
    if tenant is not None:
        pairs = pairs.where(check_latest.c.tenant_code == tenant)
    totals = {(code, check): (0, 0) for code, check in conn.execute(pairs)}
    totals.update({(row.tenant_code, row.check_id): (row.opened, row.resolved) for row in tallies})
    for (code, check), (n, done) in sorted(totals.items()):
        opened.add_metric([code, check], n)
        resolved.add_metric([code, check], done)
    return opened, resolved


def _tallies(conn: sa.Connection, tenant: str | None) -> list:
    """The ``incident_tally`` rows, one per pair that has had an incident."""
    query = sa.select(incident_tally).order_by(incident_tally.c.tenant_code, incident_tally.c.check_id)
    if tenant is not None:
        query = query.where(incident_tally.c.tenant_code == tenant)
    return conn.execute(query).all()


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
    tallies = _tallies(conn, tenant)
    return (open_, muted,
            _histogram(tallies, "ack", "hatthasilpa_integrity_time_to_acknowledge_seconds",
                       "Seconds from an incident's opening to its first acknowledgement"),
            _histogram(tallies, "resolve", "hatthasilpa_integrity_time_to_resolve_seconds",
                       "Seconds from an incident's opening to its resolution"),
            *_counters(conn, tenant, tallies))


def audit_families(settings: Settings, conn: sa.Connection, tenant: str | None) -> Iterable[Metric]:
    ok = GaugeMetricFamily("hatthasilpa_audit_chain_ok",
                           "1 when the last verification found the audit log's hash chain intact, else 0")
    if tenant is None:  # one chain per monitor store: not a tenant's metric
        last = audit_log.last_verification(conn)
        if last is not None:
            ok.add_metric([], 1 if last.ok else 0)
    return (ok,)
