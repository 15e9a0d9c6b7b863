"""Monitor assets, one partition per tenant: they run the catalogue and write the monitor store."""

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from checks import gx, metrics
from checks.runner import run_checks
from lifecycle.errors import HatthasilpaError

from .checks import GX_SPECS, INTEGRITY_CHECKS, RECONCILIATION_CHECKS, check_result, gx_check_name, specs
from .errors import as_failure
from .partitions import tenant_partitions
from .resources import CoreDatabase, MonitorStore, Pushgateway, TenantDatabases, store_settings


def findings_table(results) -> str:
    lines = ["| check | severity | count | error |", "|---|---|---|---|"]
    lines += [f"| {r.check} | {r.severity} | {r.count} | {r.error or ''} |" for r in results]
    return "\n".join(lines)


def run_catalogue(context: AssetExecutionContext, checks, core_db, tenant_dbs, monitor_store, pushgateway):
    settings = store_settings(core_db, tenant_dbs, monitor_store)
    tenant = context.partition_key

    def progress(_tenant, check_id, done, total, result):
        if result is not None:
            context.log.debug(f"{check_id}: {result.count} rows ({done}/{total})")

    try:
        report = run_checks(settings, tenants=[tenant], checks=checks, trigger="dagster", progress=progress)
    except HatthasilpaError as exc:
        raise as_failure(exc) from exc
    gateway = pushgateway.resolved_url()
    if gateway:
        try:
            metrics.push(settings, gateway, tenant)
        except OSError as exc:  # the store and /metrics still hold the results
            context.log.error(f"pushing metrics to {gateway} failed: {exc}")
    return MaterializeResult(
        metadata={"run_id": report.run_id, "violations": sum(r.count for r in report.results),
                  "errors": sum(1 for r in report.results if r.error),
                  "findings": MetadataValue.md(findings_table(report.results))},
        check_results=[check_result(r) for r in report.results])


@asset(partitions_def=tenant_partitions, check_specs=specs("integrity_findings", INTEGRITY_CHECKS),
       group_name="integrity", kinds={"sql"})
def integrity_findings(context: AssetExecutionContext, core_db: CoreDatabase, tenant_dbs: TenantDatabases,
                       monitor_store: MonitorStore, pushgateway: Pushgateway) -> MaterializeResult:
    """Findings of the tenant-database checks (tokens, instances, sessions, serial policy)."""
    return run_catalogue(context, INTEGRITY_CHECKS, core_db, tenant_dbs, monitor_store, pushgateway)


@asset(partitions_def=tenant_partitions, check_specs=specs("serial_reconciliation", RECONCILIATION_CHECKS),
       group_name="integrity", kinds={"sql"})
def serial_reconciliation(context: AssetExecutionContext, core_db: CoreDatabase, tenant_dbs: TenantDatabases,
                          monitor_store: MonitorStore, pushgateway: Pushgateway) -> MaterializeResult:
    """The tenant serial registry reconciled against the core registry, in bounded batches."""
    return run_catalogue(context, RECONCILIATION_CHECKS, core_db, tenant_dbs, monitor_store, pushgateway)


@asset(partitions_def=tenant_partitions, check_specs=GX_SPECS, group_name="integrity", kinds={"sql"})
def gx_validation(context: AssetExecutionContext, core_db: CoreDatabase, tenant_dbs: TenantDatabases,
                  monitor_store: MonitorStore) -> MaterializeResult:
    """Great Expectations suites of every tenant table, with Data Docs under var/gx."""
    settings = store_settings(core_db, tenant_dbs, monitor_store)
    try:
        report, site = gx.validate(settings, [context.partition_key])
    except HatthasilpaError as exc:
        raise as_failure(exc) from exc
    return MaterializeResult(
        metadata={"run_id": report.run_id, "violations": sum(r.count for r in report.results),
                  "errors": sum(1 for r in report.results if r.error),
                  "data_docs": MetadataValue.path(str((site / "index.html").resolve())),
                  "findings": MetadataValue.md(findings_table(report.results))},
        check_results=[check_result(r, gx_check_name(r.check.removeprefix(gx.GX_PREFIX))) for r in report.results])


MONITOR_ASSETS = [integrity_findings, serial_reconciliation, gx_validation]
