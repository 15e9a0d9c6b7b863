"""Assignments and work sessions (docs/lifecycle.md §4), on PostgreSQL and SQLite."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from lifecycle import assignments, sessions, services
from lifecycle.errors import InvalidTransition, OperatorBusy, TokenBusy

BRANCHING = {"nodes": [{"code": "cut", "kind": "start"}, {"code": "emboss", "kind": "work"},
                       {"code": "stitch", "kind": "work"}, {"code": "qc", "kind": "end"}],
             "edges": [["cut", "emboss"], ["cut", "stitch"], ["emboss", "qc"], ["stitch", "qc"]]}


class Clock:
    def __init__(self) -> None:
        self.t = dt.datetime(2026, 11, 2, 8, 0, tzinfo=dt.timezone.utc)

    def __call__(self) -> dt.datetime:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += dt.timedelta(seconds=seconds)


def started_job(f, code="J1", quantity=2, graph="bag"):
    f.ok("job", "create", "--tenant", "atelier", "--code", code, "--sku", "TOTE", "--quantity", quantity,
         "--graph", graph)
    return f.ok("job", "start", "--tenant", "atelier", code)["token_ids"]


def act(f, fn, *args, clock=None):
    with f.uow(clock=clock) as uow:
        result = fn(uow, *args)
        uow.commit()
        return result


def test_worked_seconds_exclude_paused_time(factory):
    token = started_job(factory)[0]
    clock = Clock()
    act(factory, sessions.start, token, "nok", clock=clock)
    clock.advance(600)
    assert act(factory, sessions.pause, token, "nok", clock=clock)["work_seconds"] == 600
    clock.advance(3600)  # lunch: not work
    act(factory, sessions.resume, token, "nok", clock=clock)
    clock.advance(120)
    done = act(factory, sessions.complete, token, "nok", clock=clock)
    assert done["work_seconds"] == 720 and done["status"] == "closed"
    assert done["token_status"] == "ready" and done["node"] == "stitch"
    assert factory.scalar("SELECT status FROM token_assignment WHERE token_id = :t", t=token) == "done"


def test_token_walks_the_graph_to_completion_and_completes_the_job(factory):
    tokens = started_job(factory, quantity=2)
    for token in tokens:
        for _ in range(4):  # cut, stitch, edge, qc
            act(factory, sessions.start, token, "nok")
            result = act(factory, sessions.complete, token, "nok")
    assert result["token_status"] == "completed" and result["job_completed"] is True
    assert factory.scalar("SELECT status FROM hatthasilpa_job") == "completed"
    assert factory.scalar("SELECT status FROM job_graph_instance") == "completed"
    assert factory.scalar("SELECT count(*) FROM flow_token WHERE status = 'completed' "
                          "AND completed_at IS NOT NULL") == 2
    assert factory.ok("job", "archive", "--tenant", "atelier", "J1")["status"] == "archived"


def test_branching_routing_requires_a_valid_next(factory, tmp_path):
    path = tmp_path / "branch.json"
    path.write_text(json.dumps(BRANCHING))
    factory.ok("graph", "create", "--tenant", "atelier", "--code", "wallet", "--file", path)
    token = started_job(factory, "W1", 1, graph="wallet")[0]
    factory.ok("session", "start", "--tenant", "atelier", token, "--operator", "nok")
    before = factory.contents()
    for extra, code in ([], "VALIDATION_ERROR"), (["--next", "qc"], "VALIDATION_ERROR"), \
                       (["--next", "nowhere"], "VALIDATION_ERROR"):
        exit_code, body = factory.cli("session", "complete", "--tenant", "atelier", token, "--operator", "nok", *extra)
        assert (exit_code, body["error"]["code"]) == (2, code), body
        assert body["error"]["hint"]
    assert factory.contents() == before
    done = factory.ok("session", "complete", "--tenant", "atelier", token, "--operator", "nok", "--next", "emboss")
    assert done["node"] == "emboss" and done["token_status"] == "ready"


def test_bad_session_requests_are_refused_and_write_nothing(factory):
    token = started_job(factory)[0]
    factory.ok("session", "start", "--tenant", "atelier", token, "--operator", "nok")
    factory.ok("session", "pause", "--tenant", "atelier", token, "--operator", "nok")
    cases = [
        (["session", "start", "--tenant", "atelier", "999999", "--operator", "nok"], 2, "NOT_FOUND"),
        (["session", "start", "--tenant", "atelier", "abc", "--operator", "nok"], 2, "VALIDATION_ERROR"),
        (["session", "pause", "--tenant", "atelier", token, "--operator", "som"], 3, "TOKEN_BUSY"),
        (["session", "resume", "--tenant", "atelier", token, "--operator", "som"], 3, "TOKEN_BUSY"),
        (["session", "complete", "--tenant", "atelier", token, "--operator", "som"], 3, "TOKEN_BUSY"),
        (["session", "complete", "--tenant", "atelier", token, "--operator", "nok"], 3, "INVALID_TRANSITION"),
        (["session", "pause", "--tenant", "atelier", token, "--operator", "nok"], 3, "INVALID_TRANSITION"),
        (["session", "start", "--tenant", "atelier", token, "--operator", "som"], 3, "TOKEN_BUSY"),
        (["session", "start", "--tenant", "atelier", token, "--operator", "bad op!"], 2, "VALIDATION_ERROR"),
        (["session", "pause", "--tenant", "atelier", token, "--operator", "nok", "--next", "x"], 2, "VALIDATION_ERROR"),
    ]
    before = factory.contents()
    for args, exit_code, code in cases:
        got, body = factory.cli(*args)
        assert (got, body["error"]["code"]) == (exit_code, code), (args, body)
    assert factory.contents() == before
    # `start` on one's own paused token resumes it.
    assert factory.ok("session", "start", "--tenant", "atelier", token, "--operator", "nok")["status"] == "active"


def test_operator_holds_one_running_session_and_pausing_frees_them(factory):
    first, second = started_job(factory)
    act(factory, sessions.start, first, "nok")
    with pytest.raises(OperatorBusy):
        act(factory, sessions.start, second, "nok")
    act(factory, sessions.pause, first, "nok")
    act(factory, sessions.start, second, "nok")
    with pytest.raises(OperatorBusy):
        act(factory, sessions.resume, first, "nok")


def test_cancel_closes_sessions_with_their_seconds_and_expires_assignments(factory):
    first, second = started_job(factory)
    clock = Clock()
    act(factory, sessions.start, first, "nok", clock=clock)
    act(factory, sessions.start, second, "som", clock=clock)
    clock.advance(90)
    act(factory, sessions.pause, second, "som", clock=clock)
    clock.advance(30)
    result = act(factory, services.cancel_job, "J1", clock=clock)
    assert len(result["closed_session_ids"]) == 2 and len(result["expired_assignment_ids"]) == 2
    rows = factory.rows("SELECT operator_id, status, work_seconds, close_reason FROM token_work_session "
                        "ORDER BY operator_id")
    assert rows == [("nok", "closed", 120.0, "job_cancelled"), ("som", "closed", 90.0, "job_cancelled")]
    assert factory.scalar("SELECT count(*) FROM token_assignment WHERE status = 'active'") == 0


def test_manager_plan_propagates_on_spawn_on_plan_and_on_routing(factory):
    factory.ok("job", "create", "--tenant", "atelier", "--code", "J1", "--sku", "S", "--quantity", 3, "--graph", "bag")
    factory.ok("assign", "plan", "--tenant", "atelier", "J1", "--node", "cut", "--operator", "nok")
    tokens = factory.ok("job", "start", "--tenant", "atelier", "J1")["token_ids"]
    assert factory.rows("SELECT token_id, operator_id, source FROM token_assignment WHERE status = 'active' "
                        "ORDER BY token_id") == [(t, "nok", "manager") for t in tokens]
    planned = factory.ok("assign", "plan", "--tenant", "atelier", "J1", "--node", "stitch", "--operator", "som")
    assert planned["assignment_ids"] == []  # nobody is on stitch yet
    act(factory, sessions.start, tokens[0], "nok")
    act(factory, sessions.complete, tokens[0], "nok")
    assert factory.rows("SELECT operator_id, source FROM token_assignment WHERE token_id = :t AND status = 'active'",
                        t=tokens[0]) == [("som", "manager")]
    # Re-planning cut hands the untouched tokens to the new operator.
    replanned = factory.ok("assign", "plan", "--tenant", "atelier", "J1", "--node", "cut", "--operator", "dao")
    assert len(replanned["expired_assignment_ids"]) == 2 and len(replanned["assignment_ids"]) == 2
    code, body = factory.cli("assign", "plan", "--tenant", "atelier", "J1", "--node", "nowhere", "--operator", "x")
    assert (code, body["error"]["code"]) == (2, "NOT_FOUND")


def test_work_queue_for_an_operator_puts_their_tokens_first_and_hides_others(factory):
    factory.ok("job", "create", "--tenant", "atelier", "--code", "A", "--sku", "S", "--quantity", 2, "--graph", "bag")
    factory.ok("job", "create", "--tenant", "atelier", "--code", "B", "--sku", "S", "--quantity", 2, "--graph", "bag")
    factory.ok("assign", "plan", "--tenant", "atelier", "B", "--node", "cut", "--operator", "nok")
    factory.ok("job", "start", "--tenant", "atelier", "A")
    b_tokens = factory.ok("job", "start", "--tenant", "atelier", "B")["token_ids"]
    mine = factory.ok("work-queue", "--tenant", "atelier", "--operator", "nok")["tokens"]
    assert [t["job_code"] for t in mine] == ["B", "B", "A", "A"]
    assert [t["token_id"] for t in mine[:2]] == b_tokens
    theirs = factory.ok("work-queue", "--tenant", "atelier", "--operator", "som")["tokens"]
    assert [t["job_code"] for t in theirs] == ["A", "A"]


def test_token_show_is_the_lineage(factory):
    token = started_job(factory)[0]
    factory.ok("session", "start", "--tenant", "atelier", token, "--operator", "nok")
    factory.ok("session", "complete", "--tenant", "atelier", token, "--operator", "nok")
    shown = factory.ok("token", "show", "--tenant", "atelier", token)
    assert [e["event_type"] for e in shown["events"]] == ["spawned", "session_started", "routed"]
    assert [e["node"] for e in shown["events"]] == ["cut", "cut", "stitch"]
    assert shown["sessions"][0]["status"] == "closed" and shown["assignments"][0]["status"] == "done"
    assert shown["node"] == "stitch" and shown["status"] == "ready"


def test_sessions_refuse_dead_tokens(factory):
    token = started_job(factory)[0]
    factory.ok("job", "cancel", "--tenant", "atelier", "J1")
    with pytest.raises(InvalidTransition):
        act(factory, sessions.start, token, "nok")
    with pytest.raises(InvalidTransition):
        act(factory, assignments.plan, "J1", "cut", "nok")


def test_token_assigned_to_another_operator_is_busy(factory):
    token = started_job(factory)[0]
    act(factory, assignments.plan, "J1", "cut", "nok")
    with pytest.raises(TokenBusy) as info:
        act(factory, sessions.start, token, "som")
    assert "assignment" in info.value.message and "nok" not in info.value.message + (info.value.hint or "")
