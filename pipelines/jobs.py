"""Jobs: one per monitor asset; partitioned by tenant, like the assets they select."""

from dagster import AssetSelection, define_asset_job

integrity_job = define_asset_job(
    "integrity_job", selection=AssetSelection.assets("integrity_findings"),
    description="Run the tenant-database checks of the catalogue for one tenant.")

reconciliation_job = define_asset_job(
    "reconciliation_job", selection=AssetSelection.assets("serial_reconciliation"),
    description="Reconcile one tenant's serials with the core registry.")

MONITOR_JOBS = [integrity_job, reconciliation_job]
