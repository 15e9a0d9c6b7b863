"""The soak with chaos (benchmarks/soak.py), short: 12 worker processes on PostgreSQL, one SIGKILLed
every few seconds, and every end condition holds afterwards.

``HATTHASILPA_SOAK_SECONDS`` sets the length (default 60); a kill every ~5 s.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.soak import KINDS
from checks import CATALOGUE
from tests import pg

SOAK = Path(__file__).resolve().parents[2] / "benchmarks" / "soak.py"
SECONDS = float(os.environ.get("HATTHASILPA_SOAK_SECONDS", "60"))


@pytest.fixture(scope="module")
def report(pg_admin_url):
    admin_url, reason = pg_admin_url
    if admin_url is None:
        pytest.fail(f"{pg.HOW_TO}\n({reason})", pytrace=False)
    proc = subprocess.run([sys.executable, str(SOAK), "--minutes", str(SECONDS / 60), "--chaos-interval", "5",
                           "--pg-url", admin_url, "--json"],
                          capture_output=True, text=True, timeout=SECONDS + 600)
    assert proc.stdout, proc.stderr
    result = json.loads(proc.stdout)
    result["exit"] = proc.returncode
    result["stderr"] = proc.stderr
    return result


def test_the_soak_passes_with_no_unexpected_error_and_no_worker_dying_on_its_own(report):
    assert report["failures"] == [], report["failures"]
    assert report["errors"] == [] and report["error_count"] == 0
    assert report["crashes"] == []
    assert report["ok"] and report["exit"] == 0, report["stderr"][-3000:]


def test_the_chaos_killed_workers_of_several_roles_and_they_came_back(report):
    kills = report["kills"]
    assert sum(1 for n in kills.values() if n > 0) >= 2, kills
    assert report["worker_starts"] == 12 + sum(kills.values())  # each killed worker was started again


def test_every_kind_of_operation_succeeded_at_least_once(report):
    done = {kind for kind, op in report["operations"].items() if op["ok"]}
    assert set(KINDS) <= done, (sorted(set(KINDS) - done), report["operations"])
    assert all(op["error"] == 0 for op in report["operations"].values())


def test_after_the_soak_the_outbox_is_drained_and_every_check_reports_zero(report):
    end = report["end"]
    assert end["outbox_pending"] == 0
    assert end["outbox_status"]["pending"] == 0 and end["outbox_status"]["parked"] == 0
    assert end["checks_run"] == len(CATALOGUE) and end["check_errors"] == {}
    assert end["findings"] == 0 and report["findings"] == 0, end["findings_by_check"]
    assert end["doctor_ok"], end["doctor_failed"]


def test_after_the_soak_serials_agree_follow_their_tokens_and_none_was_issued_twice(report):
    end = report["end"]
    assert end["serials"] > 0
    assert end["registries_equal"], end["registry_differences"]
    assert end["duplicate_serials"] == 0
    assert end["serials_past_sequence"] == 0 and end["serials_returned_not_in_registry"] == 0
    assert end["serials_not_following_their_token"] == 0


def test_after_the_soak_every_completed_session_has_its_worked_seconds_and_the_audit_verifies(report):
    end = report["end"]
    assert end["completed_sessions"] > 0
    assert end["sessions_without_seconds"] == 0, end["session_problems"]
    assert end["audit_ok"] and end["audit_entries"] > 0
