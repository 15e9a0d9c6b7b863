"""The repair jobs through Dagster's testing API: plan from the latest findings, then apply."""

from __future__ import annotations

import re

import pytest
import yaml
from dagster import DagsterInstance, materialize

import reconcile
from checks import run_checks
from pipelines.definitions import defs
from pipelines.repairs import repair_plans
from tests.contents import dump_stores
from tests.faults import FAULTS
from tests.floor import build_clean_floor
from tests.integration.test_pipelines import resources_for
from tests.repair_support import audit_chain_intact_afterwards  # noqa: F401 - verifies the audit log after each test


def _run(job_name, stores, config, instance=None, partition_key=None, tags=None):
    job = defs.resolve_job_def(job_name)
    return job.execute_in_process(run_config={"ops": config}, resources=resources_for(stores), instance=instance,
                                  partition_key=partition_key, tags=tags, raise_on_error=False)


def _failure_description(result) -> str:
    failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert failures, "the run was expected to fail"
    return failures[0].step_failure_data.user_failure_data.description


def test_plan_job_plans_the_latest_findings_and_shows_the_plan(factory):
    floor = build_clean_floor(factory)
    expected = FAULTS["orphan_token"].apply(floor)
    run_checks(factory.settings, tenants=["atelier"], check_ids=["orphan_token", "mixed_token_states"])
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("tenant", ["atelier"])
    result = _run("repair_plan_job", factory, {"repair_plan": {}}, instance=instance, partition_key="atelier")
    assert result.success
    outputs = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    md = outputs[0].event_specific_data.metadata
    plan_id = result.output_for_node("repair_plan")
    shown = reconcile.show(factory.settings, plan_id)
    assert shown["checks"] == ["orphan_token"]  # the only check whose latest finding is not zero
    assert {r["key"]["token_id"] for r in shown["rows"]} == expected
    assert md["hash"].value == shown["hash"] and "scrap_token" in md["plan"].value


def test_repair_job_refuses_without_approval_and_a_wrong_hash_then_applies(factory):
    floor = build_clean_floor(factory)
    FAULTS["assignment_without_token"].apply(floor)
    planned = reconcile.plan(factory.settings, "atelier", ["assignment_without_token"])
    before = dump_stores(floor)

    refused = _run("repair_job", factory, {"apply_repair_plan": {"config": {"plan_id": planned["plan_id"],
                                                                            "execute": True}}})
    assert not refused.success and "APPROVAL_REQUIRED" in _failure_description(refused)
    wrong = _run("repair_job", factory, {"apply_repair_plan": {"config": {
        "plan_id": planned["plan_id"], "approved_by": "somchai", "plan_hash": "0" * 64, "execute": True}}})
    assert not wrong.success and "PLAN_HASH_MISMATCH" in _failure_description(wrong)
    other = _run("repair_job", factory, {"apply_repair_plan": {"config": {
        "plan_id": planned["plan_id"], "approved_by": "somchai", "plan_hash": planned["hash"], "execute": True}}},
        tags={"hatthasilpa/tenant": "studio"})
    assert not other.success and "PLAN_TENANT_MISMATCH" in _failure_description(other)
    assert dump_stores(floor) == before
    assert reconcile.show(factory.settings, planned["plan_id"])["approvals"] == []

    config = {"plan_id": planned["plan_id"], "approved_by": "somchai", "plan_hash": planned["hash"]}
    dry = _run("repair_job", factory, {"apply_repair_plan": {"config": config}})
    assert dry.success and dump_stores(floor) == before
    done = _run("repair_job", factory, {"apply_repair_plan": {"config": {**config, "execute": True}}},
                tags={"hatthasilpa/tenant": "atelier"})
    assert done.success
    report = reconcile.show(factory.settings, planned["plan_id"])
    assert [a["outcome"] for a in report["audit"]] == ["applied"] * len(planned["rows"])
    assert {a["approved_by"] for a in report["approvals"]} == {"somchai"}


