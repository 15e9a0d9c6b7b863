"""Session and assignment races with real threads, each on its own connection."""

from __future__ import annotations

from lifecycle import assignments, services, sessions
from tests.racing import both_orderings, error_codes, in_uow, run_concurrently


def race(fns):
    results, errors = run_concurrently(fns)
    return results, error_codes(errors)


def started(stores, code, quantity):
    stores.ok("job", "create", "--tenant", "atelier", "--code", code, "--sku", "TOTE", "--quantity", quantity,
              "--graph", "bag")
    return stores.ok("job", "start", "--tenant", "atelier", code)["token_ids"]


def _one_session_race(stores, rounds, width):
    tokens = started(stores, "RACE", rounds)
    for round_, token in enumerate(tokens):
        results, errors = race([in_uow(stores, sessions.start, token, f"op{round_}x{i}") for i in range(width)])
        assert sum(r is not None for r in results) == 1, errors
        assert sorted(e for e in errors if e) == ["TOKEN_BUSY"] * (width - 1)
        assert stores.scalar("SELECT count(*) FROM token_work_session WHERE token_id = :t "
                             "AND status IN ('active', 'paused')", t=token) == 1
        assert stores.scalar("SELECT count(*) FROM token_assignment WHERE token_id = :t AND status = 'active'",
                             t=token) == 1
        winner = next(r for r in results if r)
        assert stores.scalar("SELECT operator_id FROM token_assignment WHERE token_id = :t AND status = 'active'",
                             t=token) == winner["operator_id"]


def test_32_concurrent_session_starts_on_one_token_postgres(pg_factory):
    _one_session_race(pg_factory, rounds=50, width=32)


def test_concurrent_session_starts_on_one_token_sqlite(sqlite_factory):
    _one_session_race(sqlite_factory, rounds=10, width=8)


def _operator_round(stores, round_):
    first, second = started(stores, f"OP{round_}", 2)
    operator = f"nok{round_}"
    results, errors = race([in_uow(stores, sessions.start, first, operator),
                            in_uow(stores, sessions.start, second, operator)])
    assert sorted(errors, key=str) == sorted([None, "OPERATOR_BUSY"], key=str), errors
    assert stores.scalar("SELECT count(*) FROM token_work_session WHERE operator_id = :o "
                         "AND status = 'active'", o=operator) == 1
    won = first if results[0] is not None else second
    assert stores.scalar("SELECT token_id FROM token_work_session WHERE operator_id = :o", o=operator) == won
    return "first token" if won == first else "second token"


def _operator_race(stores, rounds, max_rounds):
    both_orderings(lambda i: _operator_round(stores, i), {"first token", "second token"}, rounds, max_rounds)


def test_operator_racing_two_starts_gets_one_operator_busy_postgres(pg_factory):
    _operator_race(pg_factory, 20, 120)


def test_operator_racing_two_starts_gets_one_operator_busy_sqlite(sqlite_factory):
    _operator_race(sqlite_factory, 10, 60)


def _manager_round(stores, round_):
    code = f"M{round_}"
    tokens = started(stores, code, 4)
    results, errors = race([in_uow(stores, assignments.plan, code, "cut", "nok"),
                            in_uow(stores, assignments.plan, code, "cut", "som")])
    assert errors == [None, None]
    final = stores.scalar("SELECT operator_id FROM manager_assignment m JOIN hatthasilpa_job j ON j.id = m.job_id "
                          "WHERE j.job_code = :c", c=code)
    rows = stores.rows("SELECT token_id, operator_id FROM token_assignment WHERE status = 'active' "
                       "AND token_id IN (SELECT id FROM flow_token WHERE job_id = "
                       "(SELECT id FROM hatthasilpa_job WHERE job_code = :c)) ORDER BY token_id", c=code)
    assert rows == [(t, final) for t in tokens]
    assert final in ("nok", "som")
    return final  # the plan that committed last holds every token


def _manager_race(stores, rounds, max_rounds):
    both_orderings(lambda i: _manager_round(stores, i), {"nok", "som"}, rounds, max_rounds)


def test_two_managers_planning_one_node_leave_one_active_assignment_per_token_postgres(pg_factory):
    _manager_race(pg_factory, 20, 120)


def test_two_managers_planning_one_node_sqlite(sqlite_factory):
    _manager_race(sqlite_factory, 8, 60)


def _start_vs_cancel_round(stores, round_):
    code = f"SC{round_}"
    token = started(stores, code, 2)[0]
    results, errors = race([in_uow(stores, sessions.start, token, "nok"),
                            in_uow(stores, services.cancel_job, code),
                            in_uow(stores, sessions.start, token, "som")])
    assert errors[1] is None  # the cancel always lands
    assert all(e in (None, "TOKEN_BUSY", "INVALID_TRANSITION") for e in errors), errors
    open_on_dead = stores.scalar(
        "SELECT count(*) FROM token_work_session s JOIN flow_token t ON t.id = s.token_id "
        "WHERE s.status IN ('active', 'paused') AND t.status IN ('scrapped', 'completed')")
    assert open_on_dead == 0
    assert stores.scalar("SELECT count(*) FROM token_assignment a JOIN flow_token t ON t.id = a.token_id "
                         "WHERE a.status = 'active' AND t.status = 'scrapped'") == 0
    started_first = any(r is not None for r in (results[0], results[2]))
    closed = stores.scalar("SELECT count(*) FROM token_work_session WHERE token_id = :t "
                           "AND close_reason = 'job_cancelled'", t=token)
    assert closed == (1 if started_first else 0)
    if not started_first:  # the cancel came first: both starts were refused, no session was ever opened
        assert errors == ["INVALID_TRANSITION", None, "INVALID_TRANSITION"], errors
        assert stores.scalar("SELECT count(*) FROM token_work_session WHERE token_id = :t", t=token) == 0
    return "session first" if started_first else "cancel first"


def _start_vs_cancel(stores, rounds, max_rounds):
    return both_orderings(lambda i: _start_vs_cancel_round(stores, i), {"session first", "cancel first"},
                          rounds, max_rounds)


def test_session_start_racing_cancel_never_leaves_an_open_session_on_a_scrapped_token_postgres(pg_factory):
    _start_vs_cancel(pg_factory, 20, 120)


def test_session_start_racing_cancel_sqlite(sqlite_factory):
    _start_vs_cancel(sqlite_factory, 10, 60)
