"""Every transaction that spans work, killed with SIGKILL at its named fault point.

Each case runs the real console script with ``HATTHASILPA_FAULT_POINT`` armed, so the
process dies exactly there — no rollback, no ``finally``. Then:

- all-or-nothing: a point inside one transaction leaves every store exactly as it was
  (full contents compared, so an UPDATE is caught); a point between two commits leaves
  the first commit whole and the second absent;
- the same command retried (with the same idempotency key where the verb takes one)
  completes, and a second retry with that key replays the first result;
- after the relay, every check of the catalogue reports zero, and core's serial
  registry equals the tenant's.

The relay's own points are in ``test_outbox_crash.py``.
"""

from __future__ import annotations

import json
import signal
import subprocess
from dataclasses import dataclass
from typing import Callable

import pytest
import sqlalchemy as sa

from lifecycle import faults
from tests.contents import dump_all
from tests.e2e.test_cli import EXE
from tests.e2e.test_outbox_crash import relay_env
from tests.serial_support import assert_core_equals_tenant

TIMEOUT = 120


def run(stores, *args, fault: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([EXE, *map(str, args)], capture_output=True, text=True, env=relay_env(stores, fault),
                          timeout=TIMEOUT)


def job(stores, code: str = "J-1", quantity: int = 3, start: bool = True) -> list[int]:
    stores.ok("job", "create", "--tenant", "atelier", "--code", code, "--sku", "TOTE", "--quantity", quantity,
              "--graph", "bag")
    return stores.ok("job", "start", "--tenant", "atelier", code)["token_ids"] if start else []


def unclean_cancels(stores) -> str:
    """Two jobs cancelled without the hard reset (as a legacy code path did), and an approved plan."""
    for code in ("J-1", "J-2"):
        job(stores, code, quantity=2)
        with stores.tenant_engine().begin() as conn:
            conn.execute(sa.text("UPDATE hatthasilpa_job SET status = 'cancelled' WHERE job_code = :j"), {"j": code})
    plan = stores.ok("repair", "plan", "--tenant", "atelier", "--check", "cancelled_job_not_clean", "--json")
    assert len(plan["rows"]) == 2
    stores.ok("repair", "approve", plan["plan_id"], "--by", "somchai", "--json")
    return plan["plan_id"]


@dataclass(frozen=True)
class Case:
    prepare: Callable  # stores -> the command's arguments
    keyed: bool = False  # the verb takes --idempotency-key
    between_commits: bool = False  # the point sits after a first commit


def _start(stores):
    job(stores, start=False)
    return ["job", "start", "--tenant", "atelier", "J-1"]


def _cancel(stores):
    token = job(stores)[0]
    stores.ok("session", "start", "--tenant", "atelier", token, "--operator", "op1")  # an open session to close too
    return ["job", "cancel", "--tenant", "atelier", "J-1"]


def _session_start(stores):
    return ["session", "start", "--tenant", "atelier", job(stores)[0], "--operator", "op1"]


def _session_complete(stores):
    token = job(stores)[0]
    stores.ok("session", "start", "--tenant", "atelier", token, "--operator", "op1")
    return ["session", "complete", "--tenant", "atelier", token, "--operator", "op1"]


def _repair(stores):
    return ["repair", "apply", unclean_cancels(stores), "--execute", "--json"]


def _incident_resolved(stores):
    """An incident opened by a run, then the floor put right: the next run resolves it."""
    job(stores)
    with stores.tenant_engine().begin() as conn:
        conn.execute(sa.text("UPDATE hatthasilpa_job SET status = 'cancelled' WHERE job_code = 'J-1'"))
    assert stores.cli("check", "run", "--json")[1]["data"]["violations"] > 0  # incidents open
    with stores.tenant_engine().begin() as conn:
        conn.execute(sa.text("UPDATE hatthasilpa_job SET status = 'in_progress' WHERE job_code = 'J-1'"))
    return ["check", "run", "--json"]


CASES = {
    "spawn.after_instance": Case(_start, keyed=True),
    "spawn.mid_tokens": Case(_start, keyed=True),
    "spawn.after_serials": Case(_start, keyed=True),
    "cancel.after_scrap": Case(_cancel, keyed=True),
    "session_start.after_assignment": Case(_session_start),
    "session_complete.after_routing": Case(_session_complete),
    "repair.mid_batch@2": Case(_repair),
    "repair.after_tenant_commit": Case(_repair, between_commits=True),
    "incident.after_update": Case(_incident_resolved),
}


def test_every_fault_point_outside_the_relay_has_a_case():
    relay_points = {p for p in faults.POINTS if p.startswith("relay.")}
    assert {c.split("@")[0] for c in CASES} == set(faults.POINTS) - relay_points


def assert_every_check_is_zero(stores) -> None:
    assert run(stores, "outbox", "relay").returncode == 0
    code, body = stores.cli("check", "run", "--json")
    assert code == 0, body
    found = {r["check"]: r["count"] for r in body["data"]["results"] if r["count"] or r["error"]}
    assert found == {}, found


@pytest.mark.parametrize("point", sorted(CASES))
def test_a_process_killed_at_a_fault_point_leaves_all_or_nothing_and_a_retry_completes(factory, point):
    case = CASES[point]
    command = case.prepare(factory) + (["--idempotency-key", f"key-{point}"] if case.keyed else [])
    before = dump_all(factory)

    killed = run(factory, *command, fault=point)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert killed.stdout == ""
    after = dump_all(factory)
    if case.between_commits:  # the tenant's batch committed whole; the monitor's audit copy is missing
        applied = factory.rows("SELECT outcome FROM repair_audit")
        assert [o for (o,) in applied] == ["applied", "applied"]
        assert factory.scalar("SELECT count(*) FROM flow_token WHERE status IN ('ready', 'active', 'paused')") == 0
        assert after["monitor"] == before["monitor"]
    else:
        assert after == before, f"{point}: the killed command left part of its work behind"

    retried = run(factory, *command)
    assert retried.returncode == 0, retried.stderr
    first = json.loads(retried.stdout)["data"]
    if case.keyed:
        again = run(factory, *command)
        assert again.returncode == 0 and json.loads(again.stdout)["data"] == {**first, "replayed": True}
    if point.startswith("repair."):
        shown = factory.ok("repair", "show", command[2], "--json")
        assert sorted(a["outcome"] for a in shown["audit"]) == ["applied", "applied"]  # the monitor's copy
    assert_every_check_is_zero(factory)
    assert_core_equals_tenant(factory)
