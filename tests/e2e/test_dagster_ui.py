"""`dagster dev` serves the definitions; the asset page lists the catalogue's checks in a real browser.

Chromium is Debian's (`/usr/bin/chromium`), driven by Playwright; no browser is downloaded.
The screenshot is kept under ``test-artifacts/``.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.processes import process_group

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_serving(url: str, proc: subprocess.Popen, deadline_s: float = 180) -> None:
    """Poll the webserver's health endpoint until it answers (bounded; the process may die first)."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"dagster dev exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)  # readiness poll of an external server, not a stand-in for synchronization
    raise AssertionError(f"dagster dev did not answer {url} within {deadline_s} s")


@contextmanager
def dagster_dev(env: dict, home: Path):
    """Run `dagster dev` in its own process group; stop the whole group afterwards."""
    port = free_port()
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    with process_group([str(Path(sys.executable).parent / "dagster"), "dev", "-h", "127.0.0.1", "-p", str(port)],
                       home / "dagster-dev.log", {**env, "DAGSTER_HOME": str(home)}, cwd=ROOT) as proc:
        wait_until_serving(f"http://127.0.0.1:{port}/server_info", proc)
        yield f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    if not os.path.exists(CHROMIUM):
        pytest.fail("Chromium is required: `apt-get install chromium` (Debian); .ci/run installs it")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def test_asset_page_lists_the_catalogue_checks(sqlite_factory, tmp_path, browser):
    from checks import catalogue
    from pipelines.checks import LIVE_CHECKS as INTEGRITY_CHECKS

    env = {**os.environ, "HATTHASILPA_CORE_URL": sqlite_factory.settings.core_url,
           "HATTHASILPA_TENANT_URL_TEMPLATE": sqlite_factory.settings.tenant_url_template,
           "HATTHASILPA_MONITOR_URL": sqlite_factory.settings.monitor_url}
    home = tmp_path / "dagster_home"
    home.mkdir()
    with dagster_dev(env, home) as base:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{base}/assets/integrity_findings?view=checks", wait_until="domcontentloaded")
        page.get_by_text(INTEGRITY_CHECKS[0].id, exact=True).first.wait_for(timeout=90_000)
        for check in INTEGRITY_CHECKS:  # long names are middle-truncated on screen; the full text is in the DOM
            page.get_by_text(check.id, exact=True).first.wait_for(state="attached", timeout=30_000)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "dagster-integrity-checks.png"), full_page=True)
        html = page.content()
        page.close()
    assert all(c.id in html for c in INTEGRITY_CHECKS)
    assert len(INTEGRITY_CHECKS) < len(catalogue.all_checks())  # the hourly checks sit on the other assets


def dismiss_welcome(page) -> None:
    """A fresh instance greets the first visit with a newsletter dialog; skip it when it shows."""
    skip = page.get_by_role("button", name="Skip")
    try:
        skip.wait_for(timeout=5_000)
    except Exception:  # noqa: BLE001 - the dialog is optional: absent is fine
        return
    skip.click()


def test_a_failing_tenant_stays_failing_after_a_clean_tenant_runs(sqlite_stores, tmp_path, browser, monkeypatch):
    """legacy (orphan tokens) is materialized, then sandbox (clean): the Checks tab still shows the
    checks legacy fails as failing, the overview counts its failing checks, and the repair_plans
    view shows the plan with its Launchpad config."""
    import json

    import sqlalchemy as sa

    import reconcile
    from dagster import DagsterInstance, materialize
    from pipelines.local import run_monitoring_plan
    from pipelines.repairs import repair_plans
    from pipelines.resources import resources_for

    stores = sqlite_stores
    stores.add_tenant("legacy")
    stores.add_tenant("sandbox", test=True)
    graph = tmp_path / "bag.json"
    graph.write_text(json.dumps({"nodes": [{"code": "cut", "kind": "start"}, {"code": "qc", "kind": "end"}],
                                 "edges": [["cut", "qc"]]}))
    stores.ok("graph", "create", "--tenant", "legacy", "--code", "bag", "--file", graph)
    stores.ok("job", "create", "--tenant", "legacy", "--code", "J1", "--sku", "TOTE", "--quantity", 3, "--graph", "bag")
    stores.ok("job", "start", "--tenant", "legacy", "J1")
    with stores.tenant_engine("legacy").begin() as conn:  # the legacy ERP cancelled it without the hard reset
        conn.execute(sa.text("UPDATE hatthasilpa_job SET status = 'cancelled' WHERE job_code = 'J1'"))

    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    rows = run_monitoring_plan(stores.settings)  # legacy first, then sandbox, as `make demo` does
    assert {(r["tenant"], r["check"]) for r in rows if not r["passed"]} == \
        {("legacy", "orphan_token"), ("legacy", "cancelled_job_not_clean")}
    planned = reconcile.plan(stores.settings, "legacy", ["orphan_token"], actor="nok")
    with DagsterInstance.get() as instance:
        assert materialize([repair_plans], partition_key="legacy", instance=instance,
                           resources=resources_for(stores.settings)).success

    env = {**os.environ, "HATTHASILPA_CORE_URL": stores.settings.core_url,
           "HATTHASILPA_TENANT_URL_TEMPLATE": stores.settings.tenant_url_template,
           "HATTHASILPA_MONITOR_URL": stores.settings.monitor_url}
    ARTIFACTS.mkdir(exist_ok=True)
    with dagster_dev(env, home) as base:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{base}/assets/integrity_findings?view=checks", wait_until="domcontentloaded")
        page.get_by_text("orphan_token", exact=True).first.wait_for(timeout=120_000)
        dismiss_welcome(page)
        page.get_by_text("Failed").first.wait_for(timeout=60_000)
        page.screenshot(path=str(ARTIFACTS / "dagster-checks-per-tenant.png"), full_page=True)
        checks_text = page.inner_text("body")

        page.goto(f"{base}/assets/integrity_findings", wait_until="domcontentloaded")
        page.get_by_text("failing_checks_by_tenant").first.wait_for(timeout=120_000)
        page.screenshot(path=str(ARTIFACTS / "dagster-failing-checks-by-tenant.png"), full_page=True)
        overview_text = page.inner_text("body")

        page.goto(f"{base}/assets/repair_plans", wait_until="domcontentloaded")
        page.get_by_text("launchpad").first.wait_for(timeout=120_000)
        page.screenshot(path=str(ARTIFACTS / "runbook-repair-plans.png"), full_page=True)
        plans_text = page.inner_text("body")
        page.close()

    status = dict(re.findall(r"^(\w+)\n(?:\1\n)?(Failed|Succeeded)$", checks_text, re.MULTILINE))
    assert status["orphan_token"] == status["cancelled_job_not_clean"] == "Failed"  # legacy's, though sandbox ran last
    assert status["work_queue_pollution"] == "Succeeded" and len(status) == 13
    assert re.search(r"legacy\s+2\s+cancelled_job_not_clean, orphan_token", overview_text)
    assert re.search(r"sandbox\s+0\b", overview_text)
    assert planned["plan_id"] in plans_text and "nok" in plans_text and "pending" in plans_text
