"""`hatthasilpa demo` on the embedded default, as `make demo` runs it."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

from dagster import AssetCheckKey, AssetKey, DagsterInstance

from tests.e2e.test_cli import EXE

ROOT = Path(__file__).resolve().parents[2]


def _env(**extra):
    return {**{k: v for k, v in os.environ.items() if not k.startswith("HATTHASILPA_") and k != "DAGSTER_HOME"},
            **extra}


def test_demo_builds_a_factory_with_jobs_in_every_state(tmp_path):
    proc = subprocess.run([EXE, "demo", "--reset"], cwd=tmp_path, env=_env(), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)["data"]
    assert [t["tenant"] for t in data["tenants"]] == ["atelier", "legacy", "sandbox"]
    for tenant in data["tenants"]:
        assert set(tenant["jobs"]) == {"planned", "in_progress", "completed", "cancelled", "archived"}
        assert set(tenant["tokens"]) >= {"ready", "paused", "completed", "scrapped"}
        assert tenant["sessions"]["closed"] > 0 and tenant["work_queue"] > 0
    # The monitoring plan ran through Dagster on every tenant: only the legacy tenant's faults show.
    failing = {(f["tenant"], f["check"]) for f in data["findings"] if not f["passed"]}
    assert {tenant for tenant, _ in failing} == {"legacy"}
    assert {"orphan_token", "scrapped_token_resurrected", "session_without_assignment",
            "serial_missing_in_core"} <= {check for _, check in failing}
    assert {f["tenant"] for f in data["findings"]} == {"atelier", "legacy", "sandbox"}
    incidents = {i["check"]: i for i in data["incidents"]}
    assert {"orphan_token", "scrapped_token_resurrected", "session_without_assignment",
            "serial_missing_in_core"} <= set(incidents) <= {check for _, check in failing}
    assert all(i["tenant"] == "legacy" and i["state"] == "open" and i["count"] > 0 for i in incidents.values())
    # Eight weeks of generated volume history give every tenant a baseline; legacy's relay is stuck.
    volumes = {(v["tenant"], v["kind"]): v for v in data["volumes"]}
    assert len(volumes) == 3 * 10 and all(v["weeks"] >= 7 for v in volumes.values())
    stuck = volumes[("legacy", "outbox_backlog")]
    assert not stuck["passed"] and stuck["value"] > stuck["high"]
    assert volumes[("atelier", "outbox_backlog")]["passed"] and volumes[("sandbox", "outbox_backlog")]["passed"]
    assert (tmp_path / "var" / "core.db").exists() and (tmp_path / "var" / "tenant_atelier.db").exists()
    # Without --reset a second run refuses rather than piling a second factory on the first.
    again = subprocess.run([EXE, "demo"], cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300)
    assert again.returncode == 3 and json.loads(again.stdout)["error"]["code"] == "CONFLICT"
    # As `make demo` runs it: into a persistent Dagster instance made with the project's dagster.yaml
    home = tmp_path / ".dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    summary = subprocess.run([EXE, "demo", "--reset", "--summary"], cwd=tmp_path, env=_env(DAGSTER_HOME=str(home)),
                             capture_output=True, text=True, timeout=600)
    assert summary.returncode == 0 and "tenant atelier (production tenant)" in summary.stdout
    assert re.search(r"^legacy\s+orphan_token\s+critical\s+\d+\s+FOUND$", summary.stdout, re.MULTILINE)
    assert "make ui" in summary.stdout and "dagster dev" in summary.stdout and "/metrics" in summary.stdout
    # `dagster dev` on that instance (`make ui`) finds the demo's runs, with legacy failing and sandbox clean
    with DagsterInstance.from_config(str(home)) as instance:
        assert len(instance.get_run_records()) == 3  # one run per tenant
        assert sorted(instance.get_dynamic_partitions("tenant")) == ["atelier", "legacy", "sandbox"]
        key = AssetCheckKey(AssetKey("integrity_findings"), "orphan_token")
        status = {i.partition_key: i.latest_execution_status.value
                  for i in instance.event_log_storage.get_asset_check_partition_info([key])}
    assert status == {"atelier": "SUCCEEDED", "legacy": "FAILED", "sandbox": "SUCCEEDED"}
    # ... and ends with the legacy tenant's open incidents; the audit chain is intact.
    assert "open incidents of legacy:" in summary.stdout
    assert re.search(r"^\s*\d+\s+legacy\s+orphan_token\s+critical\s+open\b", summary.stdout, re.MULTILINE)
    verify = subprocess.run([EXE, "audit", "verify", "--json"], cwd=tmp_path, env=_env(), capture_output=True,
                            text=True, timeout=120)
    assert verify.returncode == 0 and json.loads(verify.stdout)["ok"]
    assert re.search(r"^legacy\s+outbox_backlog\s.*ANOMALY$", summary.stdout, re.MULTILINE)
    # the weekly summary from the incidents: this week's are all new and still open, one of them legacy's orphans
    assert "incidents by week, every tenant:" in summary.stdout
    assert re.search(r"^\d{4}-\d{2}-\d{2}\s+(\d+)\s+0\s+\1$", summary.stdout, re.MULTILINE)
    assert re.search(r"^legacy\s+orphan_token\s+1\s+0\s+1\s+-\s+-$", summary.stdout, re.MULTILINE)


def test_demo_reset_refuses_a_non_sqlite_store(tmp_path):
    env = {**_env(), "HATTHASILPA_CORE_URL": "postgresql+psycopg://postgres@127.0.0.1:5432/not_touched"}
    proc = subprocess.run([EXE, "demo", "--reset"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and json.loads(proc.stdout)["error"]["code"] == "VALIDATION_ERROR"
