"""Prometheus metrics of SPEC §8, read from the monitor store.

``MonitorCollector`` is a custom collector: every scrape reads the last result per
(tenant, check) from ``finding``, the outbox backlog from each tenant DB (a partial
index keeps that cheap) and the repair audit, and yields the metric families. Only
tenant, check, severity and action become labels — never operators, serials or other
per-row values. A (tenant, check) pair that ran exports its count, zero included, so a
missing series means "not run".
"""

from __future__ import annotations

import logging
import signal
import threading
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, make_wsgi_app, pushadd_to_gateway
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from lifecycle import registry as tenants
from lifecycle.db import Settings, get_engine
from lifecycle.schema import finding, serial_outbox
from lifecycle.uow import as_utc, utcnow

log = logging.getLogger(__name__)

PUSH_JOB = "hatthasilpa_integrity"


def _latest(conn: sa.Connection, tenant: str | None, *conditions) -> sa.Select:
    latest_ids = sa.select(sa.func.max(finding.c.id)).where(*conditions).group_by(finding.c.tenant_code,
                                                                                  finding.c.check_id)
    if tenant is not None:
        latest_ids = latest_ids.where(finding.c.tenant_code == tenant)
    return sa.select(finding).where(finding.c.id.in_(latest_ids)).order_by(finding.c.tenant_code, finding.c.check_id)


class MonitorCollector(Collector):
    """Yields the SPEC §8 families at each scrape; ``tenant`` limits it to one tenant."""

    def __init__(self, settings: Settings, tenant: str | None = None) -> None:
        self.settings = settings
        self.tenant = tenant

    def collect(self):
        violations = GaugeMetricFamily("hatthasilpa_integrity_violations",
                                       "Rows breaking an integrity check at its last successful run",
                                       labels=["tenant", "check", "severity"])
        duration = GaugeMetricFamily("hatthasilpa_integrity_check_duration_seconds",
                                     "Duration of the last run of a check", labels=["tenant", "check"])
        last_success = GaugeMetricFamily("hatthasilpa_integrity_check_last_success_timestamp_seconds",
                                         "Unix time the check last finished without error", labels=["tenant", "check"])
        errors = CounterMetricFamily("hatthasilpa_integrity_check_errors_total",
                                     "Runs of a check that failed with an error", labels=["tenant", "check"])
        pending = GaugeMetricFamily("hatthasilpa_serial_outbox_pending", "Unpublished serial outbox rows",
                                    labels=["tenant"])
        oldest = GaugeMetricFamily("hatthasilpa_serial_outbox_oldest_pending_age_seconds",
                                   "Age of the oldest unpublished serial outbox row (0 when none)", labels=["tenant"])
        applied = CounterMetricFamily("hatthasilpa_repairs_applied_total", "Repair actions applied to rows",
                                      labels=["tenant", "check", "action"])
        skipped = CounterMetricFamily("hatthasilpa_repair_rows_skipped_total",
                                      "Planned repair rows skipped because they no longer qualified",
                                      labels=["tenant", "check"])
        monitor = get_engine(self.settings.monitor_url)
        with monitor.connect() as conn:
            for row in conn.execute(_latest(conn, self.tenant, finding.c.error.is_(None))):
                violations.add_metric([row.tenant_code, row.check_id, row.severity], row.count)
                last_success.add_metric([row.tenant_code, row.check_id], as_utc(row.finished_at).timestamp())
            for row in conn.execute(_latest(conn, self.tenant)):
                duration.add_metric([row.tenant_code, row.check_id], row.duration_seconds)
            query = (sa.select(finding.c.tenant_code, finding.c.check_id, sa.func.count())
                     .where(finding.c.error.is_not(None)).group_by(finding.c.tenant_code, finding.c.check_id))
            if self.tenant is not None:
                query = query.where(finding.c.tenant_code == self.tenant)
            for tenant, check, n in conn.execute(query):
                errors.add_metric([tenant, check], n)
            for labels, value in repair_counts(conn, self.tenant, "applied"):
                applied.add_metric(labels, value)
            for labels, value in repair_counts(conn, self.tenant, "skipped"):
                skipped.add_metric(labels, value)
        for tenant, count, age in self._outbox():
            pending.add_metric([tenant], count)
            oldest.add_metric([tenant], age)
        yield from (violations, duration, last_success, errors, pending, oldest, applied, skipped)

    def _outbox(self):
        codes = [self.tenant] if self.tenant else [t["tenant_code"] for t in tenants.list_tenants(self.settings)]
        now = utcnow()
        for code in codes:
            try:
                with get_engine(self.settings.tenant_url(code)).connect() as conn:
                    count, first = conn.execute(sa.select(sa.func.count(), sa.func.min(serial_outbox.c.created_at))
                                                .where(serial_outbox.c.published_at.is_(None))).one()
            except sa.exc.DBAPIError as exc:  # one unreachable tenant must not break the scrape
                log.warning("outbox metrics of tenant %s unavailable: %s", code, exc.orig)
                continue
            yield code, count, max(0.0, (now - as_utc(first)).total_seconds()) if first else 0.0


def repair_counts(conn: sa.Connection, tenant: str | None, kind: str):
    """(labels, value) pairs of the repair counters; empty until the repair audit exists."""
    try:
        from reconcile.audit import repair_metric_rows
    except ImportError:
        return []
    return repair_metric_rows(conn, tenant, kind)


def registry_for(settings: Settings, tenant: str | None = None) -> CollectorRegistry:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(MonitorCollector(settings, tenant))
    return reg


def push(settings: Settings, gateway: str, tenant: str) -> None:
    """``pushadd`` one tenant's metrics, grouped by tenant, to a Pushgateway."""
    pushadd_to_gateway(gateway, job=PUSH_JOB, grouping_key={"tenant": tenant}, registry=registry_for(settings, tenant))


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, fmt, *args):
        log.debug("scrape: " + fmt, *args)


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


def make_metrics_server(settings: Settings, host: str, port: int):
    return make_server(host, port, make_wsgi_app(registry_for(settings)), _ThreadingWSGIServer,
                       handler_class=_QuietHandler)


def serve(settings: Settings, host: str, port: int, ready=None) -> None:
    """Serve /metrics until SIGTERM or SIGINT."""
    server = make_metrics_server(settings, host, port)
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
