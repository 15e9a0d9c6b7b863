"""The serial digests kept on write equal the summaries computed from the registries (PostgreSQL).

Whatever writes the registries — the lifecycle, the relay, raw SQL of every kind, several
writers at once — each side's digest (``lifecycle/digest.py``) stays equal to the summary the
full pass computes; folding keeps it equal; a write that bypasses the triggers is caught
by the full pass, and ``db rebuild-digest`` mends it.
"""

from __future__ import annotations

import datetime as dt
import threading

import pytest
import sqlalchemy as sa

from checks import crossdb
from lifecycle import digest, migrate
from lifecycle.db import get_engine
from lifecycle.uow import utcnow
from tests.faults import FAULTS
from tests.floor import TENANT, build_clean_floor, checks_target_run, open_target

pytestmark = pytest.mark.postgres

SERIAL_CHECKS = ["serial_missing_in_core", "serial_missing_in_tenant", "serial_field_mismatch"]


def summaries(floor, side: str, full: bool, coarse: bool = False) -> dict:
    engine = floor.tenant if side == "tenant" else floor.core
    with engine.connect() as conn:
        sql = digest.recompute_sql(side, coarse=coarse) if full else digest.stored_sql(side, coarse=coarse)
        return {b: (int(n), int(h)) for b, n, h in conn.execute(sa.text(sql), {"tenant_code": floor.tenant_code})}


def assert_digests_hold(floor) -> None:
    """Both levels of both sides' digests equal what the registries hold."""
    for side in ("tenant", "core"):
        for coarse in (False, True):
            stored, computed = summaries(floor, side, False, coarse), summaries(floor, side, True, coarse)
            assert computed, side  # the floor has serials on both sides
            assert stored == computed, (side, coarse)


def digest_rows(floor, side: str) -> int:
    engine = floor.tenant if side == "tenant" else floor.core
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT count(*) FROM serial_digest")).scalar_one()


def test_digests_follow_the_lifecycle_the_relay_and_every_kind_of_raw_write(pg_factory):
    floor = build_clean_floor(pg_factory)  # spawns, completions, cancels, restarts, relays
    assert_digests_hold(floor)
    for check in SERIAL_CHECKS + ["temp_serial_on_production_tenant"]:
        FAULTS[check].apply(floor)  # raw inserts, updates and deletes on both sides
    assert_digests_hold(floor)

    code = floor.serial_of(floor.ids["r1"])
    floor.tenant_sql("UPDATE serial_registry SET updated_at = now() WHERE serial_code = :c", c=code)  # no change
    floor.tenant_sql("UPDATE hatthasilpa_job SET job_code = 'J-RUN-RENAMED' WHERE job_code = 'J-RUN'")
    assert_digests_hold(floor)  # a job's code is part of its serials' canonical rows
    floor.tenant_sql("UPDATE hatthasilpa_job SET status = status")  # no code changed: nothing moves
    floor.core_sql("UPDATE serial_registry SET token_ref = token_ref || 'x' WHERE serial_code = :c", c=code)
    floor.core_sql("DELETE FROM serial_registry WHERE serial_code = :c", c=code)
    assert_digests_hold(floor)

    for side, engine in (("tenant", floor.tenant), ("core", floor.core)):
        before = digest_rows(floor, side)
        with engine.connect() as conn, conn.begin():
            folded = digest.compact(conn, side, floor.tenant_code)
        assert folded > 0 and digest_rows(floor, side) == before - folded
        with engine.connect() as conn, conn.begin():
            assert digest.compact(conn, side, floor.tenant_code) == 0  # one row per bucket already
            assert conn.execute(sa.text("SELECT count(*) FROM serial_digest WHERE NOT folded")).scalar_one() == 0
    assert_digests_hold(floor)
    floor.core_sql("UPDATE serial_registry SET status = 'voided' WHERE serial_code = :c",
                   c=floor.serial_of(floor.ids["r2"]))
    with floor.core.connect() as conn, conn.begin():  # one fine and one coarse bucket touched, and folded
        assert conn.execute(sa.text("SELECT count(*) FROM serial_digest WHERE NOT folded")).scalar_one() == 2
        assert digest.compact(conn, "core", floor.tenant_code) == 2
    assert_digests_hold(floor)

    floor.tenant_sql("TRUNCATE serial_registry, serial_outbox")
    assert summaries(floor, "tenant", False) == {} == summaries(floor, "tenant", True)
    assert summaries(floor, "tenant", False, coarse=True) == {}


