"""The production instance with its daemon: many tenants, many run processes, one run per tenant.

`dagster-webserver` and `dagster-daemon run` serve the definitions on the production instance
(`deploy/dagster-postgres.yaml`: PostgreSQL storage, queued run coordinator). An asset backfill
of `integrity_findings` over 20 tenants, plus a second run submitted for some of them while
the backfill is queued, all go through the daemon's queue: every run succeeds, the runs
execute in separate processes and overlap in time, and no two runs of one tenant ever do.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
import urllib.request
import uuid
from contextlib import ExitStack, contextmanager
from pathlib import Path

import psycopg
from dagster import DagsterEventType, DagsterInstance, RunsFilter
from dagster._core.instance.ref import InstanceRef
from dagster_graphql import DagsterGraphQLClient

from checks.store import latest_results
from tests.e2e.test_dagster_ui import ROOT, free_port, wait_until_serving
from tests.processes import process_group

TENANTS = [f"t{i:02d}" for i in range(20)]
TWICE = TENANTS[:4]  # each of these gets a second run while its backfill run is still queued
TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}
BACKFILL = """
mutation Backfill($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
    ... on InvalidStepError { invalidStepKey }
    ... on UnauthorizedError { message }
  }
}"""


def graphql(base: str, query: str, variables: dict) -> dict:
    request = urllib.request.Request(f"{base}/graphql", method="POST", headers={"Content-Type": "application/json"},
                                     data=json.dumps({"query": query, "variables": variables}).encode())
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


@contextmanager
def production_dagster(env: dict, home: Path):
    """`dagster-webserver` and `dagster-daemon run` on the production instance, each in its own process group."""
    shutil.copy(ROOT / "deploy" / "dagster-postgres.yaml", home / "dagster.yaml")
    env = {**env, "DAGSTER_HOME": str(home)}
    bindir = Path(sys.executable).parent
    port = free_port()
    with ExitStack() as stack:
        daemon = stack.enter_context(process_group([str(bindir / "dagster-daemon"), "run"], home / "daemon.log",
                                                   env, cwd=ROOT))
        web = stack.enter_context(process_group([str(bindir / "dagster-webserver"), "-h", "127.0.0.1",
                                                 "-p", str(port)], home / "webserver.log", env, cwd=ROOT))
        wait_until_serving(f"http://127.0.0.1:{port}/server_info", web)
        assert daemon.poll() is None, (home / "daemon.log").read_text()[-3000:]
        yield f"http://127.0.0.1:{port}"


def wait_for_runs(instance: DagsterInstance, run_ids: set[str], deadline_s: float) -> dict[str, str]:
    """Poll the run storage until every run is terminal (bounded)."""
    deadline = time.monotonic() + deadline_s
    while True:
        records = instance.get_run_records(RunsFilter(run_ids=list(run_ids)))
        status = {r.dagster_run.run_id: r.dagster_run.status.value for r in records}
        if len(status) == len(run_ids) and set(status.values()) <= TERMINAL:
            return status
        if time.monotonic() > deadline:
            raise AssertionError(f"runs not finished within {deadline_s} s: {status}")
        time.sleep(1)  # polling the daemon's progress in the run storage, bounded by the deadline


def test_daemon_checks_twenty_tenants_in_parallel_processes_never_two_on_one_tenant(pg_stores, pg_admin_url, tmp_path,
                                                                                   monkeypatch):
    stores = pg_stores
    for tenant in TENANTS:
        stores.add_tenant(tenant)
    admin_url, _ = pg_admin_url
    dagster_db = f"hs_dagster_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{dagster_db}"')
    server = psycopg.conninfo.conninfo_to_dict(admin_url)
    instance_db = {"DAGSTER_PG_HOST": server.get("host", "127.0.0.1"), "DAGSTER_PG_PORT": str(server.get("port", 5432)),
                   "DAGSTER_PG_USER": server.get("user", "postgres"), "DAGSTER_PG_PASSWORD": "",
                   "DAGSTER_PG_DB": dagster_db}
    for key, value in instance_db.items():  # this process reads the same instance as the servers
        monkeypatch.setenv(key, value)
    env = {**os.environ, "HATTHASILPA_CORE_URL": stores.settings.core_url,
           "HATTHASILPA_TENANT_URL_TEMPLATE": stores.settings.tenant_url_template,
           "HATTHASILPA_MONITOR_URL": stores.settings.monitor_url}
    home = tmp_path / "dagster_home"
    home.mkdir()
    try:
        with production_dagster(env, home) as base:
            with DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
                instance.add_dynamic_partitions("tenant", TENANTS)
                launched = graphql(base, BACKFILL, {"params": {
                    "partitionNames": TENANTS, "assetSelection": [{"path": ["integrity_findings"]}]}})
                result = launched["data"]["launchPartitionBackfill"]
                assert result["__typename"] == "LaunchBackfillSuccess", result
                client = DagsterGraphQLClient("127.0.0.1", port_number=int(base.rsplit(":", 1)[1]))
                extra = {client.submit_job_execution("integrity_job", tags={"dagster/partition": t,
                                                                             "hatthasilpa/tenant": t})
                         for t in TWICE}
                backfill_runs = _backfill_runs(instance, result["backfillId"], len(TENANTS), deadline_s=300)
                status = wait_for_runs(instance, backfill_runs | extra, deadline_s=600)
                runs = instance.get_run_records(RunsFilter(run_ids=list(status)))
                pids = _run_pids(instance, status)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{dagster_db}" WITH (FORCE)')

    failed = {run_id: s for run_id, s in status.items() if s != "SUCCESS"}
    assert not failed, (failed, (home / "daemon.log").read_text()[-3000:])
    by_tenant: dict[str, list[tuple[float, float]]] = {}
    for record in runs:
        by_tenant.setdefault(record.dagster_run.tags["dagster/partition"], []).append(
            (record.start_time, record.end_time))
    assert sorted(by_tenant) == TENANTS
    assert all(len(by_tenant[t]) == 2 for t in TWICE)
    for tenant, spans in by_tenant.items():  # one tenant's runs never overlap
        spans.sort()
        for (_, end), (start, _) in zip(spans, spans[1:]):
            assert end <= start, (tenant, spans)
    spans = [(r.start_time, r.end_time) for r in runs]
    overlapping = max(sum(1 for s, e in spans if s <= at < e) for at, _ in spans)
    assert overlapping >= 2, spans  # runs of different tenants executed at the same time
    assert len(set(pids.values())) == len(status)  # each run in its own process
    assert os.getpid() not in pids.values()
    recorded = latest_results(stores.settings.monitor_url)  # every tenant's checks were run and recorded
    assert {r["tenant_code"] for r in recorded} == set(TENANTS)
    assert all(r["error"] is None and r["count"] == 0 for r in recorded)


def _backfill_runs(instance: DagsterInstance, backfill_id: str, count: int, deadline_s: float) -> set[str]:
    """The runs the daemon's backfill loop has submitted for ``backfill_id`` (waits for all ``count``)."""
    deadline = time.monotonic() + deadline_s
    while True:
        runs = instance.get_run_records(RunsFilter(tags={"dagster/backfill": backfill_id}))
        if len(runs) >= count:
            return {r.dagster_run.run_id for r in runs}
        if time.monotonic() > deadline:
            raise AssertionError(f"the backfill submitted {len(runs)} of {count} runs within {deadline_s} s")
        time.sleep(1)  # polling the daemon's backfill loop, bounded by the deadline


def _run_pids(instance: DagsterInstance, status: dict[str, str]) -> dict[str, int]:
    """The process each run's steps executed in (from its RUN_START event)."""
    pids = {}
    for run_id in status:
        records = instance.get_records_for_run(run_id, of_type=DagsterEventType.RUN_START).records
        assert len(records) == 1, run_id
        pids[run_id] = records[0].event_log_entry.dagster_event.pid
    return pids
