"""The options README.md and docs/cli.md promise, each shown doing what they say, through the CLI."""

from __future__ import annotations

import datetime as dt
import json

import pytest
import sqlalchemy as sa

import reconcile
from checks import CHECK_IDS, run_checks, select
from lifecycle import outbox
from lifecycle.db import get_engine
from lifecycle.uow import utcnow
from reconcile.errors import PlanStale
from reconcile.schema import repair_plan
from tests.conftest import LINEAR_GRAPH
from tests.faults import FAULTS
from tests.floor import build_clean_floor


def jobs(factory, *specs):
    for code, quantity in specs:
        factory.ok("job", "create", "--tenant", "atelier", "--code", code, "--sku", "TOTE", "--quantity", quantity,
                   "--graph", "bag")


def test_work_queue_limit_returns_the_first_n_and_says_there_are_more(factory):
    jobs(factory, ("Q", 5))
    factory.ok("job", "start", "--tenant", "atelier", "Q")
    whole = factory.ok("work-queue", "--tenant", "atelier")
    assert (whole["count"], whole["truncated"]) == (5, False)
    first = factory.ok("work-queue", "--tenant", "atelier", "--limit", "2")
    assert (first["count"], first["truncated"]) == (2, True)
    assert first["tokens"] == whole["tokens"][:2]  # the same order, cut after N
    exact = factory.ok("work-queue", "--tenant", "atelier", "--limit", "5")
    assert (exact["count"], exact["truncated"]) == (5, False)


def test_job_list_status_keeps_only_jobs_in_that_status(factory):
    jobs(factory, ("A", 1), ("B", 1), ("C", 1))
    factory.ok("job", "start", "--tenant", "atelier", "B")
    factory.ok("job", "start", "--tenant", "atelier", "C")
    factory.ok("job", "cancel", "--tenant", "atelier", "C")
    listed = lambda *status: [(j["job_code"], j["status"]) for j in  # noqa: E731
                              factory.ok("job", "list", "--tenant", "atelier", *status)["jobs"]]
    assert listed() == [("A", "planned"), ("B", "in_progress"), ("C", "cancelled")]
    assert listed("--status", "in_progress") == [("B", "in_progress")]
    assert listed("--status", "cancelled") == [("C", "cancelled")]
    assert listed("--status", "completed") == []
    code, body = factory.cli("job", "list", "--tenant", "atelier", "--status", "lost")
    assert (code, body["error"]["code"]) == (2, "VALIDATION_ERROR")


def test_a_second_graph_create_of_one_code_adds_a_version_new_jobs_use(factory, tmp_path):
    jobs(factory, ("OLD", 1))
    longer = {"nodes": LINEAR_GRAPH["nodes"][:-1] + [{"code": "polish", "kind": "work"}, {"code": "qc", "kind": "end"}],
              "edges": LINEAR_GRAPH["edges"][:-1] + [["edge", "polish"], ["polish", "qc"]]}
    path = tmp_path / "bag2.json"
    path.write_text(json.dumps(longer))
    second = factory.ok("graph", "create", "--tenant", "atelier", "--code", "bag", "--file", path)
    assert second["version"] == 2
    assert factory.rows("SELECT version, status FROM routing_graph WHERE code = 'bag' ORDER BY version") == \
        [(1, "retired"), (2, "active")]
    jobs(factory, ("NEW", 1))
    on = dict(factory.rows("SELECT j.job_code, g.version FROM hatthasilpa_job j "
                           "JOIN routing_graph g ON g.id = j.graph_id"))
    assert on == {"OLD": 1, "NEW": 2}  # a job keeps the version it was created on


def test_thresholds_can_be_overridden_per_run(factory):
    floor = build_clean_floor(factory)
    # s2 (paused, started two hours ago) is not stale at the default 12 h, stale at a 1 h threshold
    default = run_checks(factory.settings, tenants=["atelier"], check_ids=["stale_open_session"], record=False)
    assert default.results[0].count == 0
    strict = run_checks(factory.settings, tenants=["atelier"], check_ids=["stale_open_session"], record=False,
                        thresholds={"stale_session": dt.timedelta(hours=1)})
    assert floor.ids["s2"] in {r["session_id"] for r in strict.results[0].sample}


def test_repair_plan_row_cap_plans_at_most_n_rows_per_check(factory):
    floor = build_clean_floor(factory)
    orphans = FAULTS["orphan_token"].apply(floor)
    assert len(orphans) > 2
    capped = factory.ok("repair", "plan", "--tenant", "atelier", "--check", "orphan_token", "--row-cap", "2")
    assert len(capped["rows"]) == 2 and capped["capped_checks"] == ["orphan_token"]
    assert {r["key"]["token_id"] for r in capped["rows"]} < orphans
    whole = factory.ok("repair", "plan", "--tenant", "atelier", "--check", "orphan_token")
    assert {r["key"]["token_id"] for r in whole["rows"]} == orphans and whole["capped_checks"] == []


