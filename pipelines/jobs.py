"""Jobs: one per schedule of the monitor assets (partitioned by tenant, like the assets they select),
the outbox relay, the nightly audit-log verification and the retention of the monitor store's history."""

import datetime as dt

from dagster import AssetSelection, OpExecutionContext, Output, define_asset_job, job, op

from checks import audit_log, store
from lifecycle import outbox
from lifecycle.errors import HatthasilpaError
from lifecycle.uow import utcnow

from .errors import as_failure
from .resources import CoreDatabase, MonitorStore, TenantDatabases, store_settings

integrity_job = define_asset_job(
    "integrity_job", selection=AssetSelection.assets("integrity_findings"),
    description="Run the checks that touch only live rows for one tenant (every 15 minutes).")

reconciliation_job = define_asset_job(
    "reconciliation_job", selection=AssetSelection.assets("integrity_history", "serial_reconciliation"),
    description="Run the history checks and reconcile the serials with the core registry for one tenant (hourly).")

gx_job = define_asset_job(
    "gx_job", selection=AssetSelection.assets("gx_validation"),
    description="Validate one tenant's tables with the Great Expectations suites.")


volume_job = define_asset_job(
    "volume_job", selection=AssetSelection.assets("lifecycle_volumes", "volume_baselines"),
    description="Count one tenant's last complete hour, judge it against its baseline, refresh the baselines (hourly).")


@op(description="Publish every tenant's pending serial outbox events to the core registry.")
def relay_serial_outbox(context: OpExecutionContext, core_db: CoreDatabase, tenant_dbs: TenantDatabases,
                        monitor_store: MonitorStore):
    summary = outbox.relay(store_settings(core_db, tenant_dbs, monitor_store), None, progress=context.log.info)
    yield Output(summary, metadata={"published": summary["published"], "failed": summary["failed"],
                                    "parked": summary["parked"], "seconds": summary["seconds"]})


@job(description="Relay the serial outbox of every tenant to core (several relays may run at once).")
def outbox_relay_job():
    relay_serial_outbox()


@op(description="Walk the audit log's hash chain; the result feeds hatthasilpa_audit_chain_ok.")
def verify_audit_log(context: OpExecutionContext, core_db: CoreDatabase, tenant_dbs: TenantDatabases,
                     monitor_store: MonitorStore):
    settings = store_settings(core_db, tenant_dbs, monitor_store)
    try:
        result = audit_log.verify(settings.monitor_url)  # recorded either way: the gauge follows it
    except HatthasilpaError as exc:
        raise as_failure(exc) from exc
    yield Output(result, metadata={"entries": result["entries"], "verified_at": result["verified_at"]})


@job(description="Verify the audit log's hash chain (nightly); a broken chain fails the run and the gauge says 0.")
def audit_verify_job():
    verify_audit_log()


@op(description="Delete check runs and findings older than the retention period "
                "(HATTHASILPA_MONITOR_RETENTION_DAYS, default 90), never the latest result of a (tenant, check).")
def prune_monitor_history(context: OpExecutionContext, core_db: CoreDatabase, tenant_dbs: TenantDatabases,
                          monitor_store: MonitorStore):
    try:
        days = monitor_store.resolved_retention_days()
    except HatthasilpaError as exc:
        raise as_failure(exc) from exc
    cutoff = utcnow() - dt.timedelta(days=days)
    deleted = store.prune(store_settings(core_db, tenant_dbs, monitor_store).monitor_url, cutoff)
    context.log.info(f"pruned {deleted['runs']} check runs and {deleted['findings']} findings before {cutoff}")
    yield Output(deleted, metadata={"retention_days": days, "cutoff": cutoff.isoformat(), **deleted})


@job(description="Prune the monitor store's check history past the retention period (daily).")
def monitor_retention_job():
    prune_monitor_history()


MONITOR_JOBS = [integrity_job, reconciliation_job, gx_job, outbox_relay_job, audit_verify_job, monitor_retention_job,
               volume_job]
