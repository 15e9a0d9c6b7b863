"""Prometheus metrics of the monitor, read from the monitor store (names in ``docs/operations.md``).

``MonitorCollector`` is a custom collector: at every scrape each of its *sources* reads
what it owns and yields metric families. This module's sources are the check results
(one ``check_latest`` row per (tenant, check), kept on write, so a scrape costs the same
whatever the length of the history) and the serial outbox backlog of
each tenant DB (``lifecycle.outbox.backlog``, through a partial index), the incidents and
the audit chain's last verification (``checks.incident_metrics``), and the lifecycle volumes
of the last complete hour with their anomaly scores; ``reconcile``
adds the repair counters (``reconcile.metrics.SOURCES`` is the whole monitor). Only
tenant, check, severity and action become labels — never operators, serials or other
per-row values. A (tenant, check) pair that ran exports its count, zero included, so a
missing series means "not run".

Invariant: /metrics answers while a store is down, and no per-row value becomes a label.
Guarded by tests/integration/test_metrics.py, tests/e2e/test_hostile_input.py.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterable, Sequence
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, make_wsgi_app, pushadd_to_gateway
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from lifecycle import outbox
from lifecycle import registry as tenants
from lifecycle.db import Settings, get_engine
from lifecycle.uow import as_utc, utcnow

from .catalogue import cadence_of
from .incident_metrics import audit_families, incident_families
from .schema import check_latest, lifecycle_volume

log = logging.getLogger(__name__)

PUSH_JOB = "hatthasilpa_integrity"
PUSHGATEWAY_URL = "HATTHASILPA_PUSHGATEWAY_URL"  # the setting: where runs push, when set

# A source: (settings, monitor connection, tenant or None) -> metric families.
Source = Callable[[Settings, sa.Connection, "str | None"], Iterable[Metric]]


def check_families(settings: Settings, conn: sa.Connection, tenant: str | None) -> Iterable[Metric]:
    """The check results: violations, durations, last success, the schedule interval and the error counter."""
    violations = GaugeMetricFamily("hatthasilpa_integrity_violations",
                                   "Rows breaking an integrity check at its last successful run",
                                   labels=["tenant", "check", "severity"])
    duration = GaugeMetricFamily("hatthasilpa_integrity_check_duration_seconds",
                                 "Duration of the last run of a check", labels=["tenant", "check"])
    last_success = GaugeMetricFamily("hatthasilpa_integrity_check_last_success_timestamp_seconds",
                                     "Unix time the check last finished without error", labels=["tenant", "check"])
    interval = GaugeMetricFamily("hatthasilpa_integrity_check_interval_seconds",
                                 "How often the schedule runs the check", labels=["tenant", "check"])
    errors = CounterMetricFamily("hatthasilpa_integrity_check_errors_total",
                                 "Runs of a check that failed with an error", labels=["tenant", "check"])
    query = sa.select(check_latest).order_by(check_latest.c.tenant_code, check_latest.c.check_id)
    if tenant is not None:
        query = query.where(check_latest.c.tenant_code == tenant)
    for row in conn.execute(query):
        pair = [row.tenant_code, row.check_id]
        if row.success_finding_id is not None:
            violations.add_metric([*pair, row.severity], row.success_count)
            last_success.add_metric(pair, as_utc(row.success_at).timestamp())
        duration.add_metric(pair, row.duration_seconds)
        interval.add_metric(pair, int(cadence_of(row.check_id)))
        errors.add_metric(pair, row.error_count)
    return violations, duration, last_success, interval, errors


def outbox_families(settings: Settings, conn: sa.Connection, tenant: str | None) -> Iterable[Metric]:
    """Each tenant's serial outbox backlog, read from its own DB (one unreachable tenant is left out)."""
    pending = GaugeMetricFamily("hatthasilpa_serial_outbox_pending",
                                "Serial outbox rows waiting for the relay (retries included, parked rows not)",
                                labels=["tenant"])
    parked = GaugeMetricFamily("hatthasilpa_serial_outbox_parked",
                               "Serial outbox rows the relay parked after its last attempt", labels=["tenant"])
    oldest = GaugeMetricFamily("hatthasilpa_serial_outbox_oldest_pending_age_seconds",
                               "Age of the oldest pending serial outbox row (0 when none)", labels=["tenant"])
    codes = [tenant] if tenant else [t["tenant_code"] for t in tenants.list_tenants(settings)]
    now = utcnow()
    for code in codes:
        try:
            with get_engine(settings.tenant_url(code)).connect() as tconn:
                counts = outbox.backlog(tconn, now)
        except sa.exc.DBAPIError as exc:  # one unreachable tenant must not break the scrape
            log.warning("outbox metrics of tenant %s unavailable: %s", code, exc.orig)
            continue
        pending.add_metric([code], counts["pending"])
        parked.add_metric([code], counts["parked"])
        oldest.add_metric([code], counts["oldest_pending_age_seconds"] or 0.0)
    return pending, parked, oldest