def test_plan_max_age_comes_from_the_environment(factory, monkeypatch):
    floor = build_clean_floor(factory)
    FAULTS["assignment_without_token"].apply(floor)
    plan = factory.ok("repair", "plan", "--tenant", "atelier", "--check", "assignment_without_token", "--by", "nok")
    factory.ok("repair", "approve", plan["plan_id"], "--by", "somchai")
    two_hours_on = utcnow() + dt.timedelta(hours=2)
    assert reconcile.apply(factory.settings, plan["plan_id"], now=two_hours_on)["would_apply"] > 0  # 24 h default
    monkeypatch.setenv("HATTHASILPA_REPAIR_PLAN_MAX_AGE_HOURS", "1")
    with pytest.raises(PlanStale):
        reconcile.apply(factory.settings, plan["plan_id"], now=two_hours_on)
    code, body = factory.cli("repair", "apply", plan["plan_id"])  # the plan itself is seconds old: within 1 h
    assert code == 0 and body["data"]["would_apply"] > 0, body
    with get_engine(factory.settings.monitor_url).begin() as conn:  # the plan was made two hours ago
        conn.execute(repair_plan.update().where(repair_plan.c.id == plan["plan_id"]).values(
            created_at=utcnow() - dt.timedelta(hours=2)))
    code, body = factory.cli("repair", "apply", plan["plan_id"])
    assert (code, body["error"]["code"]) == (3, "PLAN_STALE"), body


def test_hatthasilpa_actor_names_who_acts_unless_actor_is_given(factory, monkeypatch):
    jobs(factory, ("A", 1), ("B", 1))
    monkeypatch.setenv("HATTHASILPA_ACTOR", "ploy")
    factory.ok("job", "start", "--tenant", "atelier", "A")
    factory.ok("--actor", "nok", "job", "start", "--tenant", "atelier", "B")
    monkeypatch.delenv("HATTHASILPA_ACTOR")
    factory.ok("job", "cancel", "--tenant", "atelier", "A")
    actors = factory.rows("SELECT j.job_code, e.event_type, e.actor FROM token_event e "
                          "JOIN flow_token t ON t.id = e.token_id JOIN hatthasilpa_job j ON j.id = t.job_id "
                          "ORDER BY e.id")
    assert ("A", "spawned", "ploy") in actors and ("B", "spawned", "nok") in actors
    assert {actor for job, event, actor in actors if job == "A" and event != "spawned"} == {"cli"}


def test_relay_backoff_defaults_to_a_ten_minute_cap():
    options = outbox.RelayOptions()
    assert [options.backoff(n).total_seconds() for n in (1, 2, 3, 8, 20)] == [5, 10, 20, 600, 600]


def test_relay_max_attempts_parks_a_refused_row_after_n_attempts_default_8(factory):
    factory.add_tenant("studio")
    for tenant in ("atelier", "studio"):  # one malformed event each: core refuses it at every attempt
        with factory.tenant_engine(tenant).begin() as conn:
            conn.execute(sa.text("INSERT INTO serial_outbox (event_id, serial_code, version, payload, attempts) "
                                 "VALUES ('bad-event', 'X-TOTE-999999', 1, '{}', 0)"))

    def attempt(tenant, *options):
        summary = factory.ok("outbox", "relay", "--tenant", tenant, *options)
        with factory.tenant_engine(tenant).begin() as conn:  # due again at once, without waiting out the backoff
            conn.execute(sa.text("UPDATE serial_outbox SET next_attempt_at = NULL WHERE parked_at IS NULL"))
        return summary["failed"], summary["parked"]

    assert [attempt("atelier", "--max-attempts", "2") for _ in range(3)] == [(1, 0), (1, 1), (0, 0)]
    assert [attempt("studio") for _ in range(9)] == [(1, 0)] * 7 + [(1, 1), (0, 0)]  # parked at the 8th


def test_check_run_sample_fast_and_timeout_at_the_cli(factory):
    floor = build_clean_floor(factory)
    orphans = FAULTS["orphan_token"].apply(floor)
    run = lambda *options: {r["check"]: r for r in factory.ok("check", "run", *options)["results"]}  # noqa: E731

    sampled = run("--check", "orphan_token", "--sample", "2")["orphan_token"]
    assert sampled["count"] == len(orphans) > 2 and len(sampled["sample"]) == 2  # the count stays whole

    fast = run("--fast")
    assert set(fast) == {c.id for c in select(fast_only=True)} and set(fast) < set(CHECK_IDS)
    assert fast["orphan_token"]["count"] == len(orphans)

    # a budget no check can meet: an error result without a count, never "0 found"
    cut = run("--check", "serial_missing_in_core", "--check", "orphan_token", "--timeout", "1e-9")
    assert cut["serial_missing_in_core"]["count"] is None and cut["serial_missing_in_core"]["error"]
    assert run("--check", "serial_missing_in_core", "--timeout", "30")["serial_missing_in_core"]["error"] is None
