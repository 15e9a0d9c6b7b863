"""Guarded repairs on PostgreSQL and SQLite: corrupt → plan → approve → dry run → execute → clean.

Every repairable check gets its fault from the fault matrix; the plan must hold exactly
the corrupted rows, the dry run must leave tenant and core byte for byte as they were,
and the executed plan must leave the check at zero with a before/after audit per row.
"""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

import reconcile
from checks import get
from lifecycle.schema import core_serial_registry, flow_token, serial_registry, token_assignment
from reconcile.errors import ApprovalRequired, PlanStale, PlanTenantMismatch
from reconcile.schema import repair_plan
from reconcile.repairs import REPAIRS
from tests.contents import dump_stores
from tests.faults import FAULTS
from tests.floor import build_clean_floor, checks_target_run
from tests.repair_support import audit_chain_intact_afterwards  # noqa: F401 - verifies the audit log after each test

REPAIRABLE = sorted(REPAIRS)
# findings of a repairable check that have no safe action (left with guidance)
GUIDANCE_ONLY = {"session_without_assignment": lambda floor: {floor.ids["r3_closed_session"]}}


def _plan_keys(rows, check):
    key = get(check).keys[0]
    return {r["key"][key] for r in rows}


def _corrupt_and_plan(factory, check):
    floor = build_clean_floor(factory)
    expected = FAULTS[check].apply(floor)
    planned = reconcile.plan(factory.settings, floor.tenant_code, [check], actor="tester")
    return floor, expected, planned


# what the whole catalogue still finds right after a repair besides the guidance rows: the orphans of
# J-BATCH were the whole set of its still-active instance, so scrapping them leaves that instance short
# of the job's quantity (token_count_mismatch has guidance only: a person decides to spawn again)
RESIDUE = {"orphan_token": {"token_count_mismatch": 1}}


def _open_sessions(floor, token_id) -> list[int]:
    """The token's open sessions, earliest first (the order ``close_later_sessions`` keeps by)."""
    return list(floor.tenant_sql("SELECT id FROM token_work_session WHERE token_id = :t AND status IN "
                                 "('active', 'paused') ORDER BY started_at, id", t=token_id).scalars())


def _session(floor, session_id) -> tuple:
    return tuple(floor.tenant_sql("SELECT s.status, s.close_reason, t.status FROM token_work_session s "
                                  "JOIN flow_token t ON t.id = s.token_id WHERE s.id = :s", s=session_id).one())


def _scrapped_with_serial_voided(floor, expected, _before) -> None:
    with floor.tenant.connect() as conn:
        rows = conn.execute(sa.select(flow_token.c.id, flow_token.c.status, flow_token.c.scrapped_at,
                                      flow_token.c.serial_code).where(flow_token.c.id.in_(expected))).all()
        codes = [r.serial_code for r in rows if r.serial_code is not None]
        voided = set(conn.execute(sa.select(serial_registry.c.status)
                                  .where(serial_registry.c.serial_code.in_(codes))).scalars())
        still_assigned = conn.execute(sa.select(sa.func.count()).select_from(token_assignment).where(
            token_assignment.c.token_id.in_(expected), token_assignment.c.status == "active")).scalar()
    with floor.core.connect() as conn:
        in_core = set(conn.execute(sa.select(core_serial_registry.c.status)
                                   .where(core_serial_registry.c.serial_code.in_(codes))).scalars())
    assert {(r.id, r.status, r.scrapped_at is not None) for r in rows} == {(t, "scrapped", True) for t in expected}
    assert codes, "the orphans of the piece-mode job carry serials"
    assert (voided, in_core) == ({"voided"}, {"voided"})  # the relay carried the void to core
    assert still_assigned == 0


def _kept_the_earliest_session(floor, expected, before) -> None:
    for token in expected:
        earliest, *later = before[token]
        assert later, "the fault opened a second session"
        assert _open_sessions(floor, token) == [earliest]
        assert [_session(floor, s)[:2] for s in later] == [("closed", "closed_by_repair")] * len(later)


