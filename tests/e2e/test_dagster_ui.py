"""`dagster dev` serves the definitions; the asset page lists the catalogue's checks in a real browser.

Chromium is Debian's (`/usr/bin/chromium`), driven by Playwright; no browser is downloaded.
The screenshot is kept under ``test-artifacts/``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

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
    log = open(home / "dagster-dev.log", "w")
    proc = subprocess.Popen([str(Path(sys.executable).parent / "dagster"), "dev", "-h", "127.0.0.1", "-p", str(port)],
                            cwd=ROOT, env={**env, "DAGSTER_HOME": str(home)}, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        wait_until_serving(f"http://127.0.0.1:{port}/server_info", proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        log.close()


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