def test_the_planner_of_a_plan_made_in_dagster_may_not_approve_it_there(factory):
    floor = build_clean_floor(factory)
    FAULTS["orphan_token"].apply(floor)
    run_checks(factory.settings, tenants=["atelier"], check_ids=["orphan_token"])
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("tenant", ["atelier"])
    planned = _run("repair_plan_job", factory, {"repair_plan": {"config": {"planned_by": "nok"}}},
                   instance=instance, partition_key="atelier")
    plan_id = planned.output_for_node("repair_plan")
    shown = reconcile.show(factory.settings, plan_id)
    assert shown["planned_by"] == "nok"
    before = dump_stores(floor)
    refused = _run("repair_job", factory, {"apply_repair_plan": {"config": {
        "plan_id": plan_id, "approved_by": "nok", "plan_hash": shown["hash"], "execute": True}}})
    assert not refused.success and _failure_description(refused).startswith("SELF_APPROVAL")
    assert dump_stores(floor) == before and reconcile.show(factory.settings, plan_id)["approvals"] == []


def _plans_view(stores, instance, tenant="atelier"):
    result = materialize([repair_plans], partition_key=tenant, instance=instance, resources=resources_for(stores))
    assert result.success
    (event,) = result.get_asset_materialization_events()
    return event.materialization.metadata


def _launchpad_configs(markdown: str) -> list[dict]:
    return [yaml.safe_load(block) for block in re.findall(r"```yaml\n(.*?)```", markdown, re.DOTALL)]


def test_repair_plans_view_lists_each_plan_and_the_launchpad_config_that_applies_it(factory):
    floor = build_clean_floor(factory)
    expected = FAULTS["orphan_token"].apply(floor)
    planned = reconcile.plan(factory.settings, "atelier", ["orphan_token"], actor="nok")
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("tenant", ["atelier"])

    view = _plans_view(factory, instance)
    (listed,) = view["listed"].value
    assert (listed["plan_id"], listed["hash"], listed["planned_by"], listed["state"]) == \
        (planned["plan_id"], planned["hash"], "nok", "pending")
    assert listed["rows_by_action"] == {"scrap_token": len(expected)} and view["pending"].value == 1
    assert planned["plan_id"] in view["plans"].value and "| pending | nok |" in view["plans"].value
    (config,) = _launchpad_configs(view["launchpad"].value)
    assert config["ops"]["apply_repair_plan"]["config"]["approved_by"] == ""
    config["ops"]["apply_repair_plan"]["config"]["approved_by"] = "somchai"  # the one thing the approver types
    before = dump_stores(floor)
    dry = defs.resolve_job_def("repair_job").execute_in_process(run_config=config, resources=resources_for(factory))
    assert dry.success and dump_stores(floor) == before

    view = _plans_view(factory, instance)
    assert view["listed"].value[0]["state"] == "approved" and view["listed"].value[0]["approved_by"] == ["somchai"]
    dry_run, execute = _launchpad_configs(view["launchpad"].value)
    assert dry_run["ops"]["apply_repair_plan"]["config"]["execute"] is False
    assert execute["ops"]["apply_repair_plan"]["config"] == {"plan_id": planned["plan_id"],
                                                              "plan_hash": planned["hash"], "execute": True,
                                                              "tenant": "atelier"}
    done = defs.resolve_job_def("repair_job").execute_in_process(run_config=execute, resources=resources_for(factory))
    assert done.success
    view = _plans_view(factory, instance)
    assert view["listed"].value[0]["state"] == "applied" and view["applied"].value == 1
    assert view["launchpad"].value == "no plan waits for approval or apply"


@pytest.mark.parametrize("job_name", ["repair_plan_job", "repair_job"])
def test_repair_jobs_are_in_the_definitions(job_name):
    assert defs.resolve_job_def(job_name).name == job_name
