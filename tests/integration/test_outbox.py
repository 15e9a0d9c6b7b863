"""The outbox relay in-process (docs/lifecycle.md §6): publish, idempotence, ordering, retry and parking."""

from __future__ import annotations

import datetime as dt
import json

import sqlalchemy as sa

from lifecycle import outbox
from lifecycle.db import get_engine
from lifecycle.uow import utcnow
from tests.serial_support import assert_core_equals_tenant, core, core_registry, outbox_state, receipts


class Clock:
    """A clock the test moves by hand, so backoff needs no sleeping."""

    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


def job_with_serials(f, code="J1", quantity=3, cancel=False):
    f.ok("job", "create", "--tenant", "atelier", "--code", code, "--sku", "TOTE", "--quantity", quantity,
         "--graph", "bag")
    data = f.ok("job", "start", "--tenant", "atelier", code)
    if cancel:
        f.ok("job", "cancel", "--tenant", "atelier", code)
    return data["serials"]


def test_relay_publishes_every_event_once_and_a_rerun_is_a_noop(factory):
    job_with_serials(factory, "J1", cancel=True)
    job_with_serials(factory, "J2", quantity=4)
    summary = factory.ok("outbox", "relay", "--batch-size", 2)
    assert (summary["published"], summary["failed"], summary["parked"]) == (10, 0, 0)
    assert summary["tenants"][0]["batches"] == 5
    assert_core_equals_tenant(factory)
    assert set(receipts(factory).values()) == {1}
    before = core_registry(factory)
    again = factory.ok("outbox", "relay", "--tenant", "atelier")
    assert again["published"] == 0 and core_registry(factory) == before
    status = factory.ok("outbox", "relay", "--status")["tenants"]
    assert status == [{"tenant": "atelier", "pending": 0, "retrying": 0, "parked": 0, "published": 10,
                       "oldest_pending_age_seconds": None, "parked_rows": []}]


def test_an_older_event_after_a_newer_one_leaves_the_newer_state(factory):
    serials = job_with_serials(factory, cancel=True)  # v1 issued, v2 voided for each serial
    with factory.tenant_engine().begin() as conn:  # hold back the v1 events: the v2 events go first
        conn.execute(sa.text("UPDATE serial_outbox SET next_attempt_at = :later WHERE version = 1"),
                     {"later": utcnow() + dt.timedelta(hours=1)})
    assert factory.ok("outbox", "relay")["published"] == 3
    assert {v[5:] for v in core_registry(factory).values()} == {("voided", 2)}
    with factory.tenant_engine().begin() as conn:
        conn.execute(sa.text("UPDATE serial_outbox SET next_attempt_at = NULL WHERE version = 1"))
    assert factory.ok("outbox", "relay")["published"] == 3  # the stale events are delivered …
    assert {v[5:] for v in core_registry(factory).values()} == {("voided", 2)}  # … and change nothing
    assert_core_equals_tenant(factory)
    # a redelivery of an old event (as after a crash before the mark) changes nothing either
    with factory.tenant_engine().begin() as conn:
        conn.execute(sa.text("UPDATE serial_outbox SET published_at = NULL WHERE version = 1"))
    assert factory.ok("outbox", "relay")["published"] == 3
    assert_core_equals_tenant(factory)
    assert sorted(receipts(factory).values()) == [1, 1, 1, 2, 2, 2]
    assert sorted(core_registry(factory)) == sorted(serials)


