"""Serials (docs/lifecycle.md §6): policy, lifecycle, outbox rows, never-reused numbers."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from lifecycle import serials, services
from lifecycle.db import get_engine
from lifecycle.errors import InvalidTransition
from tests.conftest import LINEAR_GRAPH
from tests.racing import in_uow as use_case
from tests.racing import run_concurrently

FLAG = "FF_SERIAL_STD_HAT"


def create_job(f, code="J1", quantity=3, sku="TOTE", tenant="atelier", mode="piece"):
    return f.ok("job", "create", "--tenant", tenant, "--code", code, "--sku", sku, "--quantity", quantity,
                "--graph", "bag", "--mode", mode)


def start(f, code="J1", tenant="atelier"):
    return f.ok("job", "start", "--tenant", tenant, code)


def outbox(f, tenant="atelier"):
    rows = f.rows("SELECT serial_code, version, payload, event_id FROM serial_outbox ORDER BY id", tenant)
    return [(r[0], r[1], r[2] if isinstance(r[2], dict) else json.loads(r[2]), r[3]) for r in rows]


def registry_rows(f, tenant="atelier"):
    return f.rows("SELECT serial_code, token_id, mode, status, version FROM serial_registry "
                  "ORDER BY serial_code", tenant)


def core_rows(f, sql, **params):
    with get_engine(f.settings.core_url).connect() as conn:
        return conn.execute(sa.text(sql), params).all()


def test_piece_spawn_issues_standard_serials_each_with_an_outbox_event(factory):
    create_job(factory, quantity=3)
    data = start(factory)
    assert data["serials"] == ["ATELIER-TOTE-000001", "ATELIER-TOTE-000002", "ATELIER-TOTE-000003"]
    on_tokens = dict(factory.rows("SELECT id, serial_code FROM flow_token"))
    assert [on_tokens[t] for t in data["token_ids"]] == data["serials"]
    assert registry_rows(factory) == [(s, t, "STD", "issued", 1) for t, s in zip(data["token_ids"], data["serials"])]
    events = outbox(factory)
    assert [(s, v) for s, v, _, _ in events] == [(s, 1) for s in data["serials"]]
    assert len({e for _, _, _, e in events}) == 3
    payload = events[0][2]
    assert payload == {**payload, "serial_code": "ATELIER-TOTE-000001", "tenant_code": "atelier", "sku": "TOTE",
                       "job_code": "J1", "token_id": data["token_ids"][0], "mode": "STD", "status": "issued",
                       "version": 1}


def test_a_retried_start_returns_the_same_serials_and_writes_nothing(factory):
    create_job(factory)
    first = factory.ok("job", "start", "--tenant", "atelier", "J1", "--idempotency-key", "k1")
    before = (registry_rows(factory), len(outbox(factory)))
    again = start(factory)
    replay = factory.ok("job", "start", "--tenant", "atelier", "J1", "--idempotency-key", "k1")
    spawn = factory.ok("token", "spawn", "--tenant", "atelier", "J1")
    assert again["spawned"] is False
    assert again["serials"] == replay["serials"] == spawn["serials"] == first["serials"]
    assert (registry_rows(factory), len(outbox(factory))) == before


def test_cancel_voids_serials_and_numbers_are_never_reused(factory):
    create_job(factory, "J1")
    first = start(factory, "J1")["serials"]
    cancel = factory.ok("job", "cancel", "--tenant", "atelier", "J1")
    assert cancel["voided_serials"] == first
    assert {r[3:] for r in registry_rows(factory)} == {("voided", 2)}
    assert [(s, v, p["status"]) for s, v, p, _ in outbox(factory)][3:] == [(s, 2, "voided") for s in first]
    factory.ok("job", "restore", "--tenant", "atelier", "J1")
    second = start(factory, "J1")["serials"]
    create_job(factory, "J2", quantity=2)
    third = start(factory, "J2")["serials"]
    assert second == [f"ATELIER-TOTE-{n:06d}" for n in (4, 5, 6)]
    assert third == [f"ATELIER-TOTE-{n:06d}" for n in (7, 8)]
    create_job(factory, "W1", quantity=1, sku="WALLET")
    assert start(factory, "W1")["serials"] == ["ATELIER-WALLET-000001"]  # one sequence per SKU


def test_batch_mode_jobs_carry_no_serials(factory):
    factory.ok("flag", "set", "atelier", FLAG, "off")  # not needed in batch mode, not even on production
    create_job(factory, mode="batch")
    data = start(factory)
    assert data["serials"] == [] and len(data["token_ids"]) == 3
    assert factory.scalar("SELECT count(*) FROM flow_token WHERE serial_code IS NOT NULL") == 0
    assert factory.scalar("SELECT count(*) FROM serial_registry") == 0
    assert factory.scalar("SELECT count(*) FROM serial_outbox") == 0


def test_production_tenant_with_the_flag_off_refuses_a_piece_spawn_and_writes_nothing(factory):
    factory.ok("flag", "set", "atelier", FLAG, "off")
    create_job(factory)
    before = factory.contents()
    for args in (["job", "start", "--tenant", "atelier", "J1"],
                 ["job", "start", "--tenant", "atelier", "J1", "--idempotency-key", "k"]):
        code, body = factory.cli(*args)
        assert code == 3 and body["error"]["code"] == "SERIAL_POLICY_VIOLATION", body
        assert body["error"]["hint"] == f"hatthasilpa flag set atelier {FLAG} on"
    assert factory.contents() == before  # no instance, no tokens, no idempotency record
    assert factory.scalar("SELECT status FROM hatthasilpa_job WHERE job_code = 'J1'") == "planned"
    for table in ("serial_registry", "serial_outbox", "serial_sequence"):
        assert factory.scalar(f"SELECT count(*) FROM {table}") == 0
    factory.ok("flag", "set", "atelier", FLAG, "on")
    assert start(factory)["serials"] == [f"ATELIER-TOTE-{n:06d}" for n in (1, 2, 3)]


def test_test_tenant_with_the_flag_off_gets_temp_serials(factory, tmp_path):
    factory.add_tenant("lab", test=True)
    graph = tmp_path / "g.json"
    graph.write_text(json.dumps(LINEAR_GRAPH))
    factory.ok("graph", "create", "--tenant", "lab", "--code", "bag", "--file", graph)
    factory.ok("flag", "set", "lab", FLAG, "off")
    create_job(factory, tenant="lab", quantity=4)
    data = start(factory, tenant="lab")
    assert len(set(data["serials"])) == 4
    assert all(s.startswith("TEMP-LAB-TOTE-") for s in data["serials"])
    assert {r[2:] for r in registry_rows(factory, "lab")} == {("TEMP", "issued", 1)}
    assert factory.scalar("SELECT count(*) FROM serial_sequence", "lab") == 0  # TEMP uses no STD number


def test_flag_flips_are_audited_in_core(factory):
    factory.ok("--actor", "somchai", "flag", "set", "atelier", FLAG, "off")
    factory.ok("--actor", "somchai", "flag", "set", "atelier", FLAG, "on")
    audit = core_rows(factory, "SELECT flag_key, old_enabled, new_enabled, actor FROM feature_flag_audit "
                               "WHERE tenant_code = 'atelier' ORDER BY id")
    assert [(k, o, n, a) for k, o, n, a in audit] == [
        (FLAG, None, True, "cli"), (FLAG, True, False, "somchai"), (FLAG, False, True, "somchai")]


def _complete_token(f, token_id):
    with f.tenant_engine().begin() as conn:
        conn.execute(sa.text("UPDATE flow_token SET status = 'completed', completed_at = CURRENT_TIMESTAMP "
                             "WHERE id = :t"), {"t": token_id})


def test_complete_serial_follows_its_token_and_survives_the_cancel(factory):
    create_job(factory, quantity=2)
    data = start(factory)
    done, other = data["token_ids"]
    with factory.uow() as uow:
        with pytest.raises(InvalidTransition):
            serials.complete_serial(uow, other)  # still ready
    _complete_token(factory, done)
    with factory.uow() as uow:
        state = serials.complete_serial(uow, done)
        uow.commit()
    assert (state["serial_code"], state["status"], state["version"]) == (data["serials"][0], "completed", 2)
    with factory.uow() as uow:
        assert serials.complete_serial(uow, done) == state  # idempotent, no new event
        uow.commit()
    assert [(s, v, p["status"]) for s, v, p, _ in outbox(factory)][2:] == [(data["serials"][0], 2, "completed")]
    cancel = factory.ok("job", "cancel", "--tenant", "atelier", "J1")
    assert cancel["voided_serials"] == [data["serials"][1]]
    assert registry_rows(factory) == [(data["serials"][0], done, "STD", "completed", 2),
                                      (data["serials"][1], other, "STD", "voided", 2)]


def test_complete_serial_of_a_batch_token_is_none(factory):
    create_job(factory, mode="batch", quantity=1)
    token = start(factory)["token_ids"][0]
    _complete_token(factory, token)
    with factory.uow() as uow:
        assert serials.complete_serial(uow, token) is None


def _concurrent_starts(f, prefix: str, jobs: int, quantity: int) -> tuple[list[str], list[str]]:
    """Create ``jobs`` jobs and start them all at once; return the job codes and every serial issued."""
    codes = [f"{prefix}{i}" for i in range(jobs)]
    for code in codes:
        create_job(f, code, quantity=quantity)
    results, errors = run_concurrently([use_case(f, services.start_job, c) for c in codes])
    assert errors == [None] * jobs
    return codes, [s for r in results for s in r["serials"]]


def test_eight_concurrent_spawns_of_one_sku_get_distinct_numbers_never_reused(pg_factory):
    codes, first = _concurrent_starts(pg_factory, "P", jobs=8, quantity=5)
    assert sorted(first) == [f"ATELIER-TOTE-{n:06d}" for n in range(1, 41)]
    # cancel everything (voids), restore and restart concurrently: only fresh numbers
    _, errors = run_concurrently([use_case(pg_factory, services.cancel_job, c) for c in codes])
    assert errors == [None] * 8
    _, errors = run_concurrently([use_case(pg_factory, services.restore_job, c) for c in codes])
    assert errors == [None] * 8
    results, errors = run_concurrently([use_case(pg_factory, services.start_job, c) for c in codes])
    assert errors == [None] * 8
    second = [s for r in results for s in r["serials"]]
    assert sorted(second) == [f"ATELIER-TOTE-{n:06d}" for n in range(41, 81)]
    assert pg_factory.scalar("SELECT count(*) FROM serial_registry") == 80
    assert pg_factory.scalar("SELECT count(DISTINCT serial_code) FROM flow_token") == 80
    assert pg_factory.scalar("SELECT last_value FROM serial_sequence WHERE sku = 'TOTE'") == 80


def test_concurrent_spawns_on_sqlite_serialize_on_the_write_lock(sqlite_factory):
    _, serials_issued = _concurrent_starts(sqlite_factory, "S", jobs=4, quantity=3)
    assert sorted(serials_issued) == [f"ATELIER-TOTE-{n:06d}" for n in range(1, 13)]


def test_session_complete_on_the_end_node_completes_the_serial(factory):
    create_job(factory, quantity=2)
    data = start(factory)
    token = data["token_ids"][0]
    for node in ("cut", "stitch", "edge", "qc"):
        factory.ok("session", "start", "--tenant", "atelier", token, "--operator", "nok")
        factory.ok("session", "complete", "--tenant", "atelier", token, "--operator", "nok")
        expected = "completed" if node == "qc" else "issued"
        assert registry_rows(factory)[0][3:] == (expected, 2 if node == "qc" else 1)
    assert [(s, v, p["status"]) for s, v, p, _ in outbox(factory)][2:] == [(data["serials"][0], 2, "completed")]
    factory.ok("outbox", "relay")
    assert core_rows(factory, "SELECT status, version FROM serial_registry WHERE serial_code = :s",
                     s=data["serials"][0]) == [("completed", 2)]
