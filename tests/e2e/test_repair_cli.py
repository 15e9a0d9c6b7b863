"""`hatthasilpa repair plan|approve|apply|show` as an engineer drives them: the console script
in subprocesses, including two applies of one plan at once on PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import time

import sqlalchemy as sa

from tests.contents import dump_stores
from tests.e2e.test_check_cli import table
from tests.e2e.test_cli import EXE, hs
from tests.faults import FAULTS
from tests.floor import build_clean_floor
from tests.repair_support import audit_chain_intact_afterwards  # noqa: F401 - verifies the audit log after each test


def test_plan_approve_apply_show(factory):
    floor = build_clean_floor(factory)
    expected = FAULTS["orphan_token"].apply(floor)
    code, body = hs(factory, "repair", "plan", "--tenant", "atelier", "--check", "orphan_token", "--json")
    assert code == 0
    plan = body["data"]
    assert {r["key"]["token_id"] for r in plan["rows"]} == expected and len(plan["hash"]) == 64

    code, body = hs(factory, "repair", "apply", plan["plan_id"], "--execute", "--json")
    assert (code, body["error"]["code"]) == (3, "APPROVAL_REQUIRED")

    code, body = hs(factory, "repair", "approve", plan["plan_id"], "--by", "somchai", "--json")
    assert code == 0 and body["data"]["hash"] == plan["hash"]

    before = dump_stores(floor)
    code, out, _ = table(factory, "repair", "apply", plan["plan_id"])
    assert code == 0 and "DRY RUN" in out and f"would apply {len(expected)}" in out
    assert dump_stores(floor) == before

    code, body = hs(factory, "repair", "apply", plan["plan_id"], "--execute", "--max-rows", "2", "--json")
    assert code == 0 and (body["data"]["applied"], body["data"]["remaining"]) == (2, len(expected) - 2)
    code, out, _ = table(factory, "repair", "apply", plan["plan_id"], "--execute")
    assert code == 0 and f"applied {len(expected) - 2}," in out and "orphan_token=0" in out

    code, body = hs(factory, "repair", "show", plan["plan_id"], "--json")
    shown = body["data"]
    assert [a["approved_by"] for a in shown["approvals"]] == ["somchai"]
    assert sorted(a["key"]["token_id"] for a in shown["audit"]) == sorted(expected)
    assert all(a["outcome"] == "applied" and a["before"] and a["after"] for a in shown["audit"])
    code, out, _ = table(factory, "repair", "show", plan["plan_id"])
    assert code == 0 and "audit trail:" in out and "somchai" in out


def test_plan_readable_table_and_guidance(factory):
    floor = build_clean_floor(factory)
    FAULTS["mixed_token_states"].apply(floor)
    code, out, _ = table(factory, "repair", "plan", "--tenant", "atelier", "--check", "mixed_token_states")
    assert code == 0 and "no rows to repair" in out and "no automatic action" in out and "hash " in out


def test_cross_tenant_plan_and_unknown_plan_are_refused(factory):
    floor = build_clean_floor(factory)
    factory.add_tenant("studio")
    FAULTS["orphan_token"].apply(floor)
    plan = hs(factory, "repair", "plan", "--tenant", "atelier", "--check", "orphan_token", "--json")[1]["data"]
    hs(factory, "repair", "approve", plan["plan_id"], "--by", "somchai", "--json")
    before = dump_stores(floor)
    code, body = hs(factory, "repair", "apply", plan["plan_id"], "--execute", "--tenant", "studio", "--json")
    assert (code, body["error"]["code"]) == (3, "PLAN_TENANT_MISMATCH")
    assert dump_stores(floor) == before
    code, body = hs(factory, "repair", "apply", "f" * 32, "--json")
    assert (code, body["error"]["code"]) == (2, "NOT_FOUND")
    code, body = hs(factory, "repair", "approve", plan["plan_id"], "--by", "x", "--hash", "0" * 64, "--json")
    assert (code, body["error"]["code"]) == (3, "PLAN_HASH_MISMATCH")


def test_two_applies_of_one_plan_at_once_apply_each_row_once(pg_factory):
    floor = build_clean_floor(pg_factory)
    expected = FAULTS["orphan_token"].apply(floor) | FAULTS["assignment_without_token"].apply(floor)
    plan = hs(pg_factory, "repair", "plan", "--tenant", "atelier", "--check", "orphan_token",
              "assignment_without_token", "--json")[1]["data"]
    assert len(plan["rows"]) == len(expected)
    hs(pg_factory, "repair", "approve", plan["plan_id"], "--by", "somchai", "--json")
    env = {**os.environ, "HATTHASILPA_CORE_URL": pg_factory.settings.core_url,
           "HATTHASILPA_TENANT_URL_TEMPLATE": pg_factory.settings.tenant_url_template,
           "HATTHASILPA_MONITOR_URL": pg_factory.settings.monitor_url}
    args = [EXE, "repair", "apply", plan["plan_id"], "--execute", "--batch-size", "1", "--json"]
    tokens = [r["key"]["token_id"] for r in plan["rows"] if "token_id" in r["key"]]
    assigned = [r["key"]["assignment_id"] for r in plan["rows"] if "assignment_id" in r["key"]]
    with pg_factory.tenant_engine().connect() as holder, pg_factory.tenant_engine().connect() as watcher:
        with holder.begin():  # the test holds every target row, so both applies wait on the first at once
            holder.execute(sa.text("SELECT id FROM flow_token WHERE id = ANY(:t) FOR UPDATE"), {"t": tokens})
            holder.execute(sa.text("SELECT id FROM token_assignment WHERE id = ANY(:a) FOR UPDATE"), {"a": assigned})
            procs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
                     for _ in range(2)]
            waiting = _lock_waiters(watcher, procs, 2)
        outs = [p.communicate(timeout=180) for p in procs]
    assert len(waiting) == 2  # both applies were in flight together, blocked on the same rows
    assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
    reports = [json.loads(o[0])["data"] for o in outs]
    assert sum(r["applied"] for r in reports) == len(expected)
    assert sum(r["skipped"] for r in reports) == 0
    applied = pg_factory.rows("SELECT row_seq, count(*) FROM repair_audit WHERE plan_id = :p AND outcome = 'applied' "
                              "GROUP BY row_seq", p=plan["plan_id"])
    assert sorted(applied) == [(r["seq"], 1) for r in plan["rows"]]
    events = pg_factory.rows("SELECT token_id, count(*) FROM token_event WHERE event_type = 'scrapped_by_repair' "
                             "GROUP BY token_id")
    assert events and all(n == 1 for _, n in events)


def _lock_waiters(watcher, procs, count: int, deadline_seconds: float = 120) -> list[int]:
    """The tenant backends waiting on a row lock, once ``count`` of them are; fails at the deadline
    or when an apply ends before it waits."""
    deadline = time.monotonic() + deadline_seconds
    while True:
        pids = watcher.execute(sa.text(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND wait_event_type = 'Lock' AND query ILIKE '%FOR UPDATE%'")).scalars().all()
        watcher.rollback()  # a fresh snapshot of pg_stat_activity on the next read
        if len(pids) >= count:
            return pids
        ended = [p.args for p in procs if p.poll() is not None]
        assert not ended and time.monotonic() < deadline, (pids, ended, [p.communicate()[1][-2000:] for p in procs
                                                                         if p.poll() is not None])
        time.sleep(0.05)  # polling the server's own view of who waits, not guessing a duration


def test_four_eyes_the_planner_may_not_approve_their_own_plan(factory):
    floor = build_clean_floor(factory)
    FAULTS["orphan_token"].apply(floor)
    code, body = hs(factory, "repair", "plan", "--tenant", "atelier", "--check", "orphan_token", "--by", "nok",
                    "--json")
    assert code == 0 and body["data"]["planned_by"] == "nok"
    plan = body["data"]
    for name in ("nok", " NOK "):  # the same person, however the name is typed
        code, body = hs(factory, "repair", "approve", plan["plan_id"], "--by", name, "--json")
        assert (code, body["error"]["code"]) == (3, "SELF_APPROVAL")
        assert "nok" in body["error"]["message"].lower() and body["error"]["hint"]
    shown = hs(factory, "repair", "show", plan["plan_id"], "--json")[1]["data"]
    assert shown["approvals"] == [] and shown["planned_by"] == "nok"  # nothing was written

    # without --by the planner is HATTHASILPA_ACTOR
    env = {"HATTHASILPA_ACTOR": "ploy"}
    code, body = hs(factory, "repair", "plan", "--tenant", "atelier", "--check", "orphan_token", "--json",
                    env_extra=env)
    assert code == 0 and body["data"]["planned_by"] == "ploy"
    second = body["data"]["plan_id"]
    code, body = hs(factory, "repair", "approve", second, "--by", "ploy", "--json")
    assert (code, body["error"]["code"]) == (3, "SELF_APPROVAL")
    code, body = hs(factory, "repair", "approve", second, "--by", "somchai", "--json")
    assert code == 0 and body["data"]["approved_by"] == "somchai"
    code, out, _ = table(factory, "repair", "plan", "--tenant", "atelier", "--check", "orphan_token", "--by", "nok")
    assert code == 0 and "made by nok" in out
