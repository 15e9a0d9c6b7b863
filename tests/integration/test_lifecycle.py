"""Lifecycle rules of docs/lifecycle.md §1–§3 and §5, on PostgreSQL and SQLite."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, InternalError

from lifecycle import services
from lifecycle.constraints import violated_constraint
from lifecycle.errors import InvalidTransition, MixedTokenStates, ValidationError


def create_job(f, code="J1", quantity=3, **extra):
    args = ["job", "create", "--tenant", "atelier", "--code", code, "--sku", "TOTE",
            "--quantity", str(quantity), "--graph", "bag"]
    for key, value in extra.items():
        args += [f"--{key}", value]
    return f.ok(*args)


def job(f, action, code="J1", *extra):
    return f.cli("job", action, "--tenant", "atelier", code, *extra)


def test_start_creates_instance_and_spawns_quantity_ready_tokens_on_start_node(factory):
    create_job(factory, quantity=4)
    code, body = job(factory, "start")
    assert code == 0
    data = body["data"]
    assert data["spawned"] is True and len(data["token_ids"]) == 4
    rows = factory.rows("SELECT t.status, n.node_code, t.instance_id FROM flow_token t "
                        "JOIN routing_node n ON n.id = t.current_node_id")
    assert {(r[0], r[1], r[2]) for r in rows} == {("ready", "cut", data["instance_id"])}
    assert factory.scalar("SELECT count(*) FROM token_spawn") == 1
    assert factory.scalar("SELECT status FROM hatthasilpa_job WHERE job_code = 'J1'") == "in_progress"
    assert factory.scalar("SELECT count(*) FROM node_instance WHERE instance_id = :i", i=data["instance_id"]) == 4
    events = factory.rows("SELECT event_type, from_status, to_status FROM token_event")
    assert len(events) == 4 and set(events) == {("spawned", None, "ready")}


def test_repeated_start_is_a_noop_returning_the_same_set(factory):
    create_job(factory)
    first = job(factory, "start")[1]["data"]
    before = factory.contents()
    second = job(factory, "start")[1]["data"]
    assert second["spawned"] is False
    assert second["token_ids"] == first["token_ids"] and second["instance_id"] == first["instance_id"]
    assert factory.contents() == before


def test_cancel_is_a_hard_reset_and_twice_is_a_noop(factory):
    create_job(factory)
    started = job(factory, "start")[1]["data"]
    code, body = job(factory, "cancel")
    assert code == 0 and body["data"]["cancelled"] is True
    assert sorted(body["data"]["scrapped_token_ids"]) == sorted(started["token_ids"])
    assert factory.scalar("SELECT count(*) FROM flow_token WHERE status <> 'scrapped'") == 0
    assert factory.scalar("SELECT count(*) FROM flow_token WHERE scrapped_at IS NULL") == 0
    assert factory.scalar("SELECT status FROM job_graph_instance") == "archived"
    assert factory.scalar("SELECT count(*) FROM node_instance WHERE status <> 'archived'") == 0
    assert factory.scalar("SELECT status FROM hatthasilpa_job") == "cancelled"
    assert factory.scalar("SELECT count(*) FROM token_event WHERE event_type = 'scrapped_by_cancel' "
                          "AND from_status = 'ready' AND to_status = 'scrapped'") == 3
    before = factory.contents()
    code, body = job(factory, "cancel")
    assert code == 0 and body["data"]["cancelled"] is False
    assert factory.contents() == before


def test_restart_after_restore_uses_a_new_instance_and_new_tokens(factory):
    create_job(factory)
    first = job(factory, "start")[1]["data"]
    job(factory, "cancel")
    assert job(factory, "restore")[1]["data"]["status"] == "planned"
    second = job(factory, "start")[1]["data"]
    assert second["spawned"] is True
    assert second["instance_id"] != first["instance_id"]
    assert not set(second["token_ids"]) & set(first["token_ids"])
    assert factory.scalar("SELECT status FROM job_graph_instance WHERE id = :i", i=first["instance_id"]) == "archived"
    queue = factory.ok("work-queue", "--tenant", "atelier")["tokens"]
    assert sorted(t["token_id"] for t in queue) == sorted(second["token_ids"])


def test_only_scrapped_tokens_on_active_instance_respawn_on_a_new_instance(factory):
    create_job(factory)
    first = job(factory, "start")[1]["data"]
    with factory.tenant_engine().begin() as conn:  # a legacy path that scrapped without cancelling
        conn.execute(sa.text("UPDATE flow_token SET status = 'scrapped', scrapped_at = CURRENT_TIMESTAMP"))
    data = factory.ok("token", "spawn", "--tenant", "atelier", "J1")
    assert data["spawned"] is True and data["instance_id"] != first["instance_id"]
    assert data["archived_instance_ids"] == [first["instance_id"]]
    assert factory.scalar("SELECT count(*) FROM job_graph_instance WHERE status = 'active'") == 1


def test_mixed_scrapped_and_live_tokens_are_refused_and_nothing_is_written(factory):
    create_job(factory)
    first = job(factory, "start")[1]["data"]
    with factory.tenant_engine().begin() as conn:
        conn.execute(sa.text("UPDATE flow_token SET status = 'scrapped', scrapped_at = CURRENT_TIMESTAMP "
                             "WHERE id = :i"), {"i": first["token_ids"][0]})
    before = factory.contents()
    code, body = job(factory, "start")
    assert code == 3 and body["error"]["code"] == "MIXED_TOKEN_STATES"
    assert "cancel" in body["error"]["hint"]
    assert factory.contents() == before


@pytest.mark.parametrize("status, action, target", [
    ("planned", "restore", "planned"),
    ("planned", "archive", "archived"),
    ("in_progress", "restore", "planned"),
    ("in_progress", "archive", "archived"),
    ("completed", "start", "in_progress"),
    ("completed", "cancel", "cancelled"),
    ("cancelled", "start", "in_progress"),
    ("archived", "start", "in_progress"),
    ("archived", "restore", "planned"),
    ("archived", "cancel", "cancelled"),
])
def test_refused_transitions_write_nothing(factory, status, action, target):
    create_job(factory)
    with factory.tenant_engine().begin() as conn:
        conn.execute(sa.text("UPDATE hatthasilpa_job SET status = :s"), {"s": status})
    before = factory.contents()
    code, body = job(factory, action)
    assert code == 3, body
    assert body["error"]["code"] == "INVALID_TRANSITION"
    assert factory.contents() == before
    assert factory.scalar("SELECT status FROM hatthasilpa_job") == status


def test_scrapped_token_never_changes_status_again_even_by_raw_sql(factory):
    create_job(factory)
    job(factory, "start")
    job(factory, "cancel")
    for sql in ("UPDATE flow_token SET status = 'ready', scrapped_at = NULL",
                "UPDATE flow_token SET status = 'completed', scrapped_at = NULL, completed_at = CURRENT_TIMESTAMP"):
        # the trigger refuses (PostgreSQL: RAISE EXCEPTION; SQLite: RAISE(ABORT)), not a CHECK
        with pytest.raises((InternalError, IntegrityError), match="scrapped token never changes status again"):
            with factory.tenant_engine().begin() as conn:
                conn.execute(sa.text(sql))
    assert factory.scalar("SELECT count(*) FROM flow_token WHERE status = 'scrapped'") == 3


def test_database_allows_one_active_instance_per_job(factory):
    create_job(factory)
    job(factory, "start")
    with pytest.raises(IntegrityError) as refused:
        with factory.tenant_engine().begin() as conn:
            conn.execute(sa.text("INSERT INTO job_graph_instance (job_id, graph_id, status) "
                                 "SELECT job_id, graph_id, 'active' FROM job_graph_instance"))
    assert violated_constraint(refused.value) == "ux_job_graph_instance_one_active"


def test_status_timestamp_pairs_are_checked(factory):
    create_job(factory)
    job(factory, "start")
    for sql, constraint in (
            ("UPDATE flow_token SET status = 'completed'", "ck_flow_token_completed_at"),
            ("UPDATE job_graph_instance SET status = 'archived'", "ck_job_graph_instance_archived_at"),
            ("UPDATE hatthasilpa_job SET quantity = 0", "ck_hatthasilpa_job_quantity_positive"),
            ("UPDATE flow_token SET status = 'lost'", "ck_flow_token_status")):
        with pytest.raises(IntegrityError) as refused:
            with factory.tenant_engine().begin() as conn:
                conn.execute(sa.text(sql))
        assert violated_constraint(refused.value) == constraint, sql


def test_every_token_status_change_appends_an_event(factory):
    create_job(factory, quantity=2)
    job(factory, "start")
    job(factory, "cancel")
    job(factory, "restore")
    job(factory, "start")
    for token_id, status in factory.rows("SELECT id, status FROM flow_token"):
        events = factory.rows("SELECT from_status, to_status FROM token_event WHERE token_id = :t ORDER BY id",
                              t=token_id)
        assert events[0] == (None, "ready")
        assert events[-1][1] == status
        for (_, prev_to), (nxt_from, _) in zip(events, events[1:]):
            assert prev_to == nxt_from


def test_idempotency_key_returns_first_result_and_rejects_other_parameters(factory):
    create_job(factory, "J1")
    create_job(factory, "J2")
    first = job(factory, "start", "J1", "--idempotency-key", "req-1")[1]["data"]
    retry = job(factory, "start", "J1", "--idempotency-key", "req-1")[1]["data"]
    assert retry["replayed"] is True
    assert {k: v for k, v in retry.items() if k != "replayed"} == first
    # A replay returns the first result even after the state moved on.
    job(factory, "cancel", "J1", "--idempotency-key", "req-2")
    again = job(factory, "start", "J1", "--idempotency-key", "req-1")[1]["data"]
    assert again["spawned"] is True and again["token_ids"] == first["token_ids"]
    before = factory.contents()
    code, body = job(factory, "start", "J2", "--idempotency-key", "req-1")
    assert code == 2 and body["error"]["code"] == "VALIDATION_ERROR"
    assert factory.contents() == before
    assert factory.scalar("SELECT status FROM hatthasilpa_job WHERE job_code = 'J2'") == "planned"


def test_work_queue_shows_only_ready_tokens_of_active_instances_of_jobs_in_progress(factory):
    create_job(factory, "LIVE", quantity=2)
    create_job(factory, "GONE", quantity=2)
    create_job(factory, "IDLE", quantity=2)
    live = job(factory, "start", "LIVE")[1]["data"]
    job(factory, "start", "GONE")
    job(factory, "cancel", "GONE")
    queue = factory.ok("work-queue", "--tenant", "atelier")["tokens"]
    assert sorted(t["token_id"] for t in queue) == sorted(live["token_ids"])
    assert {(t["job_code"], t["node"], t["status"]) for t in queue} == {("LIVE", "cut", "ready")}
    assert factory.ok("work-queue", "--tenant", "atelier", "--node", "stitch")["tokens"] == []
    assert len(factory.ok("work-queue", "--tenant", "atelier", "--node", "cut")["tokens"]) == 2


def test_use_cases_never_commit_on_their_own(factory):
    create_job(factory)
    with factory.uow() as uow:
        services.start_job(uow, "J1")  # no commit
    assert factory.scalar("SELECT count(*) FROM flow_token") == 0
    assert factory.scalar("SELECT status FROM hatthasilpa_job") == "planned"


def test_domain_errors_raise_specific_types(factory):
    create_job(factory)
    with factory.uow() as uow:
        with pytest.raises(InvalidTransition):
            services.restore_job(uow, "J1")
    with factory.uow() as uow:
        with pytest.raises(ValidationError):
            services.start_job(uow, "J1", idempotency_key="")
    with factory.uow() as uow:
        services.start_job(uow, "J1")
        uow.conn.execute(sa.text("UPDATE flow_token SET status = 'scrapped', scrapped_at = CURRENT_TIMESTAMP "
                                 "WHERE piece_index = 1"))
        with pytest.raises(MixedTokenStates):
            services.start_job(uow, "J1")