def test_the_digest_path_finds_exactly_what_the_full_pass_finds(pg_factory):
    floor = build_clean_floor(pg_factory)
    expected = {check: FAULTS[check].apply(floor) for check in SERIAL_CHECKS}
    fast = checks_target_run(floor, SERIAL_CHECKS)
    from checks import run_checks

    full = {r.check: r for r in run_checks(floor.stores.settings, tenants=[floor.tenant_code], check_ids=SERIAL_CHECKS,
                                           record=False, full_reconcile=True).results}
    for check in SERIAL_CHECKS:
        assert fast[check].error is None and full[check].error is None
        assert {r["serial_code"] for r in fast[check].sample} == {r["serial_code"] for r in full[check].sample}
        assert fast[check].count == len(expected[check]) == full[check].count


def test_concurrent_writers_never_wait_on_the_digest_and_it_still_holds(pg_factory):
    """Eight threads insert serials into the same buckets at once, each in a transaction held open
    until all have written: no writer waits on another (the digest is append-only for writers)."""
    floor = build_clean_floor(pg_factory)
    with floor.tenant.connect() as conn:
        job_id, token_id = conn.execute(sa.text("SELECT job_id, token_id FROM serial_registry LIMIT 1")).one()
    writers, written = 8, threading.Barrier(8)
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            with floor.tenant.connect() as conn, conn.begin():
                # a fresh token for each row: serial_registry.token_id is unique
                tokens = conn.execute(sa.text(
                    "INSERT INTO flow_token (job_id, instance_id, spawn_id, current_node_id, piece_index, status, "
                    "completed_at, created_at, updated_at) SELECT job_id, instance_id, spawn_id, current_node_id, "
                    "1000 + :n * 100 + g, 'completed', now(), now(), now() FROM flow_token, generate_series(1, 50) g "
                    "WHERE id = :t RETURNING id"), {"n": n, "t": token_id}).scalars().all()
                conn.execute(sa.text(
                    "INSERT INTO serial_registry (serial_code, tenant_code, sku, job_id, token_id, mode, status, "
                    "created_at, updated_at) SELECT 'CONC-' || :n || '-' || t, :tenant, 'TOTE', :j, t, 'STD', "
                    "'completed', now(), now() FROM unnest(CAST(:tokens AS integer[])) t"),
                    {"n": n, "tenant": TENANT, "j": job_id, "tokens": tokens})
                written.wait(timeout=60)  # every writer holds its delta rows uncommitted at this point
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    with floor.tenant.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM serial_registry WHERE serial_code LIKE 'CONC-%'")).scalar() \
            == writers * 50
    for coarse in (False, True):
        assert summaries(floor, "tenant", False, coarse) == summaries(floor, "tenant", True, coarse)


def test_a_write_that_bypasses_the_triggers_fails_the_full_pass_until_the_digest_is_rebuilt(pg_factory):
    floor = build_clean_floor(pg_factory)
    code = floor.serial_of(floor.ids["r1"])
    with floor.core.connect() as conn, conn.begin():  # as a logical-replication apply or pg_restore would
        conn.execute(sa.text("SET LOCAL session_replication_role = replica"))
        conn.execute(sa.text("UPDATE serial_registry SET sku = 'WALLET' WHERE serial_code = :c"), {"c": code})

    hourly = checks_target_run(floor, ["serial_field_mismatch"])["serial_field_mismatch"]
    assert hourly.error is None and hourly.count == 0  # the digest cannot see what bypassed it
    code_, body = floor.stores.cli("check", "run", "--check", "serial_field_mismatch", "--full-reconcile", "--json")
    assert code_ == 0, body
    result = body["data"]["results"][0]
    assert result["error"] and "DigestDrift" in result["error"] and "rebuild-digest" in result["error"]
    assert "core serial digest" in result["error"]

    rebuilt = floor.stores.ok("db", "rebuild-digest", "--tenant", floor.tenant_code)
    assert rebuilt["tenant"] == floor.tenant_code and rebuilt["buckets"]["core"] > 0
    assert_digests_hold(floor)
    for full in (False, True):
        from checks import run_checks

        report = run_checks(floor.stores.settings, tenants=[floor.tenant_code], check_ids=["serial_field_mismatch"],
                            record=False, full_reconcile=full)
        assert report.results[0].error is None and report.results[0].count == 1  # the sku drift, found either way


def test_rebuild_digest_refuses_an_unknown_tenant_and_a_store_without_digest(stores):
    code, body = stores.cli("db", "rebuild-digest", "--tenant", "nowhere")
    assert code == 2 and body["error"]["code"] == "NOT_FOUND"
    if not stores.is_postgres:
        stores.add_tenant("atelier")
        code, body = stores.cli("db", "rebuild-digest", "--tenant", "atelier")
        assert code == 2 and body["error"]["code"] == "VALIDATION_ERROR" and "no serial digest" in body["error"]["message"]


