"""Applying an approved plan: refuse first, then re-verify each row under its lock.

Before anything is read from the tenant, ``apply`` refuses a plan of another tenant
(PLAN_TENANT_MISMATCH), a plan whose current hash nobody approved (APPROVAL_REQUIRED)
and a plan older than the limit (PLAN_STALE). Then, for the plan's rows that have no
outcome yet (up to ``max_rows``), in a transaction per batch of ``batch_size`` rows:

1. lock the row's target (``SELECT … FOR UPDATE``; SQLite's ``BEGIN IMMEDIATE`` holds
   the write lock already) and look in the tenant's audit for an outcome someone else
   recorded meanwhile — then the row is left alone;
2. re-run the check's finding predicate for that one row on the same connection;
3. a row that no longer qualifies, or whose finding or target changed since the plan,
   is skipped (recorded, not overwritten); the others get their action;
4. write the row's before/after to the tenant's ``repair_audit`` — same transaction.

A dry run (the default) does steps 1–3 in a transaction that is rolled back and
writes nothing anywhere. After an executed run the audit is copied to the monitor
store, the outbox relay delivers any serial changes to core, and the plan's checks
are re-run and recorded.

Invariant: a repair applies only approved rows that still qualify, each audited in its own
transaction. Guarded by tests/integration/test_repairs.py, tests/e2e/test_repair_cli.py,
tests/e2e/test_fault_points.py.
"""

from __future__ import annotations

import datetime as dt
import logging

import sqlalchemy as sa

from checks import Target, catalogue, row_predicate, run_checks, tenant_params
from lifecycle import outbox, registry
from lifecycle.db import Settings, get_engine
from lifecycle.errors import ValidationError
from lifecycle.faults import fault_point
from lifecycle.uow import TenantInfo, UnitOfWork, utcnow

from . import audit, plans
from .errors import ApprovalRequired
from .repairs import REPAIRS, RowContext

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 100
MAX_BATCH_RETRIES = 3


def apply(settings: Settings, plan_id: str, *, execute: bool = False, max_rows: int | None = None,
          tenant_code: str | None = None, actor: str = "cli", batch_size: int = DEFAULT_BATCH_SIZE,
          max_age: dt.timedelta | None = None, now: dt.datetime | None = None, recheck: bool = True) -> dict:
    if max_rows is not None and max_rows < 1:
        raise ValidationError("--max-rows must be at least 1")
    if not 1 <= batch_size <= 10_000:
        raise ValidationError("the batch size must be between 1 and 10000")
    stored = plans.load(settings, plan_id)
    plans.check_tenant(stored, tenant_code)
    approval = plans.approval_of_current_hash(settings, stored)
    if approval is None:
        raise ApprovalRequired(f"repair plan {plan_id} has no approval of its hash {stored['hash'][:12]}…",
                               hint=f"review it (hatthasilpa repair show {plan_id}) and approve it: "
                                    f"hatthasilpa repair approve {plan_id} --by NAME")
    plans.check_fresh(stored, now or utcnow(), plans.max_plan_age() if max_age is None else max_age)
    code = stored["tenant_code"]
    info = registry.tenant_info(settings, code)
    tenant_engine, core_engine = get_engine(settings.tenant_url(code)), get_engine(settings.core_url)

    with tenant_engine.connect() as conn:
        done = audit.outcomes(conn, plan_id)
    pending = [r for r in stored["rows"] if r["seq"] not in done]
    selected = pending if max_rows is None else pending[:max_rows]
    results: list[dict] = []
    for start in range(0, len(selected), batch_size):
        batch = selected[start:start + batch_size]
        results += _run_batch(tenant_engine, core_engine, info, plan_id, batch, execute, actor)

    report = {"plan_id": plan_id, "tenant": code, "hash": stored["hash"], "execute": execute,
              "approved_by": approval["approved_by"], "planned_rows": len(stored["rows"]),
              "already_done": len(done), "remaining": len(pending) - len(selected),
              "applied": sum(1 for r in results if r["outcome"] == audit.APPLIED),
              "skipped": sum(1 for r in results if r["outcome"] == audit.SKIPPED),
              "done_by_another_run": sum(1 for r in results if r["outcome"] == "done_elsewhere"),
              "rows": results}
    if not execute:
        report.update(would_apply=sum(1 for r in results if r["outcome"] == "would_apply"),
                      would_skip=sum(1 for r in results if r["outcome"] == "would_skip"))
        return report
    fault_point("repair.after_tenant_commit")
    audit.sync(settings, code, plan_id)
    if report["applied"]:
        report["relay"] = _relay(settings, code)
    if recheck and stored["checks"]:
        rerun = run_checks(settings, tenants=[code], check_ids=stored["checks"], trigger="repair",
                           plan_id=plan_id)
        report["recheck"] = {"run_id": rerun.run_id,
                             "counts": {r.check: r.count for r in rerun.results},
                             "errors": {r.check: r.error for r in rerun.results if r.error}}
    return report


