"""The factory benchmark at small N: every mode finds exactly the injected rows (correctness, not speed)."""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[2]


def test_benchmark_table_at_small_n_finds_what_was_injected(pg_admin_url):
    admin_url, reason = pg_admin_url
    if admin_url is None:
        pytest.fail(reason, pytrace=False)
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "--tokens", "20000",
                           "--prefix", f"hs_bench_{uuid.uuid4().hex[:8]}"], capture_output=True, text=True,
                          env={"HATTHASILPA_BENCH_PG_URL": admin_url, "PATH": "/usr/bin:/bin"}, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = proc.stdout
    assert "| check run (all 20) |" in table and "| 48/48 |" in table  # 2 faults per check, 4 checks fire twice
    assert "| 30/30 |" in table  # the 15-minute set
    # ours and the pandas merge: missing in core, missing in tenant, sku changed
    assert re.search(r"^\| reconciliation: ours .*\| 6/6 \|$", table, re.M)
    assert re.search(r"^\| reconciliation: pandas .*\| 6/6 \|$", table, re.M)
    assert "EXPLAIN of the history checks" in table and "VOID" not in proc.stderr
