"""`hatthasilpa check list|run` as a user drives them: the real console script in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess

import sqlalchemy as sa

from checks import CHECK_IDS, Severity, get
from lifecycle.db import get_engine
from tests.e2e.test_cli import EXE, hs
from tests.faults import FAULTS
from tests.floor import build_clean_floor

RESULT_KEYS = {"check", "tenant", "severity", "count", "sample", "duration_seconds", "error"}


def table(stores, *args):
    env = {**os.environ, "HATTHASILPA_CORE_URL": stores.settings.core_url,
           "HATTHASILPA_TENANT_URL_TEMPLATE": stores.settings.tenant_url_template,
           "HATTHASILPA_MONITOR_URL": stores.settings.monitor_url}
    proc = subprocess.run([EXE, *map(str, args)], capture_output=True, text=True, env=env, timeout=120)
    return proc.returncode, proc.stdout, proc.stderr


def test_check_list(stores):
    code, body = hs(stores, "check", "list", "--json")
    assert code == 0
    assert [c["id"] for c in body["data"]["checks"]] == list(CHECK_IDS)
    assert all(c["severity"] in ("critical", "error", "warning") and c["description"] for c in body["data"]["checks"])
    code, out, _ = table(stores, "check", "list")
    assert code == 0 and all(cid in out for cid in CHECK_IDS)
    assert max(map(len, out.splitlines())) <= 100


def test_check_run_json_covers_every_tenant_and_check(factory):
    floor = build_clean_floor(factory)
    factory.add_tenant("studio")
    expected = FAULTS["orphan_token"].apply(floor)
    code, body = hs(factory, "check", "run", "--json")
    assert code == 0, "findings are a result, not a failure"
    results = body["data"]["results"]
    assert len(results) == 2 * len(CHECK_IDS)
    assert all(RESULT_KEYS <= set(r) for r in results)
    by_key = {(r["tenant"], r["check"]): r for r in results}
    orphan = by_key[("atelier", "orphan_token")]
    assert orphan["severity"] == "critical" and orphan["count"] == len(expected)
    assert {row["token_id"] for row in orphan["sample"]} == expected
    assert all(r["count"] == 0 and r["error"] is None for (t, _), r in by_key.items() if t == "studio")
    assert isinstance(body["data"]["run_id"], int)


def test_check_run_selects_tenants_and_checks(factory):
    build_clean_floor(factory)
    code, body = hs(factory, "check", "run", "--tenant", "atelier", "--check", "orphan_token", "duplicate_serial",
                    "--json")
    assert code == 0
    assert [(r["tenant"], r["check"]) for r in body["data"]["results"]] == [
        ("atelier", "orphan_token"), ("atelier", "duplicate_serial")]


def test_check_run_refuses_unknown_checks_and_tenants(factory):
    code, body = hs(factory, "check", "run", "--check", "orphan_token", "no_such_check", "--json")
    assert code == 2 and body["error"]["code"] == "VALIDATION_ERROR"
    code, body = hs(factory, "check", "run", "--tenant", "ghost", "--json")
    assert code == 2 and body["error"]["code"] == "NOT_FOUND"


def test_check_run_readable_table_and_progress(factory):
    floor = build_clean_floor(factory)
    FAULTS["stale_open_session"].apply(floor)
    code, out, err = table(factory, "check", "run", "--tenant", "atelier")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["TENANT", "CHECK", "SEVERITY", "COUNT"]
    assert max(map(len, lines)) <= 100
    stale = next(line for line in lines if "stale_open_session" in line)
    assert stale.split()[2:4] == ["warning", "1"] and "FOUND" in stale
    assert "[20/20] atelier token_without_serial" in err
    assert not out.lstrip().startswith("{")


def test_check_run_fail_on(factory):
    floor = build_clean_floor(factory)
    code, body = hs(factory, "check", "run", "--fail-on", "critical", "--json")
    assert code == 0 and body["ok"]
    FAULTS["mixed_token_states"].apply(floor)
    code, body = hs(factory, "check", "run", "--fail-on", "critical", "--json")
    assert code == 3 and body["error"]["code"] == "CHECKS_FAILED"
    assert "atelier/mixed_token_states" in body["error"]["details"]["failing"]
    assert json.dumps(body)


def _recorded_run(stores, run_id: int) -> tuple:
    with get_engine(stores.settings.monitor_url).connect() as conn:
        run = conn.execute(sa.text("SELECT status, violation_count, error_count FROM check_run WHERE id = :r"),
                           {"r": run_id}).one()
        findings = conn.execute(sa.text("SELECT check_id, count, error IS NOT NULL FROM finding WHERE run_id = :r"),
                                {"r": run_id}).all()
    return tuple(run), [tuple(f) for f in findings]


def test_fail_on_fails_at_and_below_the_finding_severity_and_passes_above_it(factory):
    """assignment_without_token is an `error` finding: --fail-on warning and error fail, critical passes;
    a failing run is recorded all the same."""
    floor = build_clean_floor(factory)
    assert get("assignment_without_token").severity is Severity.ERROR
    found = len(FAULTS["assignment_without_token"].apply(floor))
    for threshold, fails in (("warning", True), ("error", True), ("critical", False)):
        code, body = factory.cli("check", "run", "--check", "assignment_without_token", "--fail-on", threshold,
                                 "--json")
        if not fails:
            assert code == 0 and body["data"]["results"][0]["count"] == found, threshold
            continue
        assert (code, body["error"]["code"]) == (3, "CHECKS_FAILED"), threshold
        details = body["error"]["details"]
        assert details["failing"] == ["atelier/assignment_without_token"]
        assert _recorded_run(factory, details["run_id"]) == (
            ("finished", found, 0), [("assignment_without_token", found, False)])


def test_fail_on_fails_on_an_errored_check_whatever_the_threshold(factory):
    build_clean_floor(factory)
    with factory.tenant_engine().begin() as conn:
        conn.execute(sa.text("DROP VIEW work_queue"))  # the check's query can no longer run
    code, body = factory.cli("check", "run", "--check", "work_queue_pollution", "--fail-on", "critical", "--json")
    assert (code, body["error"]["code"]) == (3, "CHECKS_FAILED")
    details = body["error"]["details"]
    assert details["failing"] == ["atelier/work_queue_pollution"]
    assert _recorded_run(factory, details["run_id"]) == (("finished", 0, 1), [("work_queue_pollution", 0, True)])
    code, body = factory.cli("check", "run", "--check", "work_queue_pollution", "--json")
    assert code == 0 and body["data"]["errors"] == 1  # without --fail-on an errored run still exits 0
