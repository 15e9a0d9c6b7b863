"""A PostgreSQL server that goes away and comes back, under a monitoring run, a relay and
a long-lived ``metrics serve``.

The server that goes away is a throwaway cluster of this test (``initdb`` + ``pg_ctl`` on
a free port under a temporary folder) — never the suite's shared server. Connection
pools must recover without a process restart (``pool_pre_ping``): every engine below is
created before the server stops and reused after it is back.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request

import psycopg
import pytest

from checks import catalogue, metrics
from checks.runner import run_checks
from hatthasilpa.stores import STORES
from hatthasilpa import cli
from lifecycle import migrate, registry
from lifecycle.db import Settings, dispose_engine
from tests import pg
from tests.e2e.test_cli import EXE
from tests.conftest import LINEAR_GRAPH
from tests.serial_support import core

TENANT = "atelier"


@pytest.fixture
def cluster():
    server = pg.ThrowawayCluster()
    yield server
    server.stop()


def _db(cluster, name: str) -> str:
    with psycopg.connect(cluster.url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return cluster.url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1) + f"/{name}"


@pytest.fixture
def restart_floor(pg_stores, cluster, tmp_path, monkeypatch):
    """Core and the monitor store on the suite's server, the tenant DB on the throwaway cluster:
    tenant ``atelier`` with graph ``bag`` and job ``J-1`` started (3 tokens, 3 serials in the outbox)."""
    template = _db(cluster, f"t_{TENANT}").replace(f"t_{TENANT}", "t_{tenant}")
    monkeypatch.setenv("HATTHASILPA_TENANT_URL_TEMPLATE", template)
    settings = Settings(core_url=pg_stores.settings.core_url, monitor_url=pg_stores.settings.monitor_url,
                        tenant_url_template=template)
    registry.add_tenant(settings, TENANT)
    graph = tmp_path / "bag.json"
    graph.write_text(json.dumps(LINEAR_GRAPH))
    assert cli.run(["graph", "create", "--tenant", TENANT, "--code", "bag", "--file", str(graph)])[0] == 0
    assert cli.run(["job", "create", "--tenant", TENANT, "--code", "J-1", "--sku", "TOTE", "--quantity", "3",
                    "--graph", "bag"])[0] == 0
    assert cli.run(["job", "start", "--tenant", TENANT, "J-1"])[0] == 0
    yield settings
    dispose_engine(settings.tenant_url(TENANT))


def _relay(settings: Settings) -> subprocess.CompletedProcess:
    return subprocess.run([EXE, "outbox", "relay"], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "HATTHASILPA_CORE_URL": settings.core_url,
                               "HATTHASILPA_TENANT_URL_TEMPLATE": settings.tenant_url_template,
                               "HATTHASILPA_MONITOR_URL": settings.monitor_url})


def test_a_run_and_a_relay_while_the_tenant_db_is_down_record_clear_errors_and_the_next_ones_succeed(
        restart_floor, cluster, pg_stores):
    settings = restart_floor
    first = run_checks(settings, [TENANT])  # fills the tenant engine's pool
    assert [r.check for r in first.results if r.error] == []

    cluster.go_down()
    down = run_checks(settings, [TENANT])
    assert {r.check for r in down.results} == {c.id for c in catalogue.all_checks()}
    assert all(r.error and "tenant unreachable" in r.error for r in down.results), down.results
    counted = metrics.registry_for(settings, TENANT)
    assert all(counted.get_sample_value("hatthasilpa_integrity_check_errors_total",
                                        {"tenant": TENANT, "check": c.id}) == 1 for c in catalogue.all_checks())
    relay = _relay(settings)
    body = json.loads(relay.stdout)
    assert relay.returncode != 0 or body["data"]["failed"], body  # the relay says it could not deliver
    assert "Traceback" not in relay.stdout
    assert core(pg_stores, "SELECT count(*) FROM serial_registry") == [(0,)]  # nothing half-delivered

    cluster.come_back()
    back = run_checks(settings, [TENANT])  # the same process, the same engine: the pool recovers by itself
    assert [r.error for r in back.results if r.error] == []
    assert {r.check: r.count for r in back.results if r.count} == {}
    relayed = _relay(settings)
    assert relayed.returncode == 0 and json.loads(relayed.stdout)["data"]["published"] == 3, relayed.stderr
    with psycopg.connect(cluster.url.rsplit("/", 1)[0] + f"/t_{TENANT}") as conn:
        assert conn.execute("SELECT count(*), count(published_at) FROM serial_outbox").fetchone() == (3, 3)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _scrape(port: int, deadline: float) -> str:
    """GET /metrics, retrying until the server listens (bounded by ``deadline``)."""
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as response:
                assert response.status == 200
                return response.read().decode()
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                raise


def test_a_long_lived_metrics_serve_survives_a_restart_of_its_monitor_store(pg_stores, cluster):
    monitor_url = _db(cluster, "monitor")
    migrate.upgrade(monitor_url, STORES["monitor"])
    dispose_engine(monitor_url)
    port = _free_port()
    env = {**os.environ, "HATTHASILPA_CORE_URL": pg_stores.settings.core_url,
           "HATTHASILPA_TENANT_URL_TEMPLATE": pg_stores.settings.tenant_url_template,
           "HATTHASILPA_MONITOR_URL": monitor_url}
    server = subprocess.Popen([EXE, "metrics", "serve", "--port", str(port)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env)
    try:
        before = _scrape(port, time.monotonic() + 120)
        assert 'hatthasilpa_metrics_source_error{source="check"} 0.0' in before
        cluster.go_down()
        down = _scrape(port, time.monotonic() + 60)
        assert "hatthasilpa_metrics_exporter_up 1.0" in down
        assert 'hatthasilpa_metrics_source_error{source="check"} 1.0' in down
        cluster.come_back()
        after = _scrape(port, time.monotonic() + 60)
        assert 'hatthasilpa_metrics_source_error{source="check"} 0.0' in after  # same process: the pool recovered
        assert server.poll() is None
    finally:
        server.terminate()
        _, err = server.communicate(timeout=60)
    assert "Traceback" not in err
    assert err.count("metrics source check unavailable") >= 1
