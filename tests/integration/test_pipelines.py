"""The Dagster definitions as Dagster's testing API drives them."""

from __future__ import annotations

import sqlalchemy as sa
from prometheus_client import generate_latest
from dagster import (
    AssetCheckKey,
    AssetKey,
    DagsterInstance,
    RunRequest,
    Definitions,
    SensorResult,
    SkipReason,
    build_schedule_context,
    build_sensor_context,
    instance_for_test,
    materialize,
)

from checks import catalogue, gx, metrics
from lifecycle.db import get_engine
from pipelines.assets import MONITOR_ASSETS, integrity_findings
from pipelines.definitions import defs
from pipelines.partitions import TENANT_TAG
from pipelines.resources import resources_for as pipeline_resources
from pipelines.jobs import outbox_relay_job
from pipelines.schedules import gx_schedule, integrity_schedule, outbox_relay_schedule, reconciliation_schedule
from pipelines.sensors import tenant_partitions_sensor


def resources_for(stores):
    return pipeline_resources(stores.settings)


def test_definitions_load_and_resolve_every_job_schedule_and_sensor():
    Definitions.validate_loadable(defs)
    repo = defs.get_repository_def()
    for job in repo.get_all_jobs():
        assert defs.resolve_job_def(job.name).name == job.name
    assert {s.name for s in repo.schedule_defs} >= {"integrity_schedule", "reconciliation_schedule"}
    assert {s.name for s in repo.sensor_defs} >= {"tenant_partitions_sensor"}
    check_names = {key.name for asset in MONITOR_ASSETS for key in asset.check_keys}
    assert check_names == {c.id for c in catalogue.all_checks()} | {f"gx_{table}" for table in gx.SUITES}
    assert {j.name for j in repo.get_all_jobs()} >= {"integrity_job", "reconciliation_job", "gx_job",
                                                     "outbox_relay_job"}


def orphan_token_fault(stores, tenant):
    """A legacy path cancelled the job without the hard reset: its ready tokens are orphans."""
    with get_engine(stores.settings.tenant_url(tenant)).begin() as conn:
        conn.execute(sa.text("UPDATE hatthasilpa_job SET status = 'cancelled' WHERE job_code = 'J1'"))


def test_materialize_two_tenant_partitions_matches_check_run(factory, tmp_path):
    factory.add_tenant("second")
    for tenant in ("atelier", "second"):
        if tenant == "second":
            graph = tmp_path / "bag.json"
            factory.ok("graph", "create", "--tenant", tenant, "--code", "bag", "--file", graph)
        factory.ok("job", "create", "--tenant", tenant, "--code", "J1", "--sku", "TOTE", "--quantity", 3,
                   "--graph", "bag")
        factory.ok("job", "start", "--tenant", tenant, "J1")
    orphan_token_fault(factory, "atelier")
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("tenant", ["atelier", "second"])
    for tenant in ("atelier", "second"):
        result = materialize(MONITOR_ASSETS, partition_key=tenant, instance=instance,
                             resources=resources_for(factory))
        assert result.success
        evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
        assert {f"gx_{table}" for table in gx.SUITES} <= set(evaluations)
        evaluations = {name: e for name, e in evaluations.items() if not name.startswith("gx_")}
        assert set(evaluations) == {c.id for c in catalogue.all_checks()}
        cli = factory.ok("check", "run", "--tenant", tenant, "--json")["results"]
        assert {r["check"]: r["count"] for r in cli} == \
            {name: e.metadata["count"].value for name, e in evaluations.items()}
        assert {r["check"]: r["count"] == 0 and not r.get("error") for r in cli} == \
            {name: e.passed for name, e in evaluations.items()}
    orphan = factory.ok("check", "run", "--tenant", "atelier", "--check", "orphan_token", "--json")["results"][0]
    assert orphan["count"] == 3
    # each (tenant, check) keeps its own status: the clean tenant materialized last hides nothing
    key = AssetCheckKey(AssetKey("integrity_findings"), "orphan_token")
    status = {info.partition_key: info.latest_execution_status.value
              for info in instance.event_log_storage.get_asset_check_partition_info([key])}
    assert status == {"atelier": "FAILED", "second": "SUCCEEDED"}
    # the latest materialization (the clean tenant's) still counts every tenant's failing checks
    latest = instance.get_latest_materialization_event(AssetKey("integrity_findings")).asset_materialization
    assert latest.partition == "second" and latest.metadata["failing_checks"].value == 0
    overview = latest.metadata["failing_checks_by_tenant"].value
    assert "| atelier | 2 |" in overview and "orphan_token" in overview and "| second | 0 |" in overview


