"""Every benchmark runs at a small size: it must finish and its own count checks must hold.

Speed is not asserted here (time belongs to the benchmarks themselves); each script exits
non-zero, saying VOID, when the rows it timed are not the rows it expected. The factory
benchmark (``benchmarks/run.py``) has its own test beside this one.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[2]

SMALL = {
    "lifecycle_bench": (["--history", "2000"], ["spawn    per-token", "queue    100-row read"]),
    "throughput": (["--operators", "2", "--seconds", "2", "--pieces", "100"], ["| cycles/s |", "| pgbench TPC-B tps"]),
    "incidents_bench": (["--runs", "2", "--keys", "20"], ["steady", "churn"]),
    "scrape_bench": (["--small", "200", "--large", "2000", "--small-incidents", "100", "--large-incidents", "1000",
                      "--tenants", "2", "--repeat", "2", "--max-ratio", "1000"],
                     ["scrape ratio large/small", "former incident aggregates ratio"]),
}


@pytest.mark.parametrize("script", sorted(SMALL))
def test_benchmark_runs_small_and_its_counts_hold(script, pg_admin_url):
    admin_url, reason = pg_admin_url
    if admin_url is None:
        pytest.fail(reason, pytrace=False)
    args, expected = SMALL[script]
    if script in ("lifecycle_bench", "throughput"):
        args = [*args, "--admin-url", admin_url]
    if script == "scrape_bench":
        args = [*args, "--db", f"hs_bench_scrape_{uuid.uuid4().hex[:8]}"]
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / f"{script}.py"), *args], capture_output=True,
                          text=True, env={"HATTHASILPA_BENCH_PG_URL": admin_url, "PATH": "/usr/bin:/bin"}, cwd=ROOT,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "VOID" not in proc.stdout + proc.stderr
    for line in expected:
        assert line in proc.stdout, proc.stdout