def test_the_differing_buckets_predicate_is_answered_by_the_bucket_index(pg_factory):
    floor = build_clean_floor(pg_factory)
    FAULTS["serial_field_mismatch"].apply(floor)
    with open_target(floor) as target:
        diff = crossdb.differing_buckets(target)
        assert 0 < len(diff) <= 5  # the drifted serials, and any change still within the outbox grace period
        # a floor this small is cheaper to scan; forbid the scan to show the predicate matches the index
        target.tenant.execute(sa.text("SET LOCAL enable_seqscan = off"))
        plan = "\n".join(target.tenant.execute(sa.text(
            "EXPLAIN (COSTS OFF) SELECT r.serial_code FROM serial_registry r WHERE "
            + digest.IN_BUCKETS.format(bucket=digest.bucket_sql("r.serial_code"))),
            {"buckets": diff}).scalars())
    assert "ix_serial_registry_bucket" in plan, plan


# --------------------------------------------------------------------------- two levels
def bucket_index_definitions(floor) -> dict[str, str]:
    found = {}
    for side, engine in (("tenant", floor.tenant), ("core", floor.core)):
        with engine.connect() as conn:
            found[side] = conn.execute(sa.text(
                "SELECT indexdef FROM pg_indexes WHERE tablename = 'serial_registry' "
                "AND indexname IN ('ix_serial_registry_bucket', 'ix_serial_registry_tenant_bucket')")).scalar_one()
    return found


def neighbours(floor) -> tuple[int, dict[str, int]]:
    """A coarse bucket and serial codes in it ({code: fine bucket}): at least three fine buckets,
    one of them holding two codes."""
    fine = digest.bucket_sql("'TWO-LEVEL-' || g")
    with floor.tenant.connect() as conn:
        rows = conn.execute(sa.text(f"""
            WITH x AS (SELECT 'TWO-LEVEL-' || g AS code, {fine} AS fine FROM generate_series(1, 200000) g),
            pair AS (SELECT fine FROM x GROUP BY fine HAVING count(*) = 2),
            coarse AS (SELECT x.fine >> {digest.COARSE_SHIFT} AS c FROM x
                       JOIN pair p ON p.fine >> {digest.COARSE_SHIFT} = x.fine >> {digest.COARSE_SHIFT}
                       GROUP BY 1 HAVING count(DISTINCT x.fine) >= 3 ORDER BY 1 LIMIT 1)
            SELECT code, fine FROM x WHERE fine >> {digest.COARSE_SHIFT} = (SELECT c FROM coarse)""")).all()
    return rows[0][1] >> digest.COARSE_SHIFT, {code: fine for code, fine in rows}


def add_serials_on_both_sides(floor, codes: list[str]) -> None:
    """The serials, relayed long ago: the same rows in the tenant registry (each on a fresh
    token of J-RUN) and in core."""
    past = utcnow() - dt.timedelta(hours=2)
    with floor.tenant.begin() as conn:
        job_id, job_code, token_id = conn.execute(sa.text(
            "SELECT j.id, j.job_code, min(t.id) FROM hatthasilpa_job j JOIN flow_token t ON t.job_id = j.id "
            "WHERE j.job_code = 'J-RUN' GROUP BY 1, 2")).one()
        tokens = conn.execute(sa.text(
            "INSERT INTO flow_token (job_id, instance_id, spawn_id, current_node_id, piece_index, status, "
            "completed_at, created_at, updated_at) SELECT job_id, instance_id, spawn_id, current_node_id, "
            "5000 + g, 'completed', :t, :t, :t FROM flow_token, generate_series(1, :n) g WHERE id = :token "
            "ORDER BY g RETURNING id"), {"n": len(codes), "token": token_id, "t": past}).scalars().all()
        rows = [{"code": code, "token": token, "t": past} for code, token in zip(codes, sorted(tokens))]
        conn.execute(sa.text(
            "INSERT INTO serial_registry (serial_code, tenant_code, sku, job_id, token_id, mode, status, "
            "created_at, updated_at) VALUES (:code, :tenant, 'TOTE', :job, :token, 'STD', 'completed', :t, :t)"),
            [{**r, "tenant": floor.tenant_code, "job": job_id} for r in rows])
    with floor.core.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO serial_registry (serial_code, tenant_code, sku, job_ref, token_ref, mode, status, "
            "created_at, updated_at) VALUES (:code, :tenant, 'TOTE', :job, CAST(:token AS text), 'STD', "
            "'completed', :t, :t)"),
            [{**r, "tenant": floor.tenant_code, "job": job_code} for r in rows])