def test_schedules_request_one_run_per_tenant_partition():
    with instance_for_test() as instance:
        instance.add_dynamic_partitions("tenant", ["atelier", "second"])
        for schedule in (integrity_schedule, reconciliation_schedule, gx_schedule):
            requests = list(schedule(build_schedule_context(instance=instance)))
            assert [(r.partition_key, r.tags[TENANT_TAG]) for r in requests] == [("atelier", "atelier"),
                                                                               ("second", "second")]


def test_tenant_sensor_adds_and_removes_partitions(stores):
    stores.add_tenant("atelier")
    stores.add_tenant("second")
    instance = DagsterInstance.ephemeral()
    context = build_sensor_context(instance=instance, resources=resources_for(stores))
    result = tenant_partitions_sensor(context)
    assert isinstance(result, SensorResult)
    (add,) = result.dynamic_partitions_requests
    assert sorted(add.partition_keys) == ["atelier", "second"]
    instance.add_dynamic_partitions("tenant", ["atelier", "second"])
    assert isinstance(tenant_partitions_sensor(build_sensor_context(instance=instance,
                                                                    resources=resources_for(stores))), SkipReason)
    with get_engine(stores.settings.core_url).begin() as conn:
        conn.execute(sa.text("DELETE FROM feature_flag WHERE tenant_code = 'second'"))
        conn.execute(sa.text("DELETE FROM tenant WHERE tenant_code = 'second'"))
    result = tenant_partitions_sensor(build_sensor_context(instance=instance, resources=resources_for(stores)))
    (delete,) = result.dynamic_partitions_requests
    assert list(delete.partition_keys) == ["second"]


def test_outbox_relay_job_publishes_pending_serials_to_core(factory):
    factory.ok("job", "create", "--tenant", "atelier", "--code", "J1", "--sku", "TOTE", "--quantity", 3,
               "--graph", "bag")
    serials = factory.ok("job", "start", "--tenant", "atelier", "J1")["serials"]
    with instance_for_test() as instance:
        request = outbox_relay_schedule(build_schedule_context(instance=instance))
        assert isinstance(request, RunRequest) and request.partition_key is None
        result = outbox_relay_job.execute_in_process(instance=instance, resources=resources_for(factory))
    assert result.success
    assert result.output_for_node("relay_serial_outbox")["published"] == 3
    with get_engine(factory.settings.core_url).connect() as conn:
        core = conn.execute(sa.text("SELECT serial_code FROM serial_registry ORDER BY serial_code")).scalars().all()
    assert core == sorted(serials)


def test_metrics_show_the_violations_a_materialization_found(factory):
    factory.ok("job", "create", "--tenant", "atelier", "--code", "J1", "--sku", "TOTE", "--quantity", 3,
               "--graph", "bag")
    factory.ok("job", "start", "--tenant", "atelier", "J1")
    orphan_token_fault(factory, "atelier")
    with instance_for_test() as instance:
        instance.add_dynamic_partitions("tenant", ["atelier"])
        assert materialize([integrity_findings], partition_key="atelier", instance=instance,
                           resources=resources_for(factory)).success
    text = generate_latest(metrics.registry_for(factory.settings)).decode()
    assert 'hatthasilpa_integrity_violations{check="orphan_token",severity="critical",tenant="atelier"} 3.0' in text
    assert 'hatthasilpa_integrity_violations{check="duplicate_open_session",severity="critical",tenant="atelier"} 0.0' \
        in text
    assert "token_id" not in text and "J1" not in text


def test_assets_are_split_by_cost():
    """Every 15 minutes only the checks that touch live rows; the history readers hourly."""
    from checks.model import Cadence
    from pipelines.assets import integrity_history, serial_reconciliation

    def checks_of(asset):
        return {key.name for key in asset.check_keys}

    live = checks_of(integrity_findings)
    assert live == {c.id for c in catalogue.all_checks() if c.cadence == Cadence.LIVE}
    history_readers = {"scrapped_token_resurrected", "session_without_assignment", "temp_serial_on_production_tenant"}
    assert not live & history_readers and checks_of(integrity_history) == history_readers
    assert checks_of(serial_reconciliation) == {"serial_missing_in_core", "serial_missing_in_tenant",
                                                "serial_field_mismatch", "duplicate_serial"}
    job = defs.resolve_job_def("reconciliation_job")
    assert {k.to_user_string() for k in job.asset_layer.executable_asset_keys} >= {"integrity_history",
                                                                                   "serial_reconciliation"}


