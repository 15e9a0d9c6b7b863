"""Session and assignment races with real threads, each on its own connection."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from lifecycle import assignments, services, sessions
from lifecycle.errors import HatthasilpaError


class Racer:
    """A pool of threads released together by a barrier, reused across rounds."""

    def __init__(self, width: int) -> None:
        self.width = width
        self.pool = ThreadPoolExecutor(max_workers=width)

    def race(self, fns):
        assert len(fns) == self.width
        barrier = threading.Barrier(self.width)

        def call(fn):
            barrier.wait()
            try:
                return fn(), None
            except HatthasilpaError as exc:
                return None, exc.code

        outcomes = list(self.pool.map(call, fns))
        return [r for r, _ in outcomes], [e for _, e in outcomes]

    def close(self):
        self.pool.shutdown()


@pytest.fixture
def racer(request):
    pools = []

    def make(width):
        pools.append(Racer(width))
        return pools[-1]

    yield make
    for pool in pools:
        pool.close()


def in_uow(stores, fn, *args):
    def call():
        with stores.uow() as uow:
            result = fn(uow, *args)
            uow.commit()
            return result
    return call


def started(stores, code, quantity):
    stores.ok("job", "create", "--tenant", "atelier", "--code", code, "--sku", "TOTE", "--quantity", quantity,
              "--graph", "bag")
    return stores.ok("job", "start", "--tenant", "atelier", code)["token_ids"]


def _one_session_race(stores, racer, rounds, width):
    tokens = started(stores, "RACE", rounds)
    pool = racer(width)
    for round_, token in enumerate(tokens):
        results, errors = pool.race([in_uow(stores, sessions.start, token, f"op{round_}x{i}") for i in range(width)])
        assert sum(r is not None for r in results) == 1, errors
        assert sorted(e for e in errors if e) == ["TOKEN_BUSY"] * (width - 1)
        assert stores.scalar("SELECT count(*) FROM token_work_session WHERE token_id = :t "
                             "AND status IN ('active', 'paused')", t=token) == 1
        assert stores.scalar("SELECT count(*) FROM token_assignment WHERE token_id = :t AND status = 'active'",
                             t=token) == 1
        winner = next(r for r in results if r)
        assert stores.scalar("SELECT operator_id FROM token_assignment WHERE token_id = :t AND status = 'active'",
                             t=token) == winner["operator_id"]


def test_32_concurrent_session_starts_on_one_token_postgres(pg_factory, racer):
    _one_session_race(pg_factory, racer, rounds=50, width=32)


def test_concurrent_session_starts_on_one_token_sqlite(sqlite_factory, racer):
    _one_session_race(sqlite_factory, racer, rounds=10, width=8)


def _operator_race(stores, racer, rounds):
    pool = racer(2)
    for round_ in range(rounds):
        first, second = started(stores, f"OP{round_}", 2)
        operator = f"nok{round_}"
        results, errors = pool.race([in_uow(stores, sessions.start, first, operator),
                                     in_uow(stores, sessions.start, second, operator)])
        assert sorted(errors, key=str) == sorted([None, "OPERATOR_BUSY"], key=str), errors
        assert stores.scalar("SELECT count(*) FROM token_work_session WHERE operator_id = :o "
                             "AND status = 'active'", o=operator) == 1


def test_operator_racing_two_starts_gets_one_operator_busy_postgres(pg_factory, racer):
    _operator_race(pg_factory, racer, 30)


def test_operator_racing_two_starts_gets_one_operator_busy_sqlite(sqlite_factory, racer):
    _operator_race(sqlite_factory, racer, 10)


def _manager_race(stores, racer, rounds):
    pool = racer(2)
    for round_ in range(rounds):
        code = f"M{round_}"
        tokens = started(stores, code, 4)
        results, errors = pool.race([in_uow(stores, assignments.plan, code, "cut", "nok"),
                                     in_uow(stores, assignments.plan, code, "cut", "som")])
        assert errors == [None, None]
        final = stores.scalar("SELECT operator_id FROM manager_assignment m JOIN hatthasilpa_job j ON j.id = m.job_id "
                              "WHERE j.job_code = :c", c=code)
        rows = stores.rows("SELECT token_id, operator_id FROM token_assignment WHERE status = 'active' "
                           "AND token_id IN (SELECT id FROM flow_token WHERE job_id = "
                           "(SELECT id FROM hatthasilpa_job WHERE job_code = :c)) ORDER BY token_id", c=code)
        assert rows == [(t, final) for t in tokens]


def test_two_managers_planning_one_node_leave_one_active_assignment_per_token_postgres(pg_factory, racer):
    _manager_race(pg_factory, racer, 30)


def test_two_managers_planning_one_node_sqlite(sqlite_factory, racer):
    _manager_race(sqlite_factory, racer, 8)


def _start_vs_cancel(stores, racer, rounds):
    pool = racer(3)
    outcomes = set()
    for round_ in range(rounds):
        code = f"SC{round_}"
        token = started(stores, code, 2)[0]
        results, errors = pool.race([in_uow(stores, sessions.start, token, "nok"),
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
        outcomes.add(started_first)
    return outcomes


def test_session_start_racing_cancel_never_leaves_an_open_session_on_a_scrapped_token_postgres(pg_factory, racer):
    _start_vs_cancel(pg_factory, racer, 40)


def test_session_start_racing_cancel_sqlite(sqlite_factory, racer):
    _start_vs_cancel(sqlite_factory, racer, 10)
