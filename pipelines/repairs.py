"""Guarded repair jobs (``docs/runbook.md``): build a plan, then apply an approved plan from the Launchpad.

``repair_plans`` (an asset, one partition per tenant) lists the tenant's latest plans —
id, hash, planner, rows by action, state (pending, approved, applied, stale) — with the
exact Launchpad config of ``repair_job`` for each plan still to apply, so an engineer
copies nothing from a terminal. ``repair_plan_job`` (one run per tenant partition) plans the checks whose latest
findings are not zero, recording who planned it (``planned_by`` in run config, else
``HATTHASILPA_ACTOR``, else ``dagster``), and shows the plan as run metadata: a markdown
table of rows and actions, and the hash to approve. ``repair_job`` takes the plan id and the approval in
run config — ``approved_by`` and the ``plan_hash`` the approver reviewed — and is a dry
run unless ``execute`` is true. Refusals become a ``Failure`` whose description starts
with the product's code (APPROVAL_REQUIRED, PLAN_HASH_MISMATCH, PLAN_STALE,
PLAN_TENANT_MISMATCH, SELF_APPROVAL when the planner approves their own plan); nothing is
written then.
"""

from typing import List, Optional

import yaml
from dagster import (AssetExecutionContext, Config, EnvVar, MaterializeResult, MetadataValue, OpExecutionContext,
                     Output, asset, job, op)

import reconcile
from checks.store import latest_results
from lifecycle.db import ACTOR
from lifecycle.errors import HatthasilpaError
from reconcile import plans
from reconcile.errors import ApprovalRequired, PlanHashMismatch
from reconcile.report import rows_table

from .errors import as_failure
from .partitions import TENANT_TAG, tenant_partitions
from .resources import CoreDatabase, MonitorStore, TenantDatabases, store_settings


def launchpad_config(plan: dict, execute: bool) -> str:
    """The run config of ``repair_job`` for a plan, as the Launchpad takes it (YAML). A pending plan
    leaves ``approved_by`` for the approver to fill in; an approved one needs no new approval."""
    config = {"plan_id": plan["plan_id"], "plan_hash": plan["hash"], "execute": execute,
              "tenant": plan["tenant"]}
    if plan["state"] == plans.PENDING:
        config["approved_by"] = ""
    return yaml.safe_dump({"ops": {"apply_repair_plan": {"config": config}}}, sort_keys=False)


def plans_markdown(listed: list[dict]) -> str:
    if not listed:
        return "no repair plans for this tenant"
    lines = ["| plan | state | planned by | rows by action | approved by | hash | created |",
             "|---|---|---|---|---|---|---|"]
    for p in listed:
        actions = ", ".join(f"{a} {n}" for a, n in sorted(p["rows_by_action"].items())) or "none"
        lines.append(f"| `{p['plan_id']}` | {p['state']} | {p['planned_by']} | {actions} | "
                     f"{', '.join(p['approved_by']) or '—'} | `{p['hash'][:16]}…` | {p['created_at']} |")
    return "\n".join(lines)


def launchpad_markdown(listed: list[dict]) -> str:
    """For each plan still to apply, the repair_job config to paste into the Launchpad."""
    parts = []
    for p in listed:
        if p["state"] == plans.PENDING:
            parts.append(f"### `{p['plan_id']}` (pending): a second engineer approves it — fill in "
                         f"`approved_by` with your own name (not {p['planned_by']}); this run is a dry run\n\n"
                         f"```yaml\n{launchpad_config(p, execute=False)}```")
        elif p["state"] == plans.APPROVED:
            parts.append(f"### `{p['plan_id']}` (approved by {', '.join(p['approved_by'])}): dry run, then "
                         f"execute\n\n```yaml\n{launchpad_config(p, execute=False)}```\n\n"
                         f"```yaml\n{launchpad_config(p, execute=True)}```")
    return "\n\n".join(parts) or "no plan waits for approval or apply"


@asset(partitions_def=tenant_partitions, group_name="repairs", kinds={"sql"})
def repair_plans(context: AssetExecutionContext, core_db: CoreDatabase, tenant_dbs: TenantDatabases,
                 monitor_store: MonitorStore) -> MaterializeResult:
    """The tenant's latest repair plans with their state, and the Launchpad config of repair_job for each."""
    settings = store_settings(core_db, tenant_dbs, monitor_store)
    try:
        listed = plans.tenant_plans(settings, context.partition_key)
    except HatthasilpaError as exc:
        raise as_failure(exc) from exc
    counts = {state: sum(1 for p in listed if p["state"] == state)
              for state in (plans.PENDING, plans.APPROVED, plans.APPLIED, plans.STALE)}
    return MaterializeResult(metadata={
        **counts, "plans": MetadataValue.md(plans_markdown(listed)),
        "launchpad": MetadataValue.md(launchpad_markdown(listed)),
        "listed": MetadataValue.json(listed)})


class RepairPlanConfig(Config):
    checks: Optional[List[str]] = None  # default: checks whose latest findings are not zero (else all)
    row_cap: int = 1000
    planned_by: str = ""  # who makes the plan (default HATTHASILPA_ACTOR, else "dagster"); they may not approve it


@op(description="Plan repairs for the partition's tenant from its latest findings (read-only).")
def repair_plan(context: OpExecutionContext, config: RepairPlanConfig, core_db: CoreDatabase,
                tenant_dbs: TenantDatabases, monitor_store: MonitorStore) -> Output:
    settings = store_settings(core_db, tenant_dbs, monitor_store)
    tenant = context.partition_key
    checks = config.checks or [r["check_id"] for r in latest_results(settings.monitor_url, tenant)
                               if r["count"] and not r["error"]]
    try:
        planned = reconcile.plan(settings, tenant, checks or None, row_cap=config.row_cap,
                                 actor=config.planned_by or EnvVar(ACTOR).get_value(None) or "dagster")
    except HatthasilpaError as exc:
        raise as_failure(exc) from exc
    guidance = "\n".join(f"- {g['check']} {g['key']}: {g['guidance']}" for g in planned["guidance"]) or "none"
    return Output(planned["plan_id"], metadata={
        "plan_id": planned["plan_id"], "tenant": tenant, "hash": planned["hash"], "planned_by": planned["planned_by"],
        "rows": len(planned["rows"]),
        "plan": MetadataValue.md(rows_table(planned["rows"], markdown=True) if planned["rows"] else "no rows to repair"),
        "guidance": MetadataValue.md(guidance),
        "next": f"another engineer reviews it, then launches repair_job with plan_id, approved_by (not "
                f"{planned['planned_by']}) and plan_hash={planned['hash']}",
        "launchpad": MetadataValue.md(launchpad_markdown([{**planned, "state": plans.PENDING,
                                                           "approved_by": []}]))})


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
REPAIR_ASSETS = [repair_plans]