def volume_families(settings: Settings, conn: sa.Connection, tenant: str | None) -> Iterable[Metric]:
    """Each tenant's lifecycle volumes of the last complete hour, with their expectation and score.

    Reads the rows of the last two hours only (``ix_lifecycle_volume_hour``), so a scrape costs
    the same whatever the length of the series; a kind whose last hour is not scored yet (too
    little history) exports its volume only."""
    volume = GaugeMetricFamily("hatthasilpa_lifecycle_volume", "Lifecycle volume of the last complete hour",
                               labels=["tenant", "kind"])
    expected = GaugeMetricFamily("hatthasilpa_lifecycle_volume_expected",
                                 "Expected volume of that hour (its hour-of-week baseline)", labels=["tenant", "kind"])
    scale = GaugeMetricFamily("hatthasilpa_lifecycle_volume_scale",
                              "Robust spread of that hour's baseline (the band is expected ± threshold × scale)",
                              labels=["tenant", "kind"])
    score = GaugeMetricFamily("hatthasilpa_lifecycle_volume_anomaly_score",
                              "Robust z-score of the last complete hour against its baseline", labels=["tenant", "kind"])
    if not sa.inspect(conn).has_table(lifecycle_volume.name):
        return volume, expected, scale, score
    from . import volumes  # with pandas: loaded by a scrape, not by every command that names a setting

    since = volumes.last_complete_hour() - volumes.HOUR
    query = sa.select(lifecycle_volume).where(lifecycle_volume.c.hour >= since)
    if tenant is not None:
        query = query.where(lifecycle_volume.c.tenant_code == tenant)
    latest: dict[tuple[str, str], sa.Row] = {}
    for row in conn.execute(query.order_by(lifecycle_volume.c.hour)):
        latest[(row.tenant_code, row.kind)] = row
    for (code, kind), row in sorted(latest.items()):
        volume.add_metric([code, kind], row.value)
        if row.score is not None:
            expected.add_metric([code, kind], row.expected)
            scale.add_metric([code, kind], row.scale)
            score.add_metric([code, kind], row.score)
    return volume, expected, scale, score


SOURCES: tuple[Source, ...] = (check_families, outbox_families, incident_families, audit_families,
                               volume_families)


class MonitorCollector(Collector):
    """Yields every source's families at each scrape; ``tenant`` limits them to one tenant.

    A source that cannot be read (the monitor store is down, a query fails) is left out of
    that scrape: the exporter still answers, with ``hatthasilpa_metrics_exporter_up`` 1 and
    ``hatthasilpa_metrics_source_error{source}`` 1 for the failed source, and logs one line
    per failure — no traceback. Each source reads on its own connection, so one failure
    cannot poison the others' transaction."""

    def __init__(self, settings: Settings, tenant: str | None = None, sources: Sequence[Source] = SOURCES) -> None:
        self.settings = settings
        self.tenant = tenant
        self.sources = tuple(sources)

    def collect(self):
        up = GaugeMetricFamily("hatthasilpa_metrics_exporter_up", "1 while the metrics exporter answers scrapes")
        up.add_metric([], 1)
        failed = GaugeMetricFamily("hatthasilpa_metrics_source_error",
                                   "1 when a metrics source could not be read at this scrape, else 0",
                                   labels=["source"])
        for source in self.sources:
            name = source.__name__.removesuffix("_families")
            try:
                with get_engine(self.settings.monitor_url).connect() as conn:
                    families = list(source(self.settings, conn, self.tenant))
            except (sa.exc.SQLAlchemyError, OSError) as exc:
                detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()
                log.error("metrics source %s unavailable: %s: %s", name, type(exc).__name__,
                          detail[0] if detail else "")
                failed.add_metric([name], 1)
                continue
            failed.add_metric([name], 0)
            yield from families
        yield up
        yield failed


def registry_for(settings: Settings, tenant: str | None = None,
                 sources: Sequence[Source] = SOURCES) -> CollectorRegistry:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(MonitorCollector(settings, tenant, sources))
    return reg


def push(settings: Settings, gateway: str, tenants: Iterable[str], sources: Sequence[Source] = SOURCES) -> list[str]:
    """``pushadd`` each tenant's metrics, grouped by tenant, to a Pushgateway; the store and
    ``/metrics`` keep the results when it is away. Returns the failures, one line each."""
    failures = []
    for tenant in tenants:
        try:
            pushadd_to_gateway(gateway, job=PUSH_JOB, grouping_key={"tenant": tenant},
                               registry=registry_for(settings, tenant, sources))
        except OSError as exc:
            log.error("pushing the metrics of tenant %s to %s failed: %s", tenant, gateway, exc)
            failures.append(f"{tenant}: {exc}")
    return failures


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, fmt, *args):
        log.debug("scrape: " + fmt, *args)


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


def make_metrics_server(settings: Settings, host: str, port: int, sources: Sequence[Source] = SOURCES):
    return make_server(host, port, make_wsgi_app(registry_for(settings, sources=sources)), _ThreadingWSGIServer,
                       handler_class=_QuietHandler)


def serve(settings: Settings, host: str, port: int, ready=None, sources: Sequence[Source] = SOURCES) -> None:
    """Serve /metrics until SIGTERM or SIGINT."""
    server = make_metrics_server(settings, host, port, sources)
    stop = threading.Event()

    def _stop(*_):
        stop.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
    log.warning("serving metrics on http://%s:%d/metrics", host, server.server_port)
    if ready is not None:
        ready(server)
    try:
        server.serve_forever()
    finally:
        server.server_close()