def test_a_failing_row_backs_off_then_parks_without_blocking_the_others(factory):
    serials = job_with_serials(factory, quantity=3)
    with get_engine(factory.settings.core_url).begin() as conn:  # core already holds one serial for someone else
        conn.execute(sa.text("INSERT INTO serial_registry (serial_code, tenant_code, sku, job_ref, token_ref, mode, "
                             "status, version) VALUES (:s, 'elsewhere', 'TOTE', 'X', '1', 'STD', 'issued', 1)"),
                     {"s": serials[1]})
    with factory.tenant_engine().begin() as conn:  # and one event is malformed
        conn.execute(sa.text("INSERT INTO serial_outbox (event_id, serial_code, version, payload, attempts) "
                             "VALUES ('bad-event', 'ATELIER-TOTE-999999', 1, :p, 0)"), {"p": json.dumps({})})
    clock = Clock()
    options = outbox.RelayOptions(batch_size=10, max_attempts=3, backoff_base_seconds=5)

    def run():
        return outbox.relay(factory.settings, ["atelier"], options, clock=clock)

    first = run()
    assert (first["published"], first["failed"], first["parked"]) == (2, 2, 0)
    rows = dict((r[0], r[1:]) for r in factory.rows(
        "SELECT serial_code, attempts, last_error, next_attempt_at, parked_at FROM serial_outbox "
        "WHERE published_at IS NULL"))
    assert set(rows) == {serials[1], "ATELIER-TOTE-999999"}
    assert "tenant elsewhere" in rows[serials[1]][1] and "payload lacks" in rows["ATELIER-TOTE-999999"][1]
    assert run()["failed"] == 0  # not due yet: nothing is retried before its backoff
    clock.advance(5)
    assert run()["failed"] == 2  # second attempt; next one after 10 s
    clock.advance(9)
    assert run()["failed"] == 0
    clock.advance(1)
    third = run()
    assert (third["failed"], third["parked"]) == (2, 2)
    clock.advance(3600)
    assert run()["failed"] == 0  # parked rows are left alone
    status = outbox.status(factory.settings, ["atelier"], clock=clock)["tenants"][0]
    assert (status["pending"], status["parked"], status["published"]) == (0, 2, 2)
    assert [r["attempts"] for r in status["parked_rows"]] == [3, 3]
    # the cause fixed, the parked row goes through
    with get_engine(factory.settings.core_url).begin() as conn:
        conn.execute(sa.text("DELETE FROM serial_registry WHERE tenant_code = 'elsewhere'"))
    with factory.tenant_engine().begin() as conn:
        conn.execute(sa.text("DELETE FROM serial_outbox WHERE event_id = 'bad-event'"))
    assert outbox.retry_parked(factory.settings, ["atelier"]) == {"atelier": 1}
    assert run()["published"] == 1
    assert_core_equals_tenant(factory)
    assert outbox_state(factory) == {"rows": 3, "published": 3, "parked": 0}


def test_relay_covers_every_registered_tenant_and_refuses_an_unknown_one(factory, tmp_path):
    job_with_serials(factory)
    factory.add_tenant("second")
    graph = tmp_path / "g.json"
    graph.write_text(json.dumps({"nodes": [{"code": "a", "kind": "start"}, {"code": "b", "kind": "end"}],
                                 "edges": [["a", "b"]]}))
    factory.ok("graph", "create", "--tenant", "second", "--code", "bag", "--file", graph)
    factory.ok("job", "create", "--tenant", "second", "--code", "J1", "--sku", "TOTE", "--quantity", 2,
               "--graph", "bag")
    assert factory.ok("job", "start", "--tenant", "second", "J1")["serials"] == ["SECOND-TOTE-000001",
                                                                                "SECOND-TOTE-000002"]
    summary = factory.ok("outbox", "relay")
    assert {t["tenant"]: t["published"] for t in summary["tenants"]} == {"atelier": 3, "second": 2}
    assert_core_equals_tenant(factory, "atelier")
    assert_core_equals_tenant(factory, "second")
    assert len(core(factory, "SELECT serial_code FROM serial_registry")) == 5
    code, body = factory.cli("outbox", "relay", "--tenant", "ghost")
    assert code == 2 and body["error"]["code"] == "NOT_FOUND"
    code, body = factory.cli("outbox", "relay", "--batch-size", 0)
    assert code == 2 and body["error"]["code"] == "VALIDATION_ERROR"


def test_the_demo_factory_relays_every_serial_to_core(sqlite_stores):
    from hatthasilpa import demo

    data = demo.build(sqlite_stores.settings, progress=lambda line: None)
    for tenant in ("atelier", "sandbox"):  # the legacy tenant's core lost a serial on purpose
        assert_core_equals_tenant(sqlite_stores, tenant)
    assert {t["tenant"]: set(t["serials"]) for t in data["tenants"]} == {
        code: {"issued", "completed", "voided"} for code in ("atelier", "legacy", "sandbox")}
    assert sqlite_stores.ok("doctor")["ok"] is True