def _run_batch(tenant_engine, core_engine, info: TenantInfo, plan_id: str, batch: list[dict], execute: bool,
               actor: str) -> list[dict]:
    """One transaction for the batch (rolled back on a dry run); retried when another run
    recorded one of its rows first (the unique audit index refuses the second outcome)."""
    attempt = 1
    while True:
        try:
            with UnitOfWork(tenant_engine, tenant=info) as uow, \
                    core_engine.connect().execution_options(sqlite_begin="DEFERRED") as core:
                with core.begin():
                    target = Target(info.code, uow.conn, core, tenant_params(core, info.code, uow.now()))
                    ctx = RowContext(uow, core, actor)
                    results = [_one_row(ctx, target, plan_id, row, execute) for row in batch]
                if execute:
                    uow.commit()
                return results
        except sa.exc.IntegrityError:
            if attempt == MAX_BATCH_RETRIES:
                raise
            log.warning("plan %s: another run recorded a row of this batch first; retrying (%d)", plan_id, attempt)
            attempt += 1


def _one_row(ctx: RowContext, target: Target, plan_id: str, row: dict, execute: bool) -> dict:
    conn, key = ctx.uow.conn, row["key"]
    repair, check = REPAIRS[row["check"]], catalogue.get(row["check"])
    result = {"seq": row["seq"], "check": row["check"], "key": key, "action": row["action"]}
    state = repair.target(conn, key, True)  # the lock comes first: every later read is under it
    if audit.outcome_of(conn, plan_id, row["seq"]) is not None:
        return {**result, "outcome": "done_elsewhere", "reason": "another run recorded this row meanwhile"}
    finding = row_predicate(check, target, key)
    before = {"row": state, "finding": finding}
    reason = None
    if state is None:
        reason = "the row no longer exists"
    elif finding is None:
        reason = "no longer qualifies: the check does not find it any more"
    elif finding != row["expected"]["finding"] or state != row["expected"]["row"]:
        reason = "changed since the plan: not overwritten"
    if reason is not None:
        if execute:
            audit.record(conn, plan_id, row, audit.SKIPPED, before, None, reason, ctx.actor, ctx.uow.now())
        return {**result, "outcome": audit.SKIPPED if execute else "would_skip", "reason": reason}
    if not execute:
        return {**result, "outcome": "would_apply", "reason": finding.get("reason")}
    changed = repair.act(ctx, key, finding)
    after = {"row": repair.target(conn, key, False), "changed": changed}
    audit.record(conn, plan_id, row, audit.APPLIED, before, after, finding.get("reason"), ctx.actor, ctx.uow.now())
    fault_point("repair.mid_batch")
    return {**result, "outcome": audit.APPLIED, "reason": finding.get("reason"), "changed": changed}


def _relay(settings: Settings, code: str) -> dict:
    """Deliver the serial events the repair wrote (republished or voided serials) to core now;
    a failure leaves them in the outbox for the next relay, which the report says."""
    try:
        result = outbox.relay(settings, [code])
        return {"ok": True, "published": result.get("published")}
    except Exception as exc:  # the repair is committed; the outbox keeps the events
        log.warning("relay after repair of tenant %s failed: %s", code, exc)
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