def test_check_metadata_names_the_incident_and_a_muted_one_warns(factory):
    from checks import incident_actions

    factory.ok("job", "create", "--tenant", "atelier", "--code", "J1", "--sku", "TOTE", "--quantity", 2,
               "--graph", "bag")
    factory.ok("job", "start", "--tenant", "atelier", "J1")
    orphan_token_fault(factory, "atelier")
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("tenant", ["atelier"])

    def orphan_evaluation():
        result = materialize([integrity_findings], partition_key="atelier", instance=instance,
                             resources=resources_for(factory))
        assert result.success
        return {e.check_name: e for e in result.get_asset_check_evaluations()}["orphan_token"]

    first = orphan_evaluation()
    incident_id = first.metadata["incident_id"].value
    assert first.metadata["incident_state"].value == "open" and not first.passed
    assert first.severity.value == "ERROR"
    assert all("first_seen" in row for row in first.metadata["sample"].value)
    incident_actions.mute(factory.settings.monitor_url, incident_id, "somchai", "4h")
    muted = orphan_evaluation()
    assert muted.metadata["incident_id"].value == incident_id
    assert (muted.metadata["incident_state"].value, muted.severity.value, muted.passed) == ("muted", "WARN", False)


def test_nightly_audit_job_verifies_the_chain_and_the_gauge_follows(stores):
    from checks import audit_log
    from pipelines.jobs import audit_verify_job
    from pipelines.schedules import audit_verify_schedule

    url = stores.settings.monitor_url
    with get_engine(url).begin() as conn:
        audit_log.append(conn, "repair.approved", "somchai", "plan:p1", {"plan_id": "p1"})
        audit_log.append(conn, "repair.approved", "niran", "plan:p2", {"plan_id": "p2"})

    def gauge():
        text = generate_latest(metrics.registry_for(stores.settings)).decode()
        return [line for line in text.splitlines() if line.startswith("hatthasilpa_audit_chain_ok ")]

    with instance_for_test() as instance:
        assert isinstance(audit_verify_schedule(build_schedule_context(instance=instance)), RunRequest)
        result = audit_verify_job.execute_in_process(instance=instance, resources=resources_for(stores))
        assert result.success and result.output_for_node("verify_audit_log")["entries"] == 2
        assert gauge() == ["hatthasilpa_audit_chain_ok 1.0"]
        with get_engine(url).begin() as conn:  # the owner switches the triggers off and edits an entry
            if stores.is_postgres:
                conn.execute(sa.text("SET LOCAL session_replication_role = replica"))
            else:
                conn.execute(sa.text("DROP TRIGGER audit_log_no_update"))
            conn.execute(sa.text("UPDATE audit_log SET actor = 'mallory' WHERE seq = 1"))
        result = audit_verify_job.execute_in_process(instance=instance, resources=resources_for(stores),
                                                     raise_on_error=False)
        assert not result.success
    assert gauge() == ["hatthasilpa_audit_chain_ok 0.0"]


def test_retention_job_prunes_old_history_but_keeps_the_latest_result(factory, monkeypatch):
    from checks import store
    from checks.schema import check_latest, check_run, finding
    from pipelines.jobs import monitor_retention_job

    for _ in range(3):
        factory.ok("check", "run", "--tenant", "atelier", "--check", "orphan_token", "--json")
    monitor = get_engine(factory.settings.monitor_url)
    with monitor.begin() as conn:  # the first two runs are 100 days old
        *old, newest = conn.execute(sa.select(check_run.c.id).order_by(check_run.c.id)).scalars().all()
        conn.execute(check_run.update().where(check_run.c.id.in_(old)).values(
            created_at=sa.func.current_timestamp() - sa.text("INTERVAL '100 days'")
            if factory.is_postgres else sa.func.datetime("now", "-100 days")))
    before = metrics_text(factory)
    with instance_for_test() as instance:
        result = monitor_retention_job.execute_in_process(instance=instance, resources=resources_for(factory))
    assert result.success
    assert result.output_for_node("prune_monitor_history") == {"runs": 2, "findings": 2}
    with monitor.connect() as conn:
        assert conn.execute(sa.select(check_run.c.id)).scalars().all() == [newest]
        latest = conn.execute(sa.select(check_latest.c.finding_id)).scalars().all()
        assert conn.execute(sa.select(finding.c.id)).scalars().all() == latest
    assert metrics_text(factory) == before

    monkeypatch.setenv(store.RETENTION_DAYS, "soon")
    with instance_for_test() as instance:
        result = monitor_retention_job.execute_in_process(instance=instance, resources=resources_for(factory),
                                                          raise_on_error=False)
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.user_failure_data
    assert failure.metadata["code"].text == "VALIDATION_ERROR"
    with monitor.connect() as conn:
        assert conn.execute(sa.select(check_run.c.id)).scalars().all() == [newest]


def metrics_text(stores) -> bytes:
    return generate_latest(metrics.registry_for(stores.settings, sources=(metrics.check_families,)))
