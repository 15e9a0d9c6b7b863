"""Incidents on PostgreSQL and SQLite: opened, followed and resolved by recorded runs; acknowledged,
muted and unmuted by people; refused moves write nothing; racing monitors open one incident."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import threading
import time

import pytest
import sqlalchemy as sa

from checks import audit_log, incident_actions
from checks.incidents import KEY_CAP
from checks.schema import incident
from lifecycle.db import dispose_engines, get_engine
from lifecycle.uow import utcnow
from tests.incident_support import count_rows, record, result

CHECK = "orphan_token"


def incidents_of(url, check=CHECK):
    """The incidents of one check (of every check when None), in id order."""
    query = sa.select(incident).order_by(incident.c.id)
    with get_engine(url).connect() as conn:
        return conn.execute(query if check is None else query.where(incident.c.check_id == check)).all()


def test_runs_open_follow_and_resolve_one_incident_with_its_keys(stores):
    url = stores.settings.monitor_url
    first = record(url, result(CHECK, [1, 2, 3]), result("duplicate_serial", []))
    [opened] = incidents_of(url)
    assert (opened.state, opened.count, opened.keys_tracked) == ("open", 3, 3)
    assert incidents_of(url, "duplicate_serial") == []  # zero rows opens nothing
    assert first.results[0].incident == {"id": opened.id, "state": "open"}
    assert all("first_seen" in row for row in first.results[0].sample)

    record(url, result(CHECK, [2, 3, 4]))  # 1 gone, 4 new
    third = record(url, result(CHECK, [1, 2, 3, 4]))  # 1 back after a gap
    shown = incident_actions.show(url, opened.id)
    keys = {k["key"]["token_id"]: k for k in shown["keys"]}
    assert set(keys) == {1, 2, 3, 4} and shown["count"] == 4
    assert keys[1]["returns"] == 1 and keys[2]["returns"] == 0
    assert keys[1]["first_seen"] == keys[2]["first_seen"] < keys[4]["first_seen"]
    sample_first_seen = {r["token_id"]: r["first_seen"] for r in third.results[0].sample}
    assert sample_first_seen == {t: keys[t]["first_seen"] for t in (1, 2, 3, 4)}
    with get_engine(url).connect() as conn:  # the stored sample carries first_seen too
        stored = conn.execute(sa.text("SELECT sample FROM finding WHERE run_id = :r"), {"r": third.run_id}).scalar()
    assert "first_seen" in str(stored)

    resolved = record(url, result(CHECK, []))
    [row] = incidents_of(url)
    assert row.state == "resolved" and row.resolved_run_id == resolved.run_id and row.resolve_seconds >= 0
    assert resolved.results[0].incident == {"id": row.id, "state": "resolved"}

    record(url, result(CHECK, [9]))  # the next finding is a new incident
    assert [r.state for r in incidents_of(url)] == ["resolved", "open"]
    assert audit_log.verify(url)["entries"] == 1  # the auto-resolve


def test_an_error_result_leaves_the_incident_alone(stores):
    url = stores.settings.monitor_url
    record(url, result(CHECK, [1]))
    record(url, result(CHECK, [], error="OperationalError: timeout"))
    [row] = incidents_of(url)
    assert (row.state, row.count) == ("open", 1)


def test_keys_are_capped_while_the_count_stays_exact(stores):
    url = stores.settings.monitor_url
    record(url, result(CHECK, range(KEY_CAP), count=KEY_CAP + 250))
    record(url, result(CHECK, range(KEY_CAP, KEY_CAP + 10), count=KEY_CAP + 260))
    [row] = incidents_of(url)
    assert (row.keys_tracked, row.count) == (KEY_CAP, KEY_CAP + 260)
    assert count_rows(url, "incident_key") == KEY_CAP


def test_walkthrough_ack_mute_unmute_and_a_repair_resolving_it(stores):
    url = stores.settings.monitor_url
    record(url, result(CHECK, [1, 2]))
    iid = str(incidents_of(url)[0].id)
    acked = stores.ok("incident", "ack", iid, "--by", "somchai", "--note", "looking", "--json")
    assert (acked["state"], acked["acknowledged_by"]) == ("acknowledged", "somchai")
    muted = stores.ok("incident", "mute", iid, "--by", "somchai", "--for", "4h", "--json")
    assert muted["state"] == "muted" and muted["muted_until"] > muted["opened_at"]
    assert [i["id"] for i in stores.ok("incident", "list", "--state", "muted", "--json")["incidents"]] == [int(iid)]
    unmuted = stores.ok("incident", "unmute", iid, "--by", "somchai", "--json")
    assert (unmuted["state"], unmuted["muted_until"]) == ("acknowledged", None)
    record(url, result(CHECK, []), plan_id="p" * 32)
    listed = stores.ok("incident", "list", "--tenant", "atelier", "--check", CHECK, "--json")["incidents"]
    assert [(i["id"], i["state"]) for i in listed] == [(int(iid), "resolved")]
    assert {"id", "tenant", "check", "severity", "state", "opened_at", "count", "acknowledged_by", "muted_until",
            "resolved_at"} <= set(listed[0])
    shown = stores.ok("incident", "show", iid, "--json")
    assert [e["action"] for e in shown["events"]] == ["opened", "acknowledged", "muted", "unmuted", "resolved"]
    assert shown["events"][-1]["plan_id"] == "p" * 32 and shown["resolved_by_plan"] == "p" * 32
    assert [k["key"] for k in shown["keys"]] == [{"token_id": 1}, {"token_id": 2}]
    verified = stores.ok("audit", "verify", "--json")
    assert verified["entries"] == 4  # ack, mute, unmute, resolve

    before = (count_rows(url, "incident_event"), count_rows(url, "audit_log"))
    for args in (["ack", iid, "--by", "x"], ["mute", iid, "--by", "x", "--for", "1h"], ["unmute", iid, "--by", "x"]):
        code, body = stores.cli("incident", *args, "--json")
        assert (code, body["error"]["code"]) == (3, "INVALID_TRANSITION"), body
    assert (count_rows(url, "incident_event"), count_rows(url, "audit_log")) == before


def test_bad_input_and_unknown_ids_write_nothing(stores):
    url = stores.settings.monitor_url
    record(url, result(CHECK, [1]))
    iid = str(incidents_of(url)[0].id)
    before = count_rows(url, "incident_event")
    for duration in ("31d", "0h", "4 weeks", "-1h", "h"):
        code, body = stores.cli("incident", "mute", iid, "--by", "x", "--for", duration, "--json")
        assert (code, body["error"]["code"]) == (2, "VALIDATION_ERROR"), duration
    code, body = stores.cli("incident", "ack", "999999", "--by", "x", "--json")
    assert (code, body["error"]["code"]) == (2, "NOT_FOUND")
    code, body = stores.cli("incident", "show", "999999", "--json")
    assert (code, body["error"]["code"]) == (2, "NOT_FOUND")
    code, body = stores.cli("incident", "list", "--state", "sleeping", "--json")
    assert (code, body["error"]["code"]) == (2, "VALIDATION_ERROR")
    code, body = stores.cli("incident", "unmute", iid, "--by", "x", "--json")  # not muted
    assert (code, body["error"]["code"]) == (3, "INVALID_TRANSITION")
    assert count_rows(url, "incident_event") == before and stores.ok("incident", "show", iid, "--json")["state"] == "open"


def test_a_mute_ends_at_its_time_and_early_on_more_rows(stores):
    url = stores.settings.monitor_url
    record(url, result(CHECK, [1, 2]))
    iid = incidents_of(url)[0].id
    incident_actions.mute(url, iid, "somchai", "1h", now=utcnow() - dt.timedelta(hours=2))  # already over
    assert incident_actions.show(url, iid)["state"] == "open"
    assert incident_actions.list_incidents(url, state="muted")["incidents"] == []
    record(url, result(CHECK, [1, 2]))  # the next run writes the end down
    assert [e["action"] for e in incident_actions.show(url, iid)["events"]][-1] == "mute_ended"

    incident_actions.mute(url, iid, "somchai", "2d")
    record(url, result(CHECK, [1, 2]))  # as many rows as at muting: the mute holds
    assert incident_actions.show(url, iid)["state"] == "muted"
    record(url, result(CHECK, [1, 2, 3]))  # more rows: new damage is never hidden
    shown = incident_actions.show(url, iid)
    assert shown["state"] == "open" and shown["events"][-1]["action"] == "mute_broken"
    assert audit_log.verify(url)["ok"]


def _record_in_process(url, checks, barrier):
    from tests.incident_support import record as record_run, result as make

    barrier.wait()
    record_run(url, *[make(check, [1, 2]) for check in checks])


def test_two_monitors_racing_on_one_tenant_open_one_incident_per_check(pg_stores):
    url = pg_stores.settings.monitor_url
    checks = [f"race_{i}" for i in range(8)]
    record(url, result("warm_up", []))  # the store is migrated before the race
    dispose_engines()
    ctx = multiprocessing.get_context("spawn")
    for _round in range(3):
        barrier = ctx.Barrier(2)
        procs = [ctx.Process(target=_record_in_process, args=(url, checks, barrier)) for _ in range(2)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(120)
        assert [p.exitcode for p in procs] == [0, 0]
        with get_engine(url).connect() as conn:
            per_pair = conn.execute(sa.text("SELECT check_id, count(*) FROM incident WHERE resolved_at IS NULL "
                                            "GROUP BY check_id")).all()
        assert sorted(per_pair) == [(c, 1) for c in checks]
        record(url, *[result(c, []) for c in checks])  # resolve them for the next round
    assert count_rows(url, "incident") == 3 * len(checks)
    assert audit_log.verify(url)["ok"]


@pytest.mark.parametrize("state", ["open", "resolved"])
def test_list_filters_by_effective_state(stores, state):
    url = stores.settings.monitor_url
    record(url, result(CHECK, [1]))
    if state == "resolved":
        record(url, result(CHECK, []))
    listed = incident_actions.list_incidents(url, state=state)["incidents"]
    assert [i["state"] for i in listed] == [state]


def test_a_repair_resolves_its_incidents_and_plan_and_incident_point_at_each_other(factory):
    import reconcile
    from checks import run_checks
    from tests.faults import FAULTS
    from tests.floor import build_clean_floor

    floor = build_clean_floor(factory)
    expected = FAULTS["orphan_token"].apply(floor)
    report = run_checks(factory.settings, tenants=["atelier"], check_ids=["orphan_token"])
    [found] = report.results
    assert found.incident["state"] == "open" and all("first_seen" in r for r in found.sample)
    iid = found.incident["id"]
    factory.ok("incident", "ack", str(iid), "--by", "somchai", "--json")

    plan = factory.ok("repair", "plan", "--tenant", "atelier", "--check", "orphan_token", "--json")
    assert plan["incidents"] == [iid]
    factory.ok("repair", "approve", plan["plan_id"], "--by", "niran", "--json")
    applied = reconcile.apply(factory.settings, plan["plan_id"], execute=True)
    assert applied["applied"] == len(expected) and applied["recheck"]["counts"] == {"orphan_token": 0}

    shown = factory.ok("incident", "show", str(iid), "--json")
    assert shown["state"] == "resolved" and shown["resolved_by_plan"] == plan["plan_id"]
    assert [p["plan_id"] for p in shown["plans"]] == [plan["plan_id"]]
    assert {k["key"]["token_id"] for k in shown["keys"]} == expected
    repair = factory.ok("repair", "show", plan["plan_id"], "--json")
    assert [(i["id"], i["state"]) for i in repair["incidents"]] == [(iid, "resolved")]
    kinds = [e for e in audit_entries(factory.settings.monitor_url)]
    assert kinds.count("repair.applied") == len(expected)
    assert {"incident.acknowledged", "repair.approved", "incident.resolved"} <= set(kinds)
    assert factory.ok("audit", "verify", "--json")["entries"] == len(kinds)
    code, body = factory.cli("incident", "mute", str(iid), "--by", "somchai", "--for", "1h", "--json")
    assert (code, body["error"]["code"]) == (3, "INVALID_TRANSITION")


def audit_entries(url):
    with get_engine(url).connect() as conn:
        return list(conn.execute(sa.text("SELECT kind FROM audit_log ORDER BY seq")).scalars())


def _advisory_waiters(watcher, count: int, threads, deadline_seconds: float = 60) -> None:
    """Return once ``count`` monitor backends wait on an advisory lock; fail at the deadline or
    when a thread ended before it waited."""
    deadline = time.monotonic() + deadline_seconds
    while True:
        waiting = watcher.execute(sa.text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND wait_event_type = 'Lock' AND wait_event = 'advisory'")).scalar_one()
        watcher.rollback()  # a fresh snapshot of pg_stat_activity on the next read
        if waiting >= count:
            return
        assert not [t for t in threads if not t.is_alive()] and time.monotonic() < deadline, waiting
        time.sleep(0.05)  # polling the server's own view of who waits, not guessing a duration


def _lockable(url: str, incident_id: int) -> bool:
    with get_engine(url).connect() as conn:
        try:
            conn.execute(sa.text("SELECT id FROM incident WHERE id = :i FOR UPDATE NOWAIT"), {"i": incident_id})
            return True
        except sa.exc.OperationalError as exc:
            assert exc.orig.sqlstate == "55P03"  # lock_not_available
            return False
        finally:
            conn.rollback()


def test_runs_and_actions_take_the_audit_chain_before_an_incident_row(pg_stores):
    """The one lock order that rules out a deadlock between a run resolving one incident and an
    ack of another: while the chain is held elsewhere, both wait for it holding no incident row."""
    url = pg_stores.settings.monitor_url
    record(url, result("first", [1]), result("second", [2]))
    ids = {r.check_id: r.id for r in incidents_of(url, None)}
    engine = get_engine(url)
    outcomes = {}

    def run(name, action):
        try:
            outcomes[name] = action()
        except Exception as exc:  # noqa: BLE001 - the assertion below shows it
            outcomes[name] = exc

    with engine.connect() as holder, engine.connect() as watcher:
        holder.begin()
        audit_log.lock_chain(holder)
        threads = [threading.Thread(target=run, args=("ack", lambda: incident_actions.ack(url, ids["second"], "sre"))),
                   threading.Thread(target=run, args=("resolve", lambda: record(url, result("first", []))))]
        threads[0].start()
        _advisory_waiters(watcher, 1, threads[:1])
        threads[1].start()
        _advisory_waiters(watcher, 2, threads)
        assert _lockable(url, ids["second"]) and _lockable(url, ids["first"])
        holder.rollback()
    for t in threads:
        t.join(60)
    assert outcomes["ack"]["state"] == "acknowledged", outcomes
    assert not isinstance(outcomes["resolve"], Exception), outcomes
    states = {r.check_id: r.state for r in incidents_of(url, None)}
    assert states == {"first": "resolved", "second": "acknowledged"}
    assert audit_log.verify(url)["ok"]
