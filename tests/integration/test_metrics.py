"""The Prometheus exporter over real HTTP, and the Pushgateway path against a real receiver."""

from __future__ import annotations

import datetime as dt
import threading
import urllib.request

import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from checks import metrics, store
from checks.runner import CheckResult, RunReport
from checks.schema import check_latest, finding
from lifecycle.db import get_engine
from lifecycle.uow import utcnow
from reconcile.metrics import SOURCES
from tests.loopback import http_receiver

T0 = dt.datetime(2026, 11, 29, 6, 0, tzinfo=dt.timezone.utc)


def record(stores, tenant, check, severity, count, error=None, sample=None, minutes=0):
    """One recorded run of one (tenant, check), written the way every run is written."""
    at = T0 + dt.timedelta(minutes=minutes)
    result = CheckResult(check=check, tenant=tenant, severity=severity, family="tokens", count=count,
                         sample=sample or [], started_at=at, finished_at=at, duration_seconds=0.25, error=error)
    return store.record_run(stores.settings.monitor_url, RunReport(None, at, at, [result]))


def scrape(url: str) -> dict:
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def serve_in_thread(stores):
    started = threading.Event()
    holder = {}

    def ready(server):
        holder["server"] = server
        started.set()

    thread = threading.Thread(target=metrics.serve, args=(stores.settings, "127.0.0.1", 0, ready),
                              kwargs={"sources": SOURCES}, daemon=True)
    thread.start()
    assert started.wait(30)
    return holder["server"], thread


def test_metrics_endpoint_serves_last_results_without_per_row_labels(stores):
    stores.add_tenant("atelier")
    record(stores, "atelier", "orphan_token", "critical", 5, sample=[{"token_id": 7, "operator_id": "nok"}])
    record(stores, "atelier", "orphan_token", "critical", 2, minutes=15)
    record(stores, "atelier", "orphan_token", "critical", 0, error="statement timeout", minutes=30)
    record(stores, "atelier", "stale_open_session", "warning", 0, minutes=30)
    server, thread = serve_in_thread(stores)
    try:
        samples = scrape(f"http://127.0.0.1:{server.server_port}/metrics")
    finally:
        server.shutdown()
        thread.join(10)
    key = lambda name, **labels: (name, tuple(sorted(labels.items())))  # noqa: E731
    assert samples[key("hatthasilpa_integrity_violations", tenant="atelier", check="orphan_token",
                       severity="critical")] == 2  # the last successful run
    assert samples[key("hatthasilpa_integrity_violations", tenant="atelier", check="stale_open_session",
                       severity="warning")] == 0  # ran clean: zero, not missing
    assert samples[key("hatthasilpa_integrity_check_errors_total", tenant="atelier", check="orphan_token")] == 1
    assert samples[key("hatthasilpa_integrity_check_last_success_timestamp_seconds", tenant="atelier",
                       check="orphan_token")] == (T0 + dt.timedelta(minutes=15)).timestamp()
    assert samples[key("hatthasilpa_serial_outbox_pending", tenant="atelier")] == 0
    assert samples[key("hatthasilpa_serial_outbox_parked", tenant="atelier")] == 0
    labels = {name for (_, pairs) in samples for name, _ in pairs}
    assert labels <= {"tenant", "check", "severity", "action", "source", "state", "kind"}  # source: exporter health; state: incidents
    assert not any("nok" in str(pairs) or "7" == v for (_, pairs) in samples for _, v in pairs)


@pytest.fixture
def pushgateway():
    """A real HTTP receiver on loopback that records what a Pushgateway would be sent."""
    with http_receiver(lambda h, body: (h.command, h.path, body.decode()), status=202) as server:
        yield server.address, server.received


def test_a_pushgateway_that_is_away_is_reported_not_raised(stores):
    stores.add_tenant("atelier")
    record(stores, "atelier", "orphan_token", "critical", 3)
    failures = metrics.push(stores.settings, "127.0.0.1:9", ["atelier"])  # port 9 (discard) is closed here
    assert len(failures) == 1 and failures[0].startswith("atelier: ")


def test_pushadd_reaches_a_pushgateway_grouped_by_tenant(stores, pushgateway):
    stores.add_tenant("atelier")
    record(stores, "atelier", "orphan_token", "critical", 3)
    address, received = pushgateway
    assert metrics.push(stores.settings, address, ["atelier"]) == []
    assert len(received) == 1
    method, path, body = received[0]
    assert method == "POST" and path == "/metrics/job/hatthasilpa_integrity/tenant/atelier"
    assert 'hatthasilpa_integrity_violations{check="orphan_token",severity="critical",tenant="atelier"} 3.0' in body


def test_check_run_pushes_each_tenant_when_a_pushgateway_is_configured(stores, pushgateway, monkeypatch):
    stores.add_tenant("atelier")
    stores.add_tenant("second")
    address, received = pushgateway
    monkeypatch.setenv("HATTHASILPA_PUSHGATEWAY_URL", address)
    data = stores.ok("check", "run", "--check", "orphan_token", "--json")
    assert data["pushed_to"] == address
    assert sorted(path for _, path, _ in received) == ["/metrics/job/hatthasilpa_integrity/tenant/atelier",
                                                        "/metrics/job/hatthasilpa_integrity/tenant/second"]
    assert all('check="orphan_token"' in body for _, _, body in received)


