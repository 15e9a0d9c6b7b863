"""Guarded repair jobs (``docs/runbook.md``): build a plan, then apply an approved plan from the Launchpad.

``repair_plan_job`` (one run per tenant partition) plans the checks whose latest
findings are not zero and shows the plan as run metadata: a markdown table of rows and
actions, and the hash to approve. ``repair_job`` takes the plan id and the approval in
run config — ``approved_by`` and the ``plan_hash`` the approver reviewed — and is a dry
run unless ``execute`` is true. Refusals become a ``Failure`` whose description starts
with the product's code (APPROVAL_REQUIRED, PLAN_HASH_MISMATCH, PLAN_STALE,
PLAN_TENANT_MISMATCH); nothing is written then.
"""

from typing import List, Optional

from dagster import Config, MetadataValue, OpExecutionContext, Output, job, op

import reconcile
from checks.store import latest_results
from lifecycle.errors import HatthasilpaError
from reconcile import plans
from reconcile.errors import ApprovalRequired, PlanHashMismatch
from reconcile.report import rows_table

from .errors import as_failure
from .partitions import TENANT_TAG, tenant_partitions
from .resources import CoreDatabase, MonitorStore, TenantDatabases, store_settings


class RepairPlanConfig(Config):
    checks: Optional[List[str]] = None  # default: checks whose latest findings are not zero (else all)
    row_cap: int = 1000


@op(description="Plan repairs for the partition's tenant from its latest findings (read-only).")
def repair_plan(context: OpExecutionContext, config: RepairPlanConfig, core_db: CoreDatabase,
                tenant_dbs: TenantDatabases, monitor_store: MonitorStore) -> Output:
    settings = store_settings(core_db, tenant_dbs, monitor_store)
    tenant = context.partition_key
    checks = config.checks or [r["check_id"] for r in latest_results(settings.monitor_url, tenant)
                               if r["count"] and not r["error"]]
    try:
        planned = reconcile.plan(settings, tenant, checks or None, row_cap=config.row_cap, actor="dagster")
    except HatthasilpaError as exc:
        raise as_failure(exc) from exc
    guidance = "\n".join(f"- {g['check']} {g['key']}: {g['guidance']}" for g in planned["guidance"]) or "none"
    return Output(planned["plan_id"], metadata={
        "plan_id": planned["plan_id"], "tenant": tenant, "hash": planned["hash"], "rows": len(planned["rows"]),
        "plan": MetadataValue.md(rows_table(planned["rows"], markdown=True) if planned["rows"] else "no rows to repair"),
        "guidance": MetadataValue.md(guidance),
        "next": f"review, then launch repair_job with plan_id, approved_by and plan_hash={planned['hash']}"})


class RepairRunConfig(Config):
    plan_id: str
    approved_by: str = ""  # with plan_hash: records this approval before applying
    plan_hash: str = ""  # the hash the approver reviewed; must be the plan's
    execute: bool = False  # false: a dry run that writes nothing
    max_rows: Optional[int] = None
    tenant: Optional[str] = None  # when given (or tagged hatthasilpa/tenant), must be the plan's tenant


@op(description="Apply an approved repair plan: dry run unless execute; refuses without an approval of its hash.")
def apply_repair_plan(context: OpExecutionContext, config: RepairRunConfig, core_db: CoreDatabase,
                      tenant_dbs: TenantDatabases, monitor_store: MonitorStore) -> Output:
    settings = store_settings(core_db, tenant_dbs, monitor_store)
    tenant = config.tenant or context.run.tags.get(TENANT_TAG)
    try:
        if config.approved_by:
            if not config.plan_hash:
                raise ApprovalRequired("an approval names the hash it approves: plan_hash is empty",
                                       hint="copy the hash from the repair_plan_job run or `repair show`")
            reconcile.approve(settings, config.plan_id, by=config.approved_by, plan_hash_seen=config.plan_hash,
                              tenant_code=tenant)
        elif config.plan_hash:
            if plans.load(settings, config.plan_id)["hash"] != config.plan_hash:
                raise PlanHashMismatch(f"plan_hash is not the hash of plan {config.plan_id}",
                                       hint="review the plan again: hatthasilpa repair show PLAN")
        report = reconcile.apply(settings, config.plan_id, execute=config.execute, max_rows=config.max_rows,
                                 tenant_code=tenant, actor=config.approved_by or "dagster")
    except HatthasilpaError as exc:
        raise as_failure(exc) from exc
    counts = {k: report.get(k, 0) for k in ("applied", "skipped", "would_apply", "would_skip", "already_done",
                                            "remaining")}
    return Output(report["plan_id"], metadata={
        "plan_id": report["plan_id"], "tenant": report["tenant"], "hash": report["hash"],
        "execute": report["execute"], "approved_by": report["approved_by"], **counts,
        "rows": MetadataValue.md(rows_table(report["rows"], outcome=True, markdown=True)),
        "recheck": MetadataValue.json(report.get("recheck", {}))})


@job(partitions_def=tenant_partitions, tags={"hatthasilpa/kind": "repair"},
     description="Build a repair plan for one tenant from its latest findings; approve its hash, then run repair_job.")
def repair_plan_job():
    repair_plan()


@job(tags={"hatthasilpa/kind": "repair"},
     description="Apply an approved repair plan (Launchpad: plan_id, approved_by, plan_hash, execute, max_rows).")
def repair_job():
    apply_repair_plan()


REPAIR_JOBS = [repair_plan_job, repair_job]
