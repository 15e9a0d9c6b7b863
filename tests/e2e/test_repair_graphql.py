"""The repair job launched the way the Launchpad launches it: Dagster's GraphQL API against a
running `dagster dev` webserver (the run executes in Dagster's own run worker process)."""

from __future__ import annotations

import json
import os
import time
import urllib.request

from dagster_graphql import DagsterGraphQLClient

import reconcile
from tests.contents import dump_stores
from tests.e2e.test_dagster_ui import dagster_dev
from tests.faults import FAULTS
from tests.floor import build_clean_floor
from tests.repair_support import audit_chain_intact_afterwards  # noqa: F401 - verifies the audit log after each test

TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}
LOGS = """
query RunLogs($runId: ID!) {
  logsForRun(runId: $runId) {
    __typename
    ... on EventConnection { events { __typename ... on MessageEvent { message }
      ... on ExecutionStepFailureEvent { error { message }
        failureMetadata { metadataEntries { label ... on TextMetadataEntry { text } } } } } }
  }
}"""


def wait_for_run(client: DagsterGraphQLClient, run_id: str, deadline_s: float = 240) -> str:
    """Poll the run's status until it is terminal (bounded)."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        status = client.get_run_status(run_id).value
        if status in TERMINAL:
            return status
        time.sleep(1)  # polling an external server's run status, bounded by the deadline
    raise AssertionError(f"run {run_id} not finished within {deadline_s} s")


def run_logs(base: str, run_id: str) -> str:
    request = urllib.request.Request(f"{base}/graphql", method="POST", headers={"Content-Type": "application/json"},
                                     data=json.dumps({"query": LOGS, "variables": {"runId": run_id}}).encode())
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.read().decode()


def test_repair_job_through_graphql_refuses_without_approval_and_applies_with_it(sqlite_factory, tmp_path):
    stores = sqlite_factory
    floor = build_clean_floor(stores)
    expected = FAULTS["assignment_without_token"].apply(floor)
    planned = reconcile.plan(stores.settings, "atelier", ["assignment_without_token"], actor="malee")
    env = {**os.environ, "HATTHASILPA_CORE_URL": stores.settings.core_url,
           "HATTHASILPA_TENANT_URL_TEMPLATE": stores.settings.tenant_url_template,
           "HATTHASILPA_MONITOR_URL": stores.settings.monitor_url}
    home = tmp_path / "dagster_home"
    home.mkdir()
    before = dump_stores(floor)
    with dagster_dev(env, home) as base:
        client = DagsterGraphQLClient("127.0.0.1", port_number=int(base.rsplit(":", 1)[1]))
        tags = {"hatthasilpa/tenant": "atelier"}

        refused = client.submit_job_execution("repair_job", tags=tags, run_config={"ops": {"apply_repair_plan": {
            "config": {"plan_id": planned["plan_id"], "execute": True}}}})
        assert wait_for_run(client, refused) == "FAILURE"
        assert "APPROVAL_REQUIRED" in run_logs(base, refused)
        assert dump_stores(floor) == before

        own = client.submit_job_execution("repair_job", tags=tags, run_config={"ops": {"apply_repair_plan": {
            "config": {"plan_id": planned["plan_id"], "approved_by": "Malee", "plan_hash": planned["hash"],
                       "execute": True}}}})
        assert wait_for_run(client, own) == "FAILURE"
        assert "SELF_APPROVAL" in run_logs(base, own)  # four eyes: the planner cannot approve, whatever the case
        assert dump_stores(floor) == before

        applied = client.submit_job_execution("repair_job", tags=tags, run_config={"ops": {"apply_repair_plan": {
            "config": {"plan_id": planned["plan_id"], "approved_by": "somchai", "plan_hash": planned["hash"],
                       "execute": True, "max_rows": 10}}}})
        assert wait_for_run(client, applied) == "SUCCESS", run_logs(base, applied)[-3000:]

    shown = reconcile.show(stores.settings, planned["plan_id"])
    assert [a["approved_by"] for a in shown["approvals"]] == ["somchai"]
    assert sorted(a["key"]["assignment_id"] for a in shown["audit"] if a["outcome"] == "applied") == sorted(expected)
    assert {stores.scalar("SELECT status FROM token_assignment WHERE id = :a", a=a) for a in expected} == {"expired"}