def test_metrics_serve_refuses_a_busy_port(stores):
    server, thread = serve_in_thread(stores)
    try:
        code, body = stores.cli("metrics", "serve", "--port", server.server_port)
    finally:
        server.shutdown()
        thread.join(10)
    assert code == 2 and body["error"]["code"] == "VALIDATION_ERROR"


def key(name, **labels):
    return name, tuple(sorted(labels.items()))


def collect(settings) -> dict:
    """One scrape through the registry the server serves (no HTTP)."""
    registry = metrics.registry_for(settings)
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in registry.collect() for s in family.samples}


def test_the_interval_of_each_check_is_its_schedule(stores):
    stores.add_tenant("atelier")
    record(stores, "atelier", "orphan_token", "critical", 0)
    record(stores, "atelier", "scrapped_token_resurrected", "critical", 0)
    record(stores, "atelier", "serial_missing_in_core", "error", 0)
    record(stores, "atelier", "gx.flow_token", "error", 0)
    samples = collect(stores.settings)
    interval = {check: samples[key("hatthasilpa_integrity_check_interval_seconds", tenant="atelier", check=check)]
                for check in ("orphan_token", "scrapped_token_resurrected", "serial_missing_in_core", "gx.flow_token")}
    assert interval == {"orphan_token": 900, "scrapped_token_resurrected": 3600, "serial_missing_in_core": 3600,
                        "gx.flow_token": 86400}


def test_the_scrape_reads_the_kept_latest_row_and_pruning_history_changes_nothing(stores):
    stores.add_tenant("atelier")
    record(stores, "atelier", "orphan_token", "critical", 4)
    record(stores, "atelier", "orphan_token", "critical", 0, error="statement timeout", minutes=15)
    record(stores, "atelier", "orphan_token", "critical", 2, minutes=30)
    record(stores, "atelier", "orphan_token", "critical", 0, error="statement timeout", minutes=45)
    record(stores, "atelier", "duplicate_serial", "critical", 1, minutes=45)
    before = collect(stores.settings)
    assert before[key("hatthasilpa_integrity_violations", tenant="atelier", check="orphan_token",
                      severity="critical")] == 2
    assert before[key("hatthasilpa_integrity_check_errors_total", tenant="atelier", check="orphan_token")] == 2
    assert before[key("hatthasilpa_integrity_check_errors_total", tenant="atelier", check="duplicate_serial")] == 0
    assert before[key("hatthasilpa_integrity_check_last_success_timestamp_seconds", tenant="atelier",
                      check="orphan_token")] == (T0 + dt.timedelta(minutes=30)).timestamp()

    deleted = store.prune(stores.settings.monitor_url, utcnow() + dt.timedelta(days=1))  # everything is old
    # kept: orphan_token's last run (an error) and last success, duplicate_serial's last run, and the
    # first run, which opened orphan_token's still unresolved incident; only the second run goes
    assert deleted == {"runs": 1, "findings": 1}
    engine = get_engine(stores.settings.monitor_url)
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(finding)).scalar_one() == 4
    errors_before = before.pop(key("hatthasilpa_integrity_check_errors_total", tenant="atelier",
                                   check="orphan_token"))
    after = collect(stores.settings)
    assert after.pop(key("hatthasilpa_integrity_check_errors_total", tenant="atelier",
                         check="orphan_token")) == errors_before  # the counter never goes back
    assert after == before
    assert {r["check_id"]: r["count"] for r in store.latest_results(stores.settings.monitor_url, "atelier")} == \
        {"orphan_token": 0, "duplicate_serial": 1}
    assert store.prune(stores.settings.monitor_url, utcnow() + dt.timedelta(days=1)) == {"runs": 0, "findings": 0}


def test_retention_keeps_what_is_younger_than_the_cutoff(stores):
    stores.add_tenant("atelier")
    for minutes in (0, 15, 30):
        record(stores, "atelier", "orphan_token", "critical", 1, minutes=minutes)
    assert store.prune(stores.settings.monitor_url, utcnow() - dt.timedelta(days=90)) == {"runs": 0, "findings": 0}
    with get_engine(stores.settings.monitor_url).connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(finding)).scalar_one() == 3


def test_concurrent_runs_count_every_error_and_keep_the_newest_finding(pg_stores):
    pg_stores.add_tenant("atelier")
    record(pg_stores, "atelier", "orphan_token", "critical", 0)  # the row exists: writers now race on it

    def writer(n):
        for i in range(10):
            record(pg_stores, "atelier", "orphan_token", "critical", 0, error=f"timeout {n}.{i}", minutes=i)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    with get_engine(pg_stores.settings.monitor_url).connect() as conn:
        latest = conn.execute(sa.select(check_latest)).one()
        newest = conn.execute(sa.select(sa.func.max(finding.c.id))).scalar_one()
    assert latest.error_count == 40
    assert latest.finding_id == newest