def _closed_and_released(floor, expected, _before) -> None:
    # s1 was the running session of r1: closed, r1 is ready again at its node for the next operator
    assert _session(floor, floor.ids["s1"]) == ("closed", "closed_by_repair", "ready")
    assert _open_sessions(floor, floor.ids["r1"]) == []


def _closed_on_the_dead_token(floor, expected, _before) -> None:
    assert _session(floor, floor.ids["c1_session"]) == ("closed", "closed_by_repair", "scrapped")


# check -> (what to read before the apply, what the apply must have done to the rows)
EFFECTS = {
    "orphan_token": (lambda floor, expected: None, _scrapped_with_serial_voided),
    "duplicate_open_session": (lambda floor, expected: {t: _open_sessions(floor, t) for t in expected},
                               _kept_the_earliest_session),
    "session_without_assignment": (lambda floor, expected: None, _closed_and_released),
    "session_on_dead_token": (lambda floor, expected: None, _closed_on_the_dead_token),
}


def test_every_check_has_a_repair_or_guidance():
    from checks import CHECK_IDS

    assert sorted(set(CHECK_IDS) - set(REPAIRS) - set(reconcile.GUIDANCE)) == []
    assert set(REPAIRS).isdisjoint(reconcile.GUIDANCE)


@pytest.mark.parametrize("check", REPAIRABLE)
def test_corrupt_plan_approve_dry_run_execute(factory, check):
    floor, expected, planned = _corrupt_and_plan(factory, check)
    guidance_only = GUIDANCE_ONLY.get(check, lambda f: set())(floor)
    assert _plan_keys(planned["rows"], check) == expected - guidance_only
    assert {g["key"][get(check).keys[0]] for g in planned["guidance"]} == guidance_only
    assert all(r["action"] == REPAIRS[check].action for r in planned["rows"])
    reconcile.approve(factory.settings, planned["plan_id"], by="somchai")

    before = dump_stores(floor)
    dry = reconcile.apply(factory.settings, planned["plan_id"])
    assert dump_stores(floor) == before, "a dry run writes nothing"
    assert dry["would_apply"] == len(planned["rows"]) and dry["would_skip"] == 0

    read_before, effect = EFFECTS.get(check, (lambda floor, expected: None, None))
    state_before = read_before(floor, expected)
    done = reconcile.apply(factory.settings, planned["plan_id"], execute=True, actor="somchai")
    assert done["applied"] == len(planned["rows"]) and done["skipped"] == 0
    if effect is not None:
        effect(floor, expected, state_before)
    left = checks_target_run(floor, [check], now=dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1))[check]
    assert done["recheck"]["counts"][check] == len(guidance_only)
    everything = checks_target_run(floor)  # the whole catalogue: the repair broke nothing else
    expected_left = {**({check: len(guidance_only)} if guidance_only else {}), **RESIDUE.get(check, {})}
    assert {c: (r.count, r.error) for c, r in everything.items() if r.count or r.error} == \
        {c: (n, None) for c, n in expected_left.items()}
    # an hour on, past every grace period, none of the repaired rows comes back
    assert {r[get(check).keys[0]] for r in left.sample} & expected == guidance_only

    trail = reconcile.show(factory.settings, planned["plan_id"])["audit"]
    assert sorted(a["seq"] for a in trail) == [r["seq"] for r in planned["rows"]]
    for entry in trail:
        assert entry["outcome"] == "applied" and entry["actor"] == "somchai"
        assert entry["before"]["finding"] is not None and entry["before"]["row"] is not None
        assert entry["after"]["row"] is not None and entry["after"]["changed"]

    again = reconcile.apply(factory.settings, planned["plan_id"], execute=True)
    assert (again["applied"], again["skipped"], again["already_done"]) == (0, 0, len(planned["rows"]))


