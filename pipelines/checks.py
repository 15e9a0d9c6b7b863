"""Asset checks generated from the check catalogue: one spec per check id, on the asset of its cadence.

Nothing check-specific lives here: the catalogue says which checks exist, their
severity, description and cadence; this module only maps them onto Dagster.
"""

from __future__ import annotations

from dagster import AssetCheckResult, AssetCheckSeverity, AssetCheckSpec, AssetKey, MetadataValue

from checks import catalogue, gx
from checks.incidents import IncidentState
from checks.model import Cadence, Check, Scope, Severity

# Split by cost: every 15 minutes the checks that touch only live rows; hourly the history
# readers of the tenant DB and, beside them, the tenant/core reconciliation.
LIVE_CHECKS: list[Check] = [c for c in catalogue.all_checks() if c.cadence == Cadence.LIVE]
HISTORY_CHECKS: list[Check] = [c for c in catalogue.all_checks()
                               if c.cadence == Cadence.HOURLY and c.scope == Scope.TENANT]
RECONCILIATION_CHECKS: list[Check] = [c for c in catalogue.all_checks()
                                      if c.cadence == Cadence.HOURLY and c.scope == Scope.TENANT_CORE]

DAGSTER_SEVERITY = {
    Severity.CRITICAL.value: AssetCheckSeverity.ERROR,
    Severity.ERROR.value: AssetCheckSeverity.ERROR,
    Severity.WARNING.value: AssetCheckSeverity.WARN,
}


def gx_check_name(table: str) -> str:
    """The asset check of a Great Expectations suite (Dagster names allow no dot)."""
    return f"gx_{table}"


GX_SPECS = [AssetCheckSpec(name=gx_check_name(table), asset=AssetKey("gx_validation"),
                           description=f"[{gx.SEVERITY}] Great Expectations suite of {table}")
            for table in gx.SUITES]


def specs(asset: str, checks: list[Check]) -> list[AssetCheckSpec]:
    return [AssetCheckSpec(name=c.id, asset=AssetKey(asset),
                           description=f"[{c.severity.value}] {c.description}") for c in checks]


def check_result(result, check_name: str | None = None) -> AssetCheckResult:
    """A catalogue ``CheckResult`` as a Dagster check result (count, sample and incident as metadata).

    A finding whose incident is muted stays a failed check, shown as a warning: muted, not hidden."""
    incident = result.incident or {}
    severity = DAGSTER_SEVERITY[result.severity]
    if incident.get("state") == IncidentState.MUTED.value:
        severity = AssetCheckSeverity.WARN
    metadata = {
        "severity": MetadataValue.text(result.severity),
        "family": MetadataValue.text(result.family),
        "duration_seconds": MetadataValue.float(float(result.duration_seconds)),
        "sample": MetadataValue.json(result.sample),
    }
    if incident:
        metadata["incident_id"] = MetadataValue.int(incident["id"])
        metadata["incident_state"] = MetadataValue.text(incident["state"])
        metadata["incident"] = MetadataValue.text(f"hatthasilpa incident show {incident['id']}")
    if result.error:  # a check that failed (or ran out of time) counted nothing: no "count" at all
        metadata["error"] = MetadataValue.text(result.error)
    else:
        metadata["count"] = MetadataValue.int(result.count)
    return AssetCheckResult(check_name=check_name or result.check, passed=result.error is None and result.count == 0,
                            severity=severity, metadata=metadata)