def test_a_fault_in_one_fine_bucket_is_found_exactly_and_only_its_bucket_is_read(pg_factory):
    floor = build_clean_floor(pg_factory)
    coarse, codes = neighbours(floor)
    add_serials_on_both_sides(floor, sorted(codes))
    assert_digests_hold(floor)
    with open_target(floor) as target:
        assert crossdb.differing_buckets(target) == []  # the registries agree
    victim = min(code for code in codes if list(codes.values()).count(codes[code]) == 2)
    sharing = sorted(code for code in codes if codes[code] == codes[victim])  # the victim and its fine neighbour
    floor.core_sql("UPDATE serial_registry SET sku = 'WALLET' WHERE serial_code = :c", c=victim)

    with open_target(floor) as target:
        tenant_coarse, core_coarse = crossdb.summaries(target)
        assert len(tenant_coarse) > 1 and {b for b in tenant_coarse if tenant_coarse[b] != core_coarse.get(b)} \
            == {coarse}
        fine = crossdb.differing_buckets(target)
        assert fine == [codes[victim]]  # of the coarse bucket's 16 fine ones, only the victim's
        for side, conn in (("tenant", target.tenant), ("core", target.core)):
            read = [code for code, _ in crossdb._keys(conn, side, fine, floor.tenant_code, digest.BUCKETS)]
            assert read == sharing, side  # the pairs of that fine bucket, not of the coarse one
        assert [code for code, _, _ in crossdb.differing(target)] == [victim]

    hourly = checks_target_run(floor, SERIAL_CHECKS)
    from checks import run_checks

    full = {r.check: r for r in run_checks(floor.stores.settings, tenants=[floor.tenant_code], check_ids=SERIAL_CHECKS,
                                           record=False, full_reconcile=True).results}
    for check in SERIAL_CHECKS:
        assert hourly[check].error is None and full[check].error is None
        want = [victim] if check == "serial_field_mismatch" else []
        assert [r["serial_code"] for r in hourly[check].sample] == want == \
            [r["serial_code"] for r in full[check].sample], check


def downgrade(url: str, store, revision: str) -> None:
    from alembic import command

    with get_engine(url).begin() as conn:
        command.downgrade(migrate.alembic_config(store, conn), revision)


def test_a_digest_of_65536_buckets_upgrades_and_the_reconciliation_agrees_with_a_full_recompute(pg_factory):
    floor = build_clean_floor(pg_factory)
    tenant_url, core_url = floor.stores.settings.tenant_url(floor.tenant_code), floor.stores.settings.core_url
    downgrade(tenant_url, migrate.TENANT, "0006")  # back to the first digests
    downgrade(core_url, migrate.CORE, "0004")
    definitions = bucket_index_definitions(floor)
    assert all("& (65535)" in d for d in definitions.values()), definitions
    expected = {check: FAULTS[check].apply(floor) for check in SERIAL_CHECKS}  # written under the old triggers
    for side, engine in (("tenant", floor.tenant), ("core", floor.core)):
        with engine.connect() as conn:
            params = {"tenant_code": floor.tenant_code}
            old = {b: (n, h) for b, n, h in conn.execute(sa.text(digest.stored_sql(side)), params)}
            assert old and max(old) < 65536
            assert old == {b: (n, h) for b, n, h in conn.execute(sa.text(digest.recompute_sql(side, 65536)), params)}

    migrate.upgrade(tenant_url, migrate.TENANT)
    migrate.upgrade(core_url, migrate.CORE)
    definitions = bucket_index_definitions(floor)
    assert all(f"& ({digest.BUCKETS - 1})" in d for d in definitions.values()), definitions
    assert_digests_hold(floor)  # rebuilt with the fine buckets

    hourly = checks_target_run(floor, SERIAL_CHECKS)
    from checks import run_checks

    full = {r.check: r for r in run_checks(floor.stores.settings, tenants=[floor.tenant_code], check_ids=SERIAL_CHECKS,
                                           record=False, full_reconcile=True).results}
    for check in SERIAL_CHECKS:
        assert hourly[check].error is None and full[check].error is None, check
        assert {r["serial_code"] for r in hourly[check].sample} == {r["serial_code"] for r in full[check].sample}
        assert hourly[check].count == len(expected[check]) == full[check].count, check

    # the new triggers keep the fine digest: a write after the upgrade still holds it
    floor.core_sql("UPDATE serial_registry SET status = 'voided' WHERE serial_code = :c",
                   c=floor.serial_of(floor.ids["r4"]))
    assert_digests_hold(floor)


def test_the_declared_bucket_indexes_use_the_digest_buckets():
    from lifecycle.schema import core_serial_registry, serial_registry

    expected = digest.bucket_sql("serial_code")
    for table, name in ((serial_registry, "ix_serial_registry_bucket"),
                        (core_serial_registry, "ix_serial_registry_tenant_bucket")):
        index = next(i for i in table.indexes if i.name == name)
        assert expected in [str(e) for e in index.expressions], name
