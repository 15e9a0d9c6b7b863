"""One guarded move for tokens, one definition of "mixed", duplicate spawn cycles and their
repair, and database refusals by constraint name — on PostgreSQL and SQLite."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

import reconcile
from checks import run_checks
from lifecycle import constraints, lookup, services, tokens
from lifecycle.errors import InvalidTransition, NotFound, OperatorBusy, TokenBusy
from lifecycle.schema import flow_token
from lifecycle.states import TOKEN_TRANSITIONS, TokenStatus
from tests.contents import dump


def _start(f, code="J1", quantity=3) -> dict:
    f.ok("job", "create", "--tenant", "atelier", "--code", code, "--sku", "TOTE", "--quantity", str(quantity),
         "--graph", "bag")
    return f.ok("job", "start", "--tenant", "atelier", code)


def _count(f, check_id: str) -> int:
    result = run_checks(f.settings, tenants=["atelier"], check_ids=[check_id], record=False).results[0]
    assert result.error is None, result.error
    return result.count


def test_the_repair_moves_are_in_the_token_table():
    assert (TokenStatus.PAUSED, TokenStatus.READY) in TOKEN_TRANSITIONS  # a repair releases a token
    assert (TokenStatus.COMPLETED, TokenStatus.SCRAPPED) in TOKEN_TRANSITIONS  # a resurrected token goes back
    assert not any(src is TokenStatus.SCRAPPED for src, _ in TOKEN_TRANSITIONS)  # scrapped is final


def test_a_move_outside_the_table_is_refused_and_writes_nothing(factory):
    started = _start(factory)
    before = dump(factory.tenant_engine())
    with factory.uow() as uow:
        rows = tokens.lock(uow, flow_token.c.id.in_(started["token_ids"]))
        with pytest.raises(InvalidTransition) as refused:
            tokens.move(uow, rows, TokenStatus.COMPLETED, "completed", "nok")  # ready → completed is not a move
        uow.commit()
    assert "ready to completed" in refused.value.message
    assert dump(factory.tenant_engine()) == before


def test_a_move_checks_every_token_before_it_writes_any(factory):
    started = _start(factory)
    first, second = started["token_ids"][:2]
    factory.ok("session", "start", "--tenant", "atelier", first, "--operator", "nok")  # first is active now
    before = dump(factory.tenant_engine())
    with factory.uow() as uow:
        rows = tokens.lock(uow, flow_token.c.id.in_([first, second]))
        with pytest.raises(InvalidTransition):  # active → paused is allowed, ready → paused is not
            tokens.move(uow, rows, TokenStatus.PAUSED, "session_paused", "nok")
        uow.commit()
    assert dump(factory.tenant_engine()) == before


def test_a_token_that_moved_since_it_was_read_is_busy(factory):
    started = _start(factory)
    token = started["token_ids"][0]
    with factory.uow() as uow:
        stale = tokens.lock(uow, flow_token.c.id == token)
        uow.conn.execute(flow_token.update().where(flow_token.c.id == token).values(status="active"))
        with pytest.raises(TokenBusy):
            tokens.move(uow, stale, TokenStatus.ACTIVE, "session_started", "nok")
        assert tokens.move(uow, stale, TokenStatus.SCRAPPED, "scrapped_by_cancel", "nok", strict=False) == []


def test_completed_beside_scrapped_is_mixed_for_the_guard_and_the_check(factory):
    started = _start(factory, quantity=2)
    done, other = started["token_ids"]
    with factory.tenant_engine().begin() as conn:  # a legacy floor: one piece finished, the other scrapped
        conn.execute(sa.text("UPDATE flow_token SET status = 'completed', completed_at = CURRENT_TIMESTAMP "
                             "WHERE id = :t"), {"t": done})
        conn.execute(sa.text("UPDATE flow_token SET status = 'scrapped', scrapped_at = CURRENT_TIMESTAMP "
                             "WHERE id = :t"), {"t": other})
    code, body = factory.cli("token", "spawn", "--tenant", "atelier", "J1")
    assert (code, body["error"]["code"]) == (3, "MIXED_TOKEN_STATES")
    found = run_checks(factory.settings, tenants=["atelier"], check_ids=["mixed_token_states"], record=False)
    assert [r["instance_id"] for r in found.results[0].sample] == [started["instance_id"]]
    assert found.results[0].sample[0]["reason"] == "completed and scrapped tokens on one active instance"


def _second_spawn_row_without_tokens(f, started: dict) -> None:
    """What a legacy crash between the spawn row and its tokens leaves behind."""
    with f.tenant_engine().begin() as conn:
        conn.execute(sa.text("INSERT INTO token_spawn (instance_id, job_id, token_count, created_at) "
                             "SELECT instance_id, job_id, token_count, CURRENT_TIMESTAMP FROM token_spawn "
                             "WHERE id = :s"), {"s": started["spawn_id"]})


def test_a_second_spawn_cycle_without_tokens_is_a_multi_spawn_finding(factory):
    started = _start(factory)
    assert _count(factory, "multi_spawn_instance") == 0
    _second_spawn_row_without_tokens(factory, started)
    result = run_checks(factory.settings, tenants=["atelier"], check_ids=["multi_spawn_instance"],
                        record=False).results[0]
    assert result.count == 1
    assert result.sample[0]["instance_id"] == started["instance_id"] and result.sample[0]["spawn_cycles"] == 2


def test_the_multi_spawn_repair_retires_the_later_cycles_and_the_check_reports_zero(factory):
    started = _start(factory)
    _second_spawn_row_without_tokens(factory, started)
    with factory.tenant_engine().begin() as conn:  # and a duplicate token set on a third cycle
        conn.execute(sa.text("INSERT INTO token_spawn (instance_id, job_id, token_count, created_at) "
                             "SELECT instance_id, job_id, token_count, CURRENT_TIMESTAMP FROM token_spawn "
                             "WHERE id = :s"), {"s": started["spawn_id"]})
        third = conn.execute(sa.text("SELECT max(id) FROM token_spawn")).scalar()
        conn.execute(sa.text("INSERT INTO flow_token (instance_id, job_id, spawn_id, piece_index, current_node_id, "
                             "status, created_at, updated_at) SELECT instance_id, job_id, :s, piece_index, "
                             "current_node_id, 'ready', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP FROM flow_token "
                             "WHERE spawn_id = :first"), {"s": third, "first": started["spawn_id"]})
    plan = reconcile.plan(factory.settings, "atelier", ["multi_spawn_instance"], actor="planner")
    assert [(r["action"], r["key"]) for r in plan["rows"]] == \
        [("retire_surplus_spawns", {"instance_id": started["instance_id"]})]
    reconcile.approve(factory.settings, plan["plan_id"], by="approver")
    applied = reconcile.apply(factory.settings, plan["plan_id"], execute=True)
    assert applied["applied"] == 1
    changed = applied["rows"][0]["changed"]
    assert changed["kept_spawn_id"] == started["spawn_id"] and len(changed["superseded_spawn_ids"]) == 2
    assert len(changed["scrapped_token_ids"]) == 3
    assert applied["recheck"]["counts"] == {"multi_spawn_instance": 0}
    for check_id in ("mixed_token_states", "token_count_mismatch", "orphan_token"):
        assert _count(factory, check_id) == 0, check_id
    again = factory.ok("job", "start", "--tenant", "atelier", "J1")  # the guard ignores the retired cycles
    assert again["spawned"] is False and sorted(again["token_ids"]) == sorted(started["token_ids"])


def test_a_missing_job_by_id_is_not_found(factory):
    with factory.uow() as uow:
        with pytest.raises(NotFound):
            lookup.get_job_by_id(uow, 987654)


@pytest.mark.parametrize("index, refusal", [
    ("ux_token_work_session_one_open", TokenBusy),
    ("ux_token_work_session_one_running_per_operator", OperatorBusy),
])
def test_a_unique_index_violation_becomes_its_refusal_by_name(factory, index, refusal):
    started = _start(factory)
    first, second = started["token_ids"][:2]
    factory.ok("session", "start", "--tenant", "atelier", first, "--operator", "nok")
    other = {"ux_token_work_session_one_open": (first, "som"),
             "ux_token_work_session_one_running_per_operator": (second, "nok")}[index]
    with factory.tenant_engine().connect() as conn, conn.begin():
        with pytest.raises(IntegrityError) as violation:
            conn.execute(sa.text("INSERT INTO token_work_session (token_id, operator_id, status, started_at, "
                                 "work_seconds, created_at, updated_at) VALUES (:t, :o, 'active', CURRENT_TIMESTAMP, "
                                 "0, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"), {"t": other[0], "o": other[1]})
    assert constraints.violated_constraint(violation.value) == index
    assert isinstance(constraints.refusal(violation.value), refusal)


def test_hard_reset_and_repairs_share_the_retire_steps(factory):
    """Cancel's hard reset is ``retire_tokens`` on the live tokens plus archiving: same events, same outcome."""
    started = _start(factory)
    factory.ok("session", "start", "--tenant", "atelier", started["token_ids"][0], "--operator", "nok")
    with factory.uow() as uow:
        job = lookup.get_job(uow, "J1", lock=True)
        result = services.hard_reset(uow, job, "tester")
        uow.commit()
    assert sorted(result["scrapped_token_ids"]) == sorted(started["token_ids"])
    assert len(result["closed_session_ids"]) == 1 and len(result["expired_assignment_ids"]) == 1
    assert factory.scalar("SELECT count(*) FROM token_event WHERE event_type = 'scrapped_by_cancel'") == 3
