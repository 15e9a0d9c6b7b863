"""Run the whole monitoring plan once, in process, through Dagster (used by ``make demo``).

Every monitor asset is materialized for every tenant partition on an ephemeral
instance, exactly as the schedules would run them, and the asset check results are
returned for printing.
"""

from __future__ import annotations

from dagster import DagsterInstance, materialize

from checks.report import findings_table
from lifecycle import registry
from lifecycle.db import Settings

from .assets import MONITOR_ASSETS
from .partitions import TENANT_PARTITIONS_NAME
from .resources import resources_for


QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def run_monitoring_plan(settings: Settings, progress=None) -> list[dict]:
    resources = resources_for(settings)
    tenants = [t["tenant_code"] for t in registry.list_tenants(settings)]
    rows: list[dict] = []
    with DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions(TENANT_PARTITIONS_NAME, tenants)
        for tenant in tenants:
            if progress:
                progress(f"monitor: materializing {len(MONITOR_ASSETS)} assets for tenant {tenant}")
            result = materialize(MONITOR_ASSETS, partition_key=tenant, instance=instance, resources=resources,
                                 run_config=QUIET)
            for evaluation in result.get_asset_check_evaluations():
                meta = evaluation.metadata
                rows.append({"tenant": tenant, "asset": evaluation.asset_key.to_user_string(),
                             "check": evaluation.check_name, "severity": meta["severity"].value,
                             "count": meta["count"].value if "count" in meta else None, "passed": evaluation.passed,
                             "error": meta["error"].value if "error" in meta else None})
    return sorted(rows, key=lambda r: (r["tenant"], r["asset"], r["check"]))


def render(rows: list[dict]) -> str:
    failing = sum(1 for r in rows if not r["passed"])
    return (findings_table(rows) +
            f"\n\n{len(rows)} checks run through Dagster, {failing} reporting violations or errors")
