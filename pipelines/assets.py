"""Monitor assets, one partition per tenant: they run the catalogue and write the monitor store.

Split by cost (``docs/operations.md``): ``integrity_findings`` every 15 minutes (the checks
that touch only live rows), ``integrity_history`` and ``serial_reconciliation`` hourly (the
history readers, and the tenant/core comparisons), ``gx_validation`` nightly.
"""

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from checks import gx, metrics, store
from checks.report import findings_table
from checks.runner import run_checks
from lifecycle.errors import HatthasilpaError
from reconcile.metrics import SOURCES

from .checks import GX_SPECS, HISTORY_CHECKS, LIVE_CHECKS, RECONCILIATION_CHECKS, check_result, gx_check_name, specs
from .errors import as_failure
from .partitions import FULL_RECONCILE_TAG, tenant_partitions
from .resources import CoreDatabase, MonitorStore, Pushgateway, TenantDatabases, store_settings


def failing_table(failing: dict[str, list[str]]) -> str:
    """Every tenant's failing checks of this asset at their latest runs, as markdown: the asset
    overview shows the latest materialization, and this table keeps every tenant in it."""
    lines = ["| tenant | failing checks | which |", "|---|---|---|"]
    lines += [f"| {tenant} | {len(checks)} | {', '.join(checks) or '—'} |" for tenant, checks in failing.items()]
    return "\n".join(lines)


def _materialization(context: AssetExecutionContext, report, pushgateway: Pushgateway, settings,
                     check_names=None, **metadata) -> MaterializeResult:
    gateway = pushgateway.resolved_url()
    if gateway:
        for failure in metrics.push(settings, gateway, [context.partition_key], SOURCES):
            context.log.error(f"pushing metrics to {gateway} failed: {failure}")  # the store still holds them
    rows = [r.to_dict() for r in report.results]
    failing = store.failing_checks(settings.monitor_url, sorted({r.check for r in report.results}))
    return MaterializeResult(
        metadata={"run_id": report.run_id, "violations": sum(r.count for r in report.results),
                  "errors": sum(1 for r in report.results if r.error),
                  "failing_checks": len(failing.get(context.partition_key, [])),
                  "failing_checks_by_tenant": MetadataValue.md(failing_table(failing)),
                  "findings": MetadataValue.md(findings_table(rows, markdown=True)), **metadata},
        check_results=[check_result(r, check_names(r) if check_names else None) for r in report.results])


def run_catalogue(context: AssetExecutionContext, checks, core_db, tenant_dbs, monitor_store, pushgateway):
    settings = store_settings(core_db, tenant_dbs, monitor_store, read_only=True)

    def progress(_tenant, check_id, done, total, result):
        if result is not None:
            context.log.debug(f"{check_id}: {result.count} rows ({done}/{total})")

    try:
        report = run_checks(settings, tenants=[context.partition_key], checks=checks, trigger="dagster",
                            progress=progress, full_reconcile=context.run.tags.get(FULL_RECONCILE_TAG) == "true")
    except HatthasilpaError as exc:
        raise as_failure(exc) from exc
    return _materialization(context, report, pushgateway, settings)


@asset(partitions_def=tenant_partitions, check_specs=specs("integrity_findings", LIVE_CHECKS),
       group_name="integrity", kinds={"sql"})
def integrity_findings(context: AssetExecutionContext, core_db: CoreDatabase, tenant_dbs: TenantDatabases,
                       monitor_store: MonitorStore, pushgateway: Pushgateway) -> MaterializeResult:
    """Findings of the checks that touch only live rows (every 15 minutes)."""
    return run_catalogue(context, LIVE_CHECKS, core_db, tenant_dbs, monitor_store, pushgateway)


@asset(partitions_def=tenant_partitions, check_specs=specs("integrity_history", HISTORY_CHECKS),
       group_name="integrity", kinds={"sql"})
def integrity_history(context: AssetExecutionContext, core_db: CoreDatabase, tenant_dbs: TenantDatabases,
                      monitor_store: MonitorStore, pushgateway: Pushgateway) -> MaterializeResult:
    """Findings of the tenant checks that read history: lineage, closed sessions, the registry (hourly)."""
    return run_catalogue(context, HISTORY_CHECKS, core_db, tenant_dbs, monitor_store, pushgateway)


@asset(partitions_def=tenant_partitions, check_specs=specs("serial_reconciliation", RECONCILIATION_CHECKS),
       group_name="integrity", kinds={"sql"})
def serial_reconciliation(context: AssetExecutionContext, core_db: CoreDatabase, tenant_dbs: TenantDatabases,
                          monitor_store: MonitorStore, pushgateway: Pushgateway) -> MaterializeResult:
    """The tenant serial registry reconciled against the core registry (hourly)."""
    return run_catalogue(context, RECONCILIATION_CHECKS, core_db, tenant_dbs, monitor_store, pushgateway)


@asset(partitions_def=tenant_partitions, check_specs=GX_SPECS, group_name="integrity", kinds={"sql"})
def gx_validation(context: AssetExecutionContext, core_db: CoreDatabase, tenant_dbs: TenantDatabases,
                  monitor_store: MonitorStore, pushgateway: Pushgateway) -> MaterializeResult:
    """Great Expectations suites of every tenant table, with Data Docs under var/gx (nightly)."""
    settings = store_settings(core_db, tenant_dbs, monitor_store, read_only=True)
    try:
        report, site = gx.validate(settings, [context.partition_key])
    except HatthasilpaError as exc:
        raise as_failure(exc) from exc
    return _materialization(context, report, pushgateway, settings,
                            check_names=lambda r: gx_check_name(r.check.removeprefix(gx.GX_PREFIX)),
                            data_docs=MetadataValue.path(str((site / "index.html").resolve())))


MONITOR_ASSETS = [integrity_findings, integrity_history, serial_reconciliation, gx_validation]
