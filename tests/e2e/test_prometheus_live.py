"""A real Prometheus in the loop: Debian's `prometheus` scrapes `hatthasilpa metrics serve` every
second and evaluates `deploy/prometheus/alerts.yml`; every PromQL expression of the Grafana
dashboard is evaluated against it.

Both servers run on loopback ports in their own process groups, with a temporary data folder,
and are stopped at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import sqlalchemy as sa

import reconcile
from checks import volumes
from checks.schema import lifecycle_volume
from lifecycle.db import get_engine
from tests.e2e.test_cli import EXE, hs
from tests.e2e.test_dagster_ui import free_port
from tests.faults import FAULTS
from tests.floor import build_clean_floor
from tests.processes import process_group

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
ALERT = "HatthasilpaCriticalIntegrityViolation"
# Grafana's variables, as a dashboard user with every tenant selected would have them
VARIABLES = {"$tenant": ".*", "$__rate_interval": "1m", "$__range": "1h"}


def query(base: str, promql: str) -> list[dict]:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    return body["data"]["result"]


def wait_for(what: str, condition, procs, deadline_s: float = 90):
    """Poll an external server until ``condition()`` is truthy (bounded; the servers may die first)."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        for proc in procs:
            assert proc.poll() is None, f"{proc.args[0]} exited with {proc.returncode}"
        try:
            found = condition()
        except OSError:
            found = None
        if found:
            return found
        time.sleep(0.5)  # readiness poll of an external server, not a stand-in for synchronization
    raise AssertionError(f"{what} not within {deadline_s} s")


def dashboard_exprs() -> list[str]:
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "hatthasilpa-integrity.json").read_text())
    exprs = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):  # a row panel holds none
            expr = target["expr"]
            for name, value in VARIABLES.items():
                expr = expr.replace(name, value)
            exprs.append(expr)
    return exprs


def alerts_for(base: str) -> dict[str, str]:
    return {a["metric"]["tenant"]: a["metric"]["alertstate"] for a in query(base, f'ALERTS{{alertname="{ALERT}"}}')}


def test_prometheus_pends_the_critical_alert_for_the_faulty_tenant_only_and_drops_it_after_the_repair(
        pg_factory, tmp_path):
    if not os.path.exists(PROMETHEUS):
        pytest.fail("the Prometheus server is required: `apt-get install prometheus` (Debian); .ci/run installs it")
    floor = build_clean_floor(pg_factory)
    pg_factory.add_tenant("sandbox", test=True)
    for tenant in ("atelier", "sandbox"):
        assert hs(pg_factory, "check", "run", "--tenant", tenant, "--json")[0] == 0
    # the volume panels: one scored hour of every kind; the audit panel: one verification of the chain
    hour = volumes.last_complete_hour()
    with get_engine(pg_factory.settings.monitor_url).begin() as conn:
        volumes.write(conn, "atelier", [{"hour": hour, "kind": kind, "value": 10.0} for kind in volumes.KIND_IDS])
        conn.execute(sa.update(lifecycle_volume).values(expected=9.0, scale=1.0, score=1.0))
    assert hs(pg_factory, "audit", "verify", "--json")[0] == 0

    env = {**os.environ, "HATTHASILPA_CORE_URL": pg_factory.settings.core_url,
           "HATTHASILPA_TENANT_URL_TEMPLATE": pg_factory.settings.tenant_url_template,
           "HATTHASILPA_MONITOR_URL": pg_factory.settings.monitor_url}
    metrics_port, prometheus_port = free_port(), free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(json.dumps({  # JSON is YAML
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(ROOT / "deploy" / "prometheus" / "alerts.yml")],
        "scrape_configs": [{"job_name": "hatthasilpa", "static_configs": [
            {"targets": [f"127.0.0.1:{metrics_port}"]}]}]}))
    base = f"http://127.0.0.1:{prometheus_port}"
    with process_group([EXE, "metrics", "serve", "--host", "127.0.0.1", "--port", str(metrics_port)],
                       tmp_path / "metrics.log", env) as exporter, \
            process_group([PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
                           f"--web.listen-address=127.0.0.1:{prometheus_port}"], tmp_path / "prometheus.log") as prom:
        procs = [exporter, prom]
        wait_for("the scrape target up", lambda: query(base, 'up{job="hatthasilpa"} == 1'), procs)
        wait_for("the check results scraped",
                 lambda: query(base, 'hatthasilpa_integrity_violations{tenant="sandbox"}'), procs)
        assert alerts_for(base) == {}

        FAULTS["orphan_token"].apply(floor)
        assert hs(pg_factory, "check", "run", "--tenant", "atelier", "--check", "orphan_token", "--json")[0] == 0
        states = wait_for(f"{ALERT} for atelier", lambda: alerts_for(base).get("atelier") and alerts_for(base), procs)
        assert states == {"atelier": "pending"}  # `for: 5m`: pending now, firing if it lasts; never for sandbox

        # the incident panels: acknowledge the incident, mute it for a moment, then unmute it
        (incident,) = [i for i in hs(pg_factory, "incident", "list", "--tenant", "atelier", "--json")[1]["data"]
                       ["incidents"] if i["check"] == "orphan_token" and i["state"] != "resolved"]
        assert hs(pg_factory, "incident", "ack", incident["id"], "--by", "somchai", "--json")[0] == 0
        assert hs(pg_factory, "incident", "mute", incident["id"], "--by", "somchai", "--for", "30m", "--json")[0] == 0
        wait_for("the mute scraped", lambda: query(base, "hatthasilpa_integrity_incident_muted == 1"), procs)
        time.sleep(3)  # a few scrape and evaluation intervals, so range queries (increase) have samples
        empty = {expr for expr in dashboard_exprs() if not query(base, expr)}
        assert hs(pg_factory, "incident", "unmute", incident["id"], "--by", "somchai", "--json")[0] == 0

        planned = reconcile.plan(pg_factory.settings, "atelier", ["orphan_token"], actor="nok")
        reconcile.approve(pg_factory.settings, planned["plan_id"], by="somchai")
        report = reconcile.apply(pg_factory.settings, planned["plan_id"], execute=True, actor="somchai")
        assert report["recheck"]["counts"]["orphan_token"] == 0
        wait_for(f"{ALERT} for atelier gone", lambda: "atelier" not in alerts_for(base), procs)
        wait_for("the repair counted", lambda: query(base, "hatthasilpa_repairs_applied_total"), procs)
        time.sleep(3)
        # every panel has data at one moment of the story: the violation tables during the fault,
        # the repairs after the repair
        still_empty = {expr for expr in empty if not query(base, expr)}
    assert still_empty == set(), f"dashboard queries without any series: {sorted(still_empty)}"
    assert len(dashboard_exprs()) >= 10
