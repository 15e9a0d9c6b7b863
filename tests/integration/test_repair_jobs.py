"""The repair jobs through Dagster's testing API: plan from the latest findings, then apply."""

from __future__ import annotations

import pytest
from dagster import DagsterInstance

import reconcile
from checks import run_checks
from pipelines.definitions import defs
from tests.faults import FAULTS
from tests.floor import build_clean_floor
from tests.integration.test_pipelines import resources_for
from tests.repair_support import dump_stores
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


@pytest.mark.parametrize("job_name", ["repair_plan_job", "repair_job"])
def test_repair_jobs_are_in_the_definitions(job_name):
    assert defs.resolve_job_def(job_name).name == job_name
