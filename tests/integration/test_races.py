"""Concurrency: real threads, each with its own connection, against a real database."""

from __future__ import annotations

from lifecycle import services
from tests.racing import in_uow as use_case
from tests.racing import both_orderings, run_concurrently


def new_job(stores, code, quantity=5):
    stores.ok("job", "create", "--tenant", "atelier", "--code", code, "--sku", "TOTE",
              "--quantity", quantity, "--graph", "bag")


def test_eight_concurrent_starts_spawn_exactly_one_token_set(pg_factory):
    for round_ in range(5):
        code = f"R{round_}"
        new_job(pg_factory, code)
        results, errors = run_concurrently([use_case(pg_factory, services.start_job, code) for _ in range(8)])
        assert errors == [None] * 8
        assert sum(r["spawned"] for r in results) == 1
        assert len({tuple(r["token_ids"]) for r in results}) == 1
        job_id = pg_factory.scalar("SELECT id FROM hatthasilpa_job WHERE job_code = :c", c=code)
        assert pg_factory.scalar("SELECT count(*) FROM token_spawn WHERE job_id = :j", j=job_id) == 1
        assert pg_factory.scalar("SELECT count(*) FROM flow_token WHERE job_id = :j", j=job_id) == 5
        assert pg_factory.scalar("SELECT count(*) FROM job_graph_instance WHERE job_id = :j", j=job_id) == 1


def test_concurrent_starts_with_one_idempotency_key_return_one_result(pg_factory):
    new_job(pg_factory, "K")
    results, errors = run_concurrently(
        [use_case(pg_factory, services.start_job, "K", idempotency_key="same") for _ in range(8)])
    assert errors == [None] * 8
    assert len({tuple(r["token_ids"]) for r in results}) == 1
    assert sum(not r.get("replayed") for r in results) == 1
    assert pg_factory.scalar("SELECT count(*) FROM token_spawn") == 1


def _assert_clean(stores, code):
    job_id = stores.scalar("SELECT id FROM hatthasilpa_job WHERE job_code = :c", c=code)
    live_on_dead = stores.scalar(
        "SELECT count(*) FROM flow_token t JOIN job_graph_instance i ON i.id = t.instance_id "
        "WHERE t.job_id = :j AND t.status IN ('ready', 'active', 'paused') AND i.status <> 'active'", j=job_id)
    assert live_on_dead == 0
    status = stores.scalar("SELECT status FROM hatthasilpa_job WHERE id = :j", j=job_id)
    live = stores.scalar("SELECT count(*) FROM flow_token WHERE job_id = :j "
                         "AND status IN ('ready', 'active', 'paused')", j=job_id)
    active = stores.scalar("SELECT count(*) FROM job_graph_instance WHERE job_id = :j AND status = 'active'", j=job_id)
    if status == "cancelled":
        assert (live, active) == (0, 0)
    else:
        assert status == "in_progress" and live == 5 and active == 1
    return status


def _start_vs_cancel_round(stores, code: str, in_progress: bool) -> str:
    """Two starts and a cancel of one job at once; which landed first, as the rows tell it."""
    new_job(stores, code)
    if in_progress:  # the starts race the cancel on a job already in progress
        stores.ok("job", "start", "--tenant", "atelier", code)
    fns = [use_case(stores, services.start_job, code), use_case(stores, services.cancel_job, code),
           use_case(stores, services.start_job, code)]
    results, errors = run_concurrently(fns)
    assert errors[1] is None  # the cancel always lands, before or after the starts
    assert all(e is None or e.code == "INVALID_TRANSITION" for e in errors), errors
    assert _assert_clean(stores, code) == "cancelled"
    start_first = any(r is not None for r in (results[0], results[2]))
    # a start that landed first spawned the set the cancel then scrapped; a cancel first left nothing to start
    tokens = stores.scalar("SELECT count(*) FROM flow_token t JOIN hatthasilpa_job j ON j.id = t.job_id "
                           "WHERE j.job_code = :c AND t.status = 'scrapped'", c=code)
    assert tokens == (5 if start_first or in_progress else 0), (code, results, errors)
    return "start first" if start_first else "cancel first"


def test_cancel_racing_start_never_leaves_live_tokens_on_an_archived_instance(pg_factory):
    for in_progress in (False, True):
        both_orderings(lambda i: _start_vs_cancel_round(pg_factory, f"C{int(in_progress)}x{i}", in_progress),
                       {"start first", "cancel first"}, rounds=15, max_rounds=120)


def test_concurrent_starts_and_cancels_on_sqlite_serialize_too(sqlite_factory):
    new_job(sqlite_factory, "S")
    results, errors = run_concurrently([use_case(sqlite_factory, services.start_job, "S") for _ in range(8)])
    assert errors == [None] * 8
    assert sum(r["spawned"] for r in results) == 1
    assert sqlite_factory.scalar("SELECT count(*) FROM flow_token") == 5
    for round_ in range(10):
        code = f"C{round_}"
        new_job(sqlite_factory, code)
        fns = [use_case(sqlite_factory, services.start_job, code), use_case(sqlite_factory, services.cancel_job, code)]
        _, errors = run_concurrently(fns)
        assert all(e is None or e.code == "INVALID_TRANSITION" for e in errors), errors
        _assert_clean(sqlite_factory, code)