def test_republished_serials_carry_the_tenant_truth_to_core(factory):
    floor, expected, planned = _corrupt_and_plan(factory, "serial_field_mismatch")
    reconcile.approve(factory.settings, planned["plan_id"], by="somchai")
    reconcile.apply(factory.settings, planned["plan_id"], execute=True)
    with floor.tenant.connect() as conn:
        tenant = {r.serial_code: r for r in conn.execute(sa.select(serial_registry)
                                                          .where(serial_registry.c.serial_code.in_(expected)))}
    with floor.core.connect() as conn:
        core = {r.serial_code: r for r in conn.execute(sa.select(core_serial_registry)
                                                        .where(core_serial_registry.c.serial_code.in_(expected)))}
    assert sorted(core) == sorted(expected)
    for code in expected:
        assert (core[code].sku, core[code].status, core[code].version) == \
            (tenant[code].sku, tenant[code].status, tenant[code].version)


# --------------------------------------------------------------------------- refusals
def _refused_without_writes(factory, floor, plan_id, error, **kwargs):
    before = dump_stores(floor)
    with pytest.raises(error):
        reconcile.apply(factory.settings, plan_id, execute=True, **kwargs)
    assert dump_stores(floor) == before


def test_apply_without_approval_is_refused(factory):
    floor, _, planned = _corrupt_and_plan(factory, "orphan_token")
    _refused_without_writes(factory, floor, planned["plan_id"], ApprovalRequired)


def test_approval_of_another_hash_is_refused(factory):
    floor, _, planned = _corrupt_and_plan(factory, "orphan_token")
    reconcile.approve(factory.settings, planned["plan_id"], by="somchai")
    # the stored plan is edited after its approval: its hash is no longer the approved one
    rows = planned["rows"][1:]
    with sa.create_engine(factory.settings.monitor_url).begin() as conn:
        conn.execute(repair_plan.update().where(repair_plan.c.id == planned["plan_id"]).values(rows=rows))
    _refused_without_writes(factory, floor, planned["plan_id"], ApprovalRequired)


def test_approver_naming_another_hash_is_refused(factory):
    from reconcile.errors import PlanHashMismatch

    _, _, planned = _corrupt_and_plan(factory, "orphan_token")
    with pytest.raises(PlanHashMismatch):
        reconcile.approve(factory.settings, planned["plan_id"], by="somchai", plan_hash_seen="0" * 64)
    assert reconcile.show(factory.settings, planned["plan_id"])["approvals"] == []


def test_stale_plan_is_refused(factory):
    floor, _, planned = _corrupt_and_plan(factory, "orphan_token")
    reconcile.approve(factory.settings, planned["plan_id"], by="somchai")
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=25)
    _refused_without_writes(factory, floor, planned["plan_id"], PlanStale, now=later)
    _refused_without_writes(factory, floor, planned["plan_id"], PlanStale, max_age=dt.timedelta(seconds=0))


def test_plan_of_another_tenant_is_refused(factory):
    floor, _, planned = _corrupt_and_plan(factory, "orphan_token")
    factory.add_tenant("studio")
    reconcile.approve(factory.settings, planned["plan_id"], by="somchai")
    other = dump_stores(floor) | {"studio": dump_stores(build_other(factory))}
    with pytest.raises(PlanTenantMismatch):
        reconcile.apply(factory.settings, planned["plan_id"], execute=True, tenant_code="studio")
    assert dump_stores(floor) | {"studio": dump_stores(build_other(factory))} == other


def build_other(factory):
    from tests.floor import Floor

    return Floor(factory, tenant_code="studio")


