"""The generic runner: empty schemas, errors, bounded samples, time budgets, read-only, the monitor store."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import sqlalchemy as sa

from checks import CATALOGUE, Family, Severity, all_checks, get, read_only, row_predicate, run_checks
from checks import crossdb, store
from checks.model import Check
from sqlalchemy.engine import make_url

from lifecycle.db import dispose_engine, get_engine
from lifecycle.uow import utcnow
from tests.floor import TENANT, build_clean_floor, open_target

BROKEN = Check(id="broken_for_test", family=Family.TOKENS, severity=Severity.ERROR,
               description="test-only entry whose SQL names a missing table", keys=("token_id",),
               sql="SELECT x.id AS token_id, 'never' AS reason FROM no_such_table x "
                   "WHERE (:token_id IS NULL OR x.id = :token_id)")


def test_every_check_returns_zero_rows_on_an_empty_migrated_schema(stores):
    stores.add_tenant(TENANT)
    report = run_checks(stores.settings, record=False)
    assert len(report.results) == len(CATALOGUE)
    assert [(r.check, r.count, r.error) for r in report.results if r.count or r.error] == []


def test_a_failing_check_is_recorded_as_an_error_and_the_others_run(factory):
    build_clean_floor(factory)
    chosen = [get("orphan_token"), BROKEN, get("serial_missing_in_core")]
    report = run_checks(factory.settings, tenants=[TENANT], checks=chosen)
    by_id = {r.check: r for r in report.results}
    assert list(by_id) == ["orphan_token", "broken_for_test", "serial_missing_in_core"]
    assert by_id["broken_for_test"].error and "no_such_table" in by_id["broken_for_test"].error
    assert by_id["orphan_token"].error is None and by_id["serial_missing_in_core"].error is None
    stored = {f["check_id"]: f for f in store.run_findings(factory.settings.monitor_url, report.run_id)}
    assert stored["broken_for_test"]["error"] == by_id["broken_for_test"].error
    assert stored["orphan_token"]["error"] is None and stored["orphan_token"]["count"] == 0


def test_the_sample_is_bounded_and_ordered_by_key(factory):
    floor = build_clean_floor(factory)
    floor.tenant_sql("UPDATE job_graph_instance SET status = 'archived', archived_at = :now WHERE id IN (:a, :b, :c)",
                     now=utcnow(), a=floor.ids["run_instance"], b=floor.ids["restart_instance"],
                     c=floor.ids["batch_instance"])
    result = run_checks(factory.settings, tenants=[TENANT], check_ids=["orphan_token"], sample_size=4,
                        record=False).results[0]
    assert result.count == 3 + 3 + 2  # r1..r3, the restart set, the batch set
    assert len(result.sample) == 4
    ids = [row["token_id"] for row in result.sample]
    assert ids == sorted(ids) and all(row["reason"] == "instance is archived" for row in result.sample)


def test_the_comparison_walks_the_registry_in_bounded_batches(factory):
    floor = build_clean_floor(factory)
    codes = sorted(floor.core_sql("SELECT serial_code FROM serial_registry").scalars().all())
    lost = codes[1::3]
    for code in lost:
        floor.core_sql("DELETE FROM serial_registry WHERE serial_code = :c", c=code)
    check = get("serial_missing_in_core")
    with open_target(floor) as target:
        for batch in (1, 2, 3, 500):
            found = [r["serial_code"] for r in crossdb.compare(check, target, batch=batch)]
            assert found == lost, batch


def test_row_predicate_is_none_for_a_healthy_row(factory):
    floor = build_clean_floor(factory)
    healthy_serial = floor.serial_of(floor.ids["r1"])
    with open_target(floor) as target:
        assert row_predicate(get("orphan_token"), target, {"token_id": floor.ids["r3"]}) is None
        assert row_predicate(get("serial_missing_in_core"), target, {"serial_code": healthy_serial}) is None
        with pytest.raises(ValueError):
            row_predicate(get("orphan_token"), target, {"job_id": 1})


def test_checks_run_in_a_read_only_transaction(factory):
    build_clean_floor(factory)
    with factory.tenant_engine(TENANT).connect() as conn:
        with read_only(conn, 5):
            assert conn.execute(sa.text("SELECT count(*) FROM flow_token")).scalar() > 0
            if factory.is_postgres:  # the budget and no JIT hold for this transaction only
                assert conn.execute(sa.text("SELECT current_setting('statement_timeout'), "
                                            "current_setting('jit')")).one() == ("5s", "off")
            # PostgreSQL: read_only_sql_transaction (25006); SQLite: PRAGMA query_only
            refusal = sa.exc.InternalError if factory.is_postgres else sa.exc.OperationalError
            with pytest.raises(refusal) as refused:
                conn.execute(sa.text("UPDATE flow_token SET piece_index = piece_index"))
        if factory.is_postgres:
            assert refused.value.orig.sqlstate == "25006"
        else:
            assert "attempt to write a readonly database" in str(refused.value.orig)
        with conn.begin():  # the pooled connection is writable again afterwards
            conn.execute(sa.text("UPDATE flow_token SET piece_index = piece_index"))
            if factory.is_postgres:
                assert conn.execute(sa.text("SELECT current_setting('jit')")).scalar_one() == "on"


def test_a_check_past_its_time_budget_is_cancelled(factory):
    build_clean_floor(factory)
    slow_sql = ("SELECT pg_sleep(5) IS NULL AS token_id, 'slow' AS reason WHERE (:token_id IS NULL OR 1 = :token_id)"
                if factory.is_postgres else
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000000) "
                "SELECT max(i) AS token_id, 'slow' AS reason FROM n WHERE (:token_id IS NULL OR i = :token_id)")
    slow = dataclasses.replace(BROKEN, id="slow_for_test", sql=slow_sql)
    report = run_checks(factory.settings, tenants=[TENANT], checks=[slow, get("orphan_token")],
                        timeout_seconds=0.3, record=False)
    slow_result, orphan = report.results
    assert slow_result.error and ("timeout" in slow_result.error or "interrupted" in slow_result.error)
    assert orphan.error is None


def test_latest_results_hold_the_last_run_per_tenant_and_check(factory):
    floor = build_clean_floor(factory)
    first = run_checks(factory.settings, tenants=[TENANT], check_ids=["orphan_token", "stale_open_session"])
    floor.tenant_sql("UPDATE hatthasilpa_job SET status = 'planned' WHERE job_code = 'J-BATCH'")
    second = run_checks(factory.settings, tenants=[TENANT], check_ids=["orphan_token"])
    latest = {f["check_id"]: f for f in store.latest_results(factory.settings.monitor_url, TENANT)}
    assert latest["orphan_token"]["run_id"] == second.run_id and latest["orphan_token"]["count"] == 2
    assert latest["stale_open_session"]["run_id"] == first.run_id
    with get_engine(factory.settings.monitor_url).connect() as conn:
        run = conn.execute(sa.text("SELECT violation_count, error_count, status FROM check_run WHERE id = :i"),
                           {"i": second.run_id}).one()
    assert tuple(run) == (2, 0, "finished")


def test_fast_only_selects_the_live_row_checks(factory):
    build_clean_floor(factory)
    report = run_checks(factory.settings, fast_only=True, record=False)
    assert {r.check for r in report.results} == {c.id for c in all_checks() if c.fast}


def test_a_page_never_splits_a_legacy_duplicate_serial(factory):
    from tests.faults import FAULTS

    floor = build_clean_floor(factory)
    shared, _ = sorted(FAULTS["duplicate_serial"].apply(floor))
    with open_target(floor) as target:
        columns, seen = crossdb.TENANT_COLUMNS, []
        for batch in (1, 2):
            after, codes_seen = None, []
            while True:
                codes, rows = crossdb._page(target.tenant, columns, [], after, None, batch)
                if not codes:
                    break
                codes_seen += codes
                after = codes[-1]
                if shared in rows:
                    assert len(rows[shared]) == 2
            assert codes_seen == sorted(set(codes_seen)) and shared in codes_seen
            seen.append(codes_seen)
        assert seen[0] == seen[1]


def test_an_unreachable_tenant_is_recorded_and_the_others_still_run(factory, pg_admin_url):
    build_clean_floor(factory)
    factory.add_tenant("gone")
    url = factory.settings.tenant_url("gone")
    dispose_engine(url)
    if factory.is_postgres:
        import psycopg

        with psycopg.connect(pg_admin_url[0], autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{make_url(url).database}" WITH (FORCE)')
    else:
        Path(make_url(url).database).unlink()
        Path(make_url(url).database).mkdir()  # a path that cannot be opened as a database
    report = run_checks(factory.settings, check_ids=["orphan_token", "duplicate_serial"])
    by_tenant = {(r.tenant, r.check): r for r in report.results}
    assert by_tenant[("atelier", "orphan_token")].error is None
    gone = [r for (tenant, _), r in by_tenant.items() if tenant == "gone"]
    assert len(gone) == 2 and all(r.error for r in gone)
