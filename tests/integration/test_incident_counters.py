"""The incident counters and histograms are kept on write (``incident_tally``) and the scrape
reads them, never the incident history: what it exposes equals what aggregating the
``incident`` table gives, after opens, acks, mutes and resolves, after the migration fills
the counters of an existing store, and after runs and people change incidents at once."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import re

import pytest
import sqlalchemy as sa
from alembic import command

from checks import incident_actions, metrics
from checks.schema import MONITOR, incident
from lifecycle import migrate
from lifecycle.db import dispose_engines, get_engine
from lifecycle.errors import InvalidTransition
from lifecycle.uow import as_utc
from tests.incident_support import record, result
from tests.racing import run_concurrently

# The exposition as dashboards and alerts read it: these names and ``le`` labels do not change.
OPENED = "hatthasilpa_integrity_incidents_opened_total"
RESOLVED = "hatthasilpa_integrity_incidents_resolved_total"
HISTOGRAMS = {"ack_seconds": "hatthasilpa_integrity_time_to_acknowledge_seconds",
              "resolve_seconds": "hatthasilpa_integrity_time_to_resolve_seconds"}
LE = ("60.0", "300.0", "900.0", "1800.0", "3600.0", "14400.0", "43200.0", "86400.0", "259200.0", "604800.0")
NAMES = re.compile(f"^({OPENED}|{RESOLVED}|{'|'.join(HISTOGRAMS.values())})")


def scraped(settings, tenant: str | None = None) -> dict:
    """The incident counters and histograms of one scrape: {(sample name, labels): value}."""
    registry = metrics.registry_for(settings, tenant)
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for family in registry.collect()
            for s in family.samples if NAMES.match(s.name)}


def bucket(labels: tuple, le: str) -> tuple:
    return tuple(sorted((*labels, ("le", le))))


def from_incidents(url: str, tenant: str | None = None) -> dict:
    """The same samples counted in Python from every row of the ``incident`` table (and the pairs that ran)."""
    with get_engine(url).connect() as conn:
        rows = conn.execute(sa.select(incident)).all()
        ran = conn.execute(sa.text("SELECT tenant_code, check_id FROM check_latest")).all()
    pairs = {(r.tenant_code, r.check_id) for r in rows} | {tuple(p) for p in ran}
    expected = {}
    for code, check in pairs:
        if tenant is not None and code != tenant:
            continue
        mine = [r for r in rows if (r.tenant_code, r.check_id) == (code, check)]
        labels = (("check", check), ("tenant", code))
        expected[(OPENED, labels)] = len(mine)
        expected[(RESOLVED, labels)] = sum(1 for r in mine if r.resolved_at is not None)
        for column, name in HISTOGRAMS.items():
            values = [getattr(r, column) for r in mine if getattr(r, column) is not None]
            if not values:
                continue
            for le in LE:
                expected[(f"{name}_bucket", bucket(labels, le))] = sum(1 for v in values if v <= float(le))
            expected[(f"{name}_bucket", bucket(labels, "+Inf"))] = len(values)
            expected[(f"{name}_count", labels)] = len(values)
            expected[(f"{name}_sum", labels)] = pytest.approx(sum(values), rel=1e-12)
    return expected


def opened_at(url: str, incident_id: int) -> dt.datetime:
    with get_engine(url).connect() as conn:
        return as_utc(conn.execute(sa.select(incident.c.opened_at).where(incident.c.id == incident_id)).scalar_one())


def opened_long_ago(url: str, incident_id: int, days: float) -> None:
    """An incident that has been open for ``days`` (its opening moved back)."""
    earlier = opened_at(url, incident_id) - dt.timedelta(days=days)
    with get_engine(url).begin() as conn:
        conn.execute(incident.update().where(incident.c.id == incident_id).values(opened_at=earlier))


def a_week_of_incidents(url: str) -> None:
    """Opens, acknowledgements (one under a mute), mutes (one broken, one ended by the resolution),
    refused moves and an error, on two tenants, with times across every bucket."""
    first = record(url, result("orphan_token", [1, 2]), result("duplicate_serial", []))
    orphan = first.results[0].incident["id"]
    incident_actions.ack(url, orphan, "nok", now=opened_at(url, orphan) + dt.timedelta(seconds=90))
    record(url, result("orphan_token", []))  # resolved within seconds

    again = record(url, result("orphan_token", [3, 4])).results[0].incident["id"]
    incident_actions.mute(url, again, "somchai", "4h", now=opened_at(url, again) + dt.timedelta(seconds=10))
    incident_actions.ack(url, again, "nok", now=opened_at(url, again) + dt.timedelta(hours=2))  # under the mute
    record(url, result("orphan_token", [3, 4, 5]))  # more rows: the mute is broken
    with pytest.raises(InvalidTransition):  # acknowledged already: refused, nothing counted
        incident_actions.ack(url, again, "nok")
    record(url, result("orphan_token", [], error="statement timeout"))  # an error changes nothing
    opened_long_ago(url, again, days=3)
    record(url, result("orphan_token", []))  # resolved after three days

    sandbox = record(url, result("session_on_dead_token", [7], tenant="sandbox")).results[0].incident["id"]
    incident_actions.mute(url, sandbox, "somchai", "30m")
    opened_long_ago(url, sandbox, days=0.5)
    record(url, result("session_on_dead_token", [], tenant="sandbox"))  # resolved under its mute, never acked
    with pytest.raises(InvalidTransition):
        incident_actions.unmute(url, sandbox, "somchai")

    stale = record(url, result("stale_open_session", [8], severity="warning")).results[0].incident["id"]
    incident_actions.ack(url, stale, "nok", now=opened_at(url, stale) + dt.timedelta(days=10))  # past every bound
    record(url, result("stale_open_session", [8, 9], severity="warning"))  # still open
    record(url, result("token_count_mismatch", [10], severity="warning"))  # open, not acknowledged


def test_the_scrape_equals_the_incident_table_after_opens_acks_mutes_and_resolves(stores):
    url = stores.settings.monitor_url
    a_week_of_incidents(url)
    expected = from_incidents(url)
    labels = (("check", "orphan_token"), ("tenant", "atelier"))
    assert (expected[(OPENED, labels)], expected[(RESOLVED, labels)]) == (2, 2)
    assert expected[("hatthasilpa_integrity_time_to_resolve_seconds_bucket", bucket(labels, "259200.0"))] == 1
    assert expected[("hatthasilpa_integrity_time_to_acknowledge_seconds_bucket", bucket(labels, "300.0"))] == 1
    assert expected[(OPENED, (("check", "duplicate_serial"), ("tenant", "atelier")))] == 0
    assert scraped(stores.settings) == expected
    assert scraped(stores.settings, "sandbox") == from_incidents(url, "sandbox")


def test_the_migration_fills_the_counters_from_the_incidents_a_store_holds(stores):
    url = stores.settings.monitor_url
    a_week_of_incidents(url)
    kept_on_write = scraped(stores.settings)
    with get_engine(url).begin() as conn:  # back to the store as it was before the counters
        command.downgrade(migrate.alembic_config(MONITOR, conn), "0006")
    assert not sa.inspect(get_engine(url)).has_table("incident_tally")
    migrate.upgrade(url, MONITOR)
    filled = scraped(stores.settings)
    assert filled == pytest.approx(kept_on_write, rel=1e-12)
    assert filled == from_incidents(url)


def test_the_scrape_reads_no_incident_history(stores):
    """Every statement of a whole scrape that names ``incident`` reads the unresolved ones only
    (the partial index ``ix_incident_unresolved``); the counters come from ``incident_tally``."""
    url = stores.settings.monitor_url
    a_week_of_incidents(url)
    statements: list[str] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    engine = get_engine(url)
    sa.event.listen(engine, "before_cursor_execute", capture)
    try:
        samples = scraped(stores.settings)
    finally:
        sa.event.remove(engine, "before_cursor_execute", capture)
    assert samples[(OPENED, (("check", "orphan_token"), ("tenant", "atelier")))] == 2
    assert any(re.search(r"\bincident_tally\b", s) for s in statements)
    reads = [s for s in statements if re.search(r"\bincident\b", s)]
    assert reads, statements  # the open-incident gauges
    assert all(re.search(r"incident\.resolved_at IS NULL", s) for s in reads), reads


def test_runs_and_people_changing_incidents_at_once_lose_no_count(pg_stores):
    """Rounds of three runs released together (each finding rows, then more, then none) on three
    pairs, with a person acknowledging and muting at the same moment: every incident opened and
    resolved is counted once, and the histograms hold every time to acknowledge and to resolve."""
    url = pg_stores.settings.monitor_url
    pairs = [("atelier", "duplicate_serial"), ("atelier", "orphan_token"), ("second", "orphan_token")]
    record(url, *[result(check, [], tenant=code) for code, check in pairs])  # migrated, every pair has run

    def run(count):
        return lambda: record(url, *[result(check, range(count), tenant=code) for code, check in pairs])

    def unresolved(code, check):
        with get_engine(url).connect() as conn:
            return conn.execute(sa.select(incident.c.id).where(
                incident.c.tenant_code == code, incident.c.check_id == check,
                incident.c.resolved_at.is_(None))).scalar_one()

    rounds = 4
    for _ in range(rounds):
        run_concurrently([run(2), run(2), run(2)])  # all three race to open each pair's incident
        first = unresolved(*pairs[0])  # the person acts on the pair every run locks first
        _, errors = run_concurrently([run(3), run(3), lambda: incident_actions.mute(url, first, "somchai", "1h")])
        assert errors == [None, None, None]
        _, errors = run_concurrently([run(0), run(0), lambda: incident_actions.ack(url, first, "nok")])
        assert errors[:2] == [None, None]  # the ack wins the race or meets a resolved incident
        assert errors[2] is None or errors[2].code == "INVALID_TRANSITION"

    samples = scraped(pg_stores.settings)
    for code, check in pairs:
        labels = (("check", check), ("tenant", code))
        assert (samples[(OPENED, labels)], samples[(RESOLVED, labels)]) == (rounds, rounds)
        assert samples[("hatthasilpa_integrity_time_to_resolve_seconds_count", labels)] == rounds
    assert samples == from_incidents(url)


def _record_rounds(url, checks, barrier, rounds):
    from tests.incident_support import record as record_run, result as make

    barrier.wait()
    for n in range(rounds):
        record_run(url, *[make(check, range(n % 2 * 2)) for check in checks])


def test_two_monitor_processes_recording_at_once_lose_no_count(pg_stores):
    url = pg_stores.settings.monitor_url
    checks = [f"race_{i}" for i in range(6)]
    record(url, *[result(check, []) for check in checks])
    dispose_engines()
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_record_rounds, args=(url, checks, barrier, 8)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(180)
    assert [p.exitcode for p in procs] == [0, 0]
    samples = scraped(pg_stores.settings)
    opened = sum(v for (name, _), v in samples.items() if name == OPENED)
    assert opened >= 4 * len(checks)  # each process opened its pairs' incidents at least every other run
    assert samples == from_incidents(url)