# --------------------------------------------------------------------------- the guard
def test_rows_fixed_or_changed_after_the_plan_are_skipped_not_overwritten(factory):
    floor, expected, planned = _corrupt_and_plan(factory, "orphan_token")
    reconcile.approve(factory.settings, planned["plan_id"], by="somchai")
    fixed, changed, *rest = sorted(expected)
    # someone fixes one row by hand, and an operator starts work on another
    floor.tenant_sql("UPDATE flow_token SET status = 'scrapped', scrapped_at = CURRENT_TIMESTAMP WHERE id = :t",
                     t=fixed)
    floor.tenant_sql("UPDATE flow_token SET updated_at = :at WHERE id = :t",
                     at=dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc), t=changed)
    done = reconcile.apply(factory.settings, planned["plan_id"], execute=True)
    outcomes = {r["key"]["token_id"]: (r["outcome"], r.get("reason")) for r in done["rows"]}
    assert outcomes[fixed][0] == "skipped" and "no longer qualifies" in outcomes[fixed][1]
    assert outcomes[changed][0] == "skipped" and "changed since the plan" in outcomes[changed][1]
    assert {t for t, (o, _) in outcomes.items() if o == "applied"} == set(rest)
    assert factory.scalar("SELECT status FROM flow_token WHERE id = :t", t=changed) == "ready"
    assert done["skipped"] == 2
    trail = reconcile.show(factory.settings, planned["plan_id"])["audit"]
    assert sorted(a["outcome"] for a in trail) == ["applied"] * len(rest) + ["skipped"] * 2


def test_max_rows_caps_a_run_and_the_next_run_continues(factory):
    floor, expected, planned = _corrupt_and_plan(factory, "orphan_token")
    reconcile.approve(factory.settings, planned["plan_id"], by="somchai")
    first = reconcile.apply(factory.settings, planned["plan_id"], execute=True, max_rows=2, batch_size=1)
    assert (first["applied"], first["remaining"]) == (2, len(expected) - 2)
    second = reconcile.apply(factory.settings, planned["plan_id"], execute=True)
    assert (second["applied"], second["already_done"], second["remaining"]) == (len(expected) - 2, 2, 0)
    assert second["recheck"]["counts"]["orphan_token"] == 0


def test_plan_is_read_only(factory):
    floor = build_clean_floor(factory)
    FAULTS["cancelled_job_not_clean"].apply(floor)
    before = dump_stores(floor)
    planned = reconcile.plan(factory.settings, floor.tenant_code)
    assert dump_stores(floor) == before
    assert planned["checks"] == list(__import__("checks").CHECK_IDS)
    # the fault leaves the job's live tokens orphaned too: both checks get their rows
    assert {r["check"] for r in planned["rows"]} == {"cancelled_job_not_clean", "orphan_token"}
    assert planned["guidance"] == []


def test_one_plan_settles_a_dirty_cancel_and_its_orphans(factory):
    floor = build_clean_floor(factory)
    FAULTS["cancelled_job_not_clean"].apply(floor)
    planned = reconcile.plan(factory.settings, floor.tenant_code, ["orphan_token", "cancelled_job_not_clean"])
    assert [r["check"] for r in planned["rows"]][0] == "cancelled_job_not_clean", "the hard reset goes first"
    reconcile.approve(factory.settings, planned["plan_id"], by="somchai")
    done = reconcile.apply(factory.settings, planned["plan_id"], execute=True)
    assert done["recheck"]["counts"] == {"orphan_token": 0, "cancelled_job_not_clean": 0}
    outcomes = {(r["check"], r["outcome"], r.get("reason")) for r in done["rows"]}
    assert ("cancelled_job_not_clean", "applied", "cancel left live rows behind") in outcomes
    assert {o for c, o, _ in outcomes if c == "orphan_token"} == {"skipped"}  # the hard reset scrapped them


def test_metrics_count_applied_and_skipped_rows(factory):
    from prometheus_client import generate_latest

    from checks.metrics import registry_for
    from reconcile.metrics import SOURCES

    floor, expected, planned = _corrupt_and_plan(factory, "assignment_without_token")
    reconcile.approve(factory.settings, planned["plan_id"], by="somchai")
    skipped = sorted(expected)[0]
    floor.tenant_sql("UPDATE token_assignment SET status = 'expired' WHERE id = :a", a=skipped)
    reconcile.apply(factory.settings, planned["plan_id"], execute=True)
    text = generate_latest(registry_for(factory.settings, sources=SOURCES)).decode()
    assert ('hatthasilpa_repairs_applied_total{action="expire_assignment",check="assignment_without_token",'
            'tenant="atelier"} 1.0') in text
    assert 'hatthasilpa_repair_rows_skipped_total{check="assignment_without_token",tenant="atelier"} 1.0' in text
