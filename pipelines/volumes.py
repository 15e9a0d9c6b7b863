"""The lifecycle's hourly pulse in Dagster: ``lifecycle_volumes`` and ``volume_baselines``, per tenant.

``lifecycle_volumes`` counts every hour the monitor store lacks up to the last complete hour
(a first run backfills ``backfill_weeks`` of history from the tenant DB), then judges the
last complete hour of each kind against its seasonal baseline: one WARN asset check per kind
(``volume_<kind>``), failing when the robust z-score reaches the threshold, with the
expected range, the observed value and the slot in its metadata. ``volume_baselines``
stores every slot's baseline for the bands of the CLI and the dashboard.
"""


import datetime as dt
from typing import Optional

from dagster import (AssetCheckResult, AssetCheckSeverity, AssetCheckSpec, AssetExecutionContext, AssetKey, Config,
                     MaterializeResult, MetadataValue, asset)

from checks import baselines, volumes
from checks.baselines import INSUFFICIENT
from lifecycle.errors import HatthasilpaError, ValidationError

from .errors import as_failure
from .partitions import tenant_partitions
from .resources import CoreDatabase, MonitorStore, TenantDatabases, VolumeBaselineSettings, store_settings


class VolumeConfig(Config):
    backfill_weeks: int = volumes.DEFAULT_BACKFILL_WEEKS  # history a first run counts from the tenant DB
    until: Optional[str] = None  # the last hour to count and judge, ISO 8601; default the last complete hour

    def last_hour(self) -> dt.datetime:
        if not self.until:
            return volumes.last_complete_hour()
        try:
            return volumes.hour_start(dt.datetime.fromisoformat(self.until))
        except ValueError:
            raise ValidationError(f"until must be an ISO 8601 time, not {self.until!r}",
                                  hint="e.g. 2026-11-02T09:00:00+00:00") from None


def check_name(kind: str) -> str:
    return f"volume_{kind}"


VOLUME_SPECS = [AssetCheckSpec(name=check_name(k.id), asset=AssetKey("lifecycle_volumes"),
                               description=f"[warning] {k.description}: anomaly against its hour-of-week baseline")
                for k in volumes.KINDS]


def volume_check(kind: str, verdict: baselines.Verdict | None) -> AssetCheckResult:
    if verdict is None:
        return AssetCheckResult(check_name=check_name(kind), passed=True, severity=AssetCheckSeverity.WARN,
                                metadata={"status": MetadataValue.text("no value for the hour")})
    metadata = {"status": MetadataValue.text(verdict.status), "hour": MetadataValue.text(verdict.hour.isoformat()),
                "slot": MetadataValue.int(verdict.slot), "observed": MetadataValue.float(verdict.value),
                "weeks_of_history": MetadataValue.int(verdict.weeks), "threshold": MetadataValue.float(verdict.threshold),
                "month_end": MetadataValue.bool(verdict.month_end)}
    if verdict.status != INSUFFICIENT:
        metadata.update({"expected": MetadataValue.float(round(verdict.expected, 3)),
                         "expected_low": MetadataValue.float(round(verdict.low, 3)),
                         "expected_high": MetadataValue.float(round(verdict.high, 3)),
                         "score": MetadataValue.float(round(verdict.score, 3))})
    return AssetCheckResult(check_name=check_name(kind), passed=verdict.status != baselines.ANOMALY,
                            severity=AssetCheckSeverity.WARN, metadata=metadata)


@asset(partitions_def=tenant_partitions, check_specs=VOLUME_SPECS, group_name="volumes", kinds={"sql", "pandas"})
def lifecycle_volumes(context: AssetExecutionContext, config: VolumeConfig, core_db: CoreDatabase,
                      tenant_dbs: TenantDatabases, monitor_store: MonitorStore,
                      volume_settings: VolumeBaselineSettings) -> MaterializeResult:
    """What the tenant did in each hour (jobs started, tokens spawned, sessions, serials, relay …),
    counted from indexed timestamps, and the last complete hour judged against its baseline (hourly)."""
    settings = store_settings(core_db, tenant_dbs, monitor_store, read_only=True)
    tenant = context.partition_key
    try:
        options = volume_settings.options()
        hour = config.last_hour()
        counted = volumes.collect(settings, tenant, now=hour + volumes.HOUR, backfill_weeks=config.backfill_weeks,
                                  progress=context.log.info)
        verdicts = volumes.judge_hour(settings, tenant, hour, options)
    except HatthasilpaError as exc:
        raise as_failure(exc) from exc
    metadata = {"hour": MetadataValue.text(hour.isoformat()), "hours_counted": MetadataValue.int(counted["hours"])}
    for kind, v in verdicts.items():  # numbers, so the UI plots each tenant's series
        metadata[kind] = MetadataValue.float(v.value)
        if v.score is not None:
            metadata[f"{kind}_score"] = MetadataValue.float(round(v.score, 3))
    return MaterializeResult(metadata=metadata,
                             check_results=[volume_check(k.id, verdicts.get(k.id)) for k in volumes.KINDS])


@asset(partitions_def=tenant_partitions, deps=[lifecycle_volumes], group_name="volumes", kinds={"pandas"})
def volume_baselines(context: AssetExecutionContext, core_db: CoreDatabase, tenant_dbs: TenantDatabases,
                     monitor_store: MonitorStore, volume_settings: VolumeBaselineSettings) -> MaterializeResult:
    """Each kind's median and MAD per hour-of-week slot over the last weeks, and its month-end factor."""
    settings = store_settings(core_db, tenant_dbs, monitor_store, read_only=True)
    try:
        summary = volumes.refresh_baselines(settings, context.partition_key, volumes.last_complete_hour(),
                                            volume_settings.options())
    except HatthasilpaError as exc:
        raise as_failure(exc) from exc
    rows = "\n".join(f"| {kind} | {s['slots']} | {s['slots_ready']} | {s['month_end_factor']:.2f} |"
                     for kind, s in summary.items())
    return MaterializeResult(metadata={
        "slots_ready": MetadataValue.int(sum(s["slots_ready"] for s in summary.values())),
        "baselines": MetadataValue.md("| kind | slots | slots with enough history | month-end factor |\n"
                                      "|---|---|---|---|\n" + rows)})


VOLUME_ASSETS = [lifecycle_volumes, volume_baselines]
