"""The serial digests kept on write equal the summaries computed from the registries (PostgreSQL).

Whatever writes the registries — the lifecycle, the relay, raw SQL of every kind, several
writers at once — each side's digest (``lifecycle/digest.py``) stays equal to the summary the
full pass computes; folding keeps it equal; a write that bypasses the triggers is caught
by the full pass, and ``db rebuild-digest`` mends it.
"""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from checks import crossdb
from lifecycle import digest
from tests.faults import FAULTS
from tests.floor import TENANT, build_clean_floor, checks_target_run, open_target

pytestmark = pytest.mark.postgres

SERIAL_CHECKS = ["serial_missing_in_core", "serial_missing_in_tenant", "serial_field_mismatch"]


def summaries(floor, side: str, full: bool) -> dict:
    engine = floor.tenant if side == "tenant" else floor.core
    with engine.connect() as conn:
        sql = digest.recompute_sql(side) if full else digest.stored_sql(side)
        return {b: (int(n), int(h)) for b, n, h in conn.execute(sa.text(sql), {"tenant_code": floor.tenant_code})}


def assert_digests_hold(floor) -> None:
    for side in ("tenant", "core"):
        stored, computed = summaries(floor, side, False), summaries(floor, side, True)
        assert computed, side  # the floor has serials on both sides
        assert stored == computed, side


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
    assert_digests_hold(floor)

    floor.tenant_sql("TRUNCATE serial_registry, serial_outbox")
    assert summaries(floor, "tenant", False) == {} == summaries(floor, "tenant", True)


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
    stored, computed = summaries(floor, "tenant", False), summaries(floor, "tenant", True)
    assert stored == computed


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
        tenant_sum, core_sum = crossdb.summaries(target)
        diff = sorted(b for b in tenant_sum.keys() | core_sum.keys() if tenant_sum.get(b) != core_sum.get(b))
        assert 0 < len(diff) <= 5  # the drifted serials, and any change still within the outbox grace period
        # a floor this small is cheaper to scan; forbid the scan to show the predicate matches the index
        target.tenant.execute(sa.text("SET LOCAL enable_seqscan = off"))
        plan = "\n".join(target.tenant.execute(sa.text(
            "EXPLAIN (COSTS OFF) SELECT r.serial_code FROM serial_registry r WHERE "
            + crossdb._IN_DIFF.format(bucket=digest.bucket_sql("r.serial_code"))),
            {"buckets": diff}).scalars())
    assert "ix_serial_registry_bucket" in plan, plan
