"""Repair plans and their approvals, in the monitor store.

``plan`` is read-only on the tenant and core databases: it re-runs the checks (every
offending row, up to a row cap per check — not the monitor's bounded sample) in
read-only transactions and stores, for one tenant, the rows with their action and the
state they were found in. A plan never changes after it is stored; its hash is the
sha256 of its canonical JSON (tenant and rows), recomputed from the stored rows
whenever it is approved or applied, so an edited plan no longer matches its approval.

Four eyes: a plan records who made it (``planned_by``, stored as ``created_by``), and
``approve`` refuses an approval by that same name (``SELF_APPROVAL``) before writing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import uuid

import sqlalchemy as sa

from checks import Target, audit_log, catalogue, offending_rows, read_only, tenant_params
from checks.schema import incident
from checks.store import ensure_migrated, require_migrated
from lifecycle import registry
from lifecycle.db import Settings, get_engine
from lifecycle.errors import NotFound, ValidationError
from lifecycle.uow import as_utc, iso, utcnow

from . import audit
from .errors import PlanHashMismatch, PlanStale, PlanTenantMismatch, SelfApproval
from .schema import repair_approval, repair_audit, repair_plan, repair_plan_incident
from .repairs import APPLY_ORDER, REPAIRS, guidance_for

DEFAULT_ROW_CAP = 1000
DEFAULT_MAX_AGE = dt.timedelta(hours=24)
MAX_AGE_SETTING = "HATTHASILPA_REPAIR_PLAN_MAX_AGE_HOURS"
READ_TIMEOUT_SECONDS = 300.0


def max_plan_age(environ: dict | None = None) -> dt.timedelta:
    env = os.environ if environ is None else environ
    raw = env.get(MAX_AGE_SETTING)
    if not raw:
        return DEFAULT_MAX_AGE
    try:
        hours = float(raw)
    except ValueError:
        raise ValidationError(f"{MAX_AGE_SETTING} must be a number of hours, got {raw!r}") from None
    if hours <= 0:
        raise ValidationError(f"{MAX_AGE_SETTING} must be positive, got {raw!r}")
    return dt.timedelta(hours=hours)


def plan_hash(tenant_code: str, rows: list[dict]) -> str:
    canonical = json.dumps({"tenant": tenant_code, "rows": rows}, sort_keys=True, separators=(",", ":"),
                           ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def plan(settings: Settings, tenant_code: str, check_ids: list[str] | None = None, *,
         row_cap: int = DEFAULT_ROW_CAP, actor: str = "cli", now: dt.datetime | None = None) -> dict:
    """Turn the tenant's current findings into a stored plan made by ``actor``; writes only to the monitor store."""
    if not 0 < row_cap <= 100_000:
        raise ValidationError("the row cap must be between 1 and 100000")
    actor = _name(actor, "a planner name (1-64 characters) is required", "pass --by NAME or set HATTHASILPA_ACTOR")
    selected = catalogue.select(check_ids)
    checks = sorted(selected, key=lambda c: APPLY_ORDER.index(c.id) if c.id in APPLY_ORDER else len(APPLY_ORDER))
    code = registry.get_tenant(settings, tenant_code)["tenant_code"]
    rows, guidance, capped = [], [], []
    tenant_engine, core_engine = get_engine(settings.tenant_url(code)), get_engine(settings.core_url)
    with tenant_engine.connect() as tconn, core_engine.connect() as cconn, \
            read_only(tconn, READ_TIMEOUT_SECONDS), read_only(cconn, READ_TIMEOUT_SECONDS):
        target = Target(code, tconn, cconn, tenant_params(cconn, code, now))
        for check in checks:
            found = offending_rows(check, target, limit=row_cap + 1)
            if len(found) > row_cap:
                capped.append(check.id)
                found = found[:row_cap]
            for finding in found:
                key = {k: finding[k] for k in check.keys}
                advice = guidance_for(check.id, finding)
                if advice is not None:
                    guidance.append({"check": check.id, "key": key, "reason": finding.get("reason"),
                                     "guidance": advice})
                    continue
                repair = REPAIRS[check.id]
                rows.append({"seq": len(rows) + 1, "check": check.id, "key": key, "action": repair.action,
                             "expected": {"finding": finding, "row": repair.target(tconn, key, False)}})
    plan_id = uuid.uuid4().hex
    digest = plan_hash(code, rows)
    ensure_migrated(settings.monitor_url)
    with get_engine(settings.monitor_url).begin() as conn:
        conn.execute(repair_plan.insert().values(
            id=plan_id, tenant_code=code, checks=[c.id for c in selected], rows=rows, guidance=guidance,
            hash=digest, row_cap=row_cap, created_by=actor, created_at=now or utcnow()))
        linked = _link_incidents(conn, plan_id, code, {r["check"] for r in rows} | {g["check"] for g in guidance},
                                 now or utcnow())
    return {"plan_id": plan_id, "tenant": code, "hash": digest, "planned_by": actor, "checks": [c.id for c in selected],
            "rows": rows, "guidance": guidance, "capped_checks": capped, "row_cap": row_cap, "incidents": linked}


def _link_incidents(conn: sa.Connection, plan_id: str, code: str, check_ids: set[str], now) -> list[int]:
    """Link the plan to the unresolved incidents its rows belong to (the same transaction as the plan)."""
    if not check_ids:
        return []
    ids = list(conn.execute(sa.select(incident.c.id).where(
        incident.c.tenant_code == code, incident.c.check_id.in_(sorted(check_ids)),
        incident.c.resolved_at.is_(None)).order_by(incident.c.id)).scalars())
    if ids:
        conn.execute(repair_plan_incident.insert(), [{"plan_id": plan_id, "incident_id": i, "created_at": now}
                                                     for i in ids])
    return ids


def incidents_of(conn: sa.Connection, plan_id: str) -> list[dict]:
    return [{"id": r.id, "check": r.check_id, "state": r.state, "resolved_by_plan": r.resolved_by_plan}
            for r in conn.execute(sa.select(incident).join(repair_plan_incident,
                                                           repair_plan_incident.c.incident_id == incident.c.id)
                                  .where(repair_plan_incident.c.plan_id == plan_id).order_by(incident.c.id))]


def plans_of(settings: Settings, incident_id: int) -> list[dict]:
    """The repair plans whose rows belong to an incident (``incident show`` lists them)."""
    with get_engine(settings.monitor_url).connect() as conn:
        return [{"plan_id": r.id, "created_at": iso(r.created_at), "created_by": r.created_by}
                for r in conn.execute(sa.select(repair_plan).join(
                    repair_plan_incident, repair_plan_incident.c.plan_id == repair_plan.c.id)
                    .where(repair_plan_incident.c.incident_id == incident_id).order_by(repair_plan.c.created_at))]


def _name(value, message: str, hint: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value.strip()) > 64 or not value.isprintable():
        raise ValidationError(message, hint=hint)
    return value.strip()


def same_person(a: str, b: str) -> bool:
    return a.strip().casefold() == b.strip().casefold()


def load(settings: Settings, plan_id: str) -> dict:
    """The stored plan with its hash recomputed from its rows (``hash``) beside the stored one."""
    if not isinstance(plan_id, str) or not plan_id:
        raise ValidationError("a plan id is required")
    require_migrated(settings.monitor_url)
    with get_engine(settings.monitor_url).connect() as conn:
        row = conn.execute(sa.select(repair_plan).where(repair_plan.c.id == plan_id)).first()
    if row is None:
        raise NotFound(f"repair plan {plan_id} not found", hint="make one: hatthasilpa repair plan --tenant T")
    body = dict(row._mapping)
    body["stored_hash"] = body["hash"]
    body["hash"] = plan_hash(body["tenant_code"], body["rows"])
    return body


def check_tenant(stored: dict, tenant_code: str | None) -> None:
    if tenant_code is not None and tenant_code.lower() != stored["tenant_code"].lower():
        raise PlanTenantMismatch(
            f"repair plan {stored['id']} belongs to tenant {stored['tenant_code']}, not {tenant_code}",
            hint="a plan touches the one tenant it was made for; make a plan for this tenant")


def approve(settings: Settings, plan_id: str, by: str, plan_hash_seen: str | None = None,
            now: dt.datetime | None = None, tenant_code: str | None = None) -> dict:
    """Record who approved the plan's current hash (and refuse a hash the approver did not see, or an
    approval by the plan's own planner)."""
    by = _name(by, "an approver name (1-64 printable characters) is required", "pass --by NAME")
    stored = load(settings, plan_id)
    check_tenant(stored, tenant_code)
    if same_person(by, stored["created_by"]):
        raise SelfApproval(f"{by} made repair plan {plan_id}: a plan is approved by someone else",
                           hint="ask a second engineer to review the plan and approve it with their own name")
    if plan_hash_seen is not None and plan_hash_seen != stored["hash"]:
        raise PlanHashMismatch(f"the hash given ({plan_hash_seen[:12]}…) is not the hash of plan {plan_id} "
                               f"({stored['hash'][:12]}…)", hint="review the plan again: hatthasilpa repair show PLAN")
    at = now or utcnow()
    with get_engine(settings.monitor_url).begin() as conn:
        conn.execute(repair_approval.insert().values(plan_id=plan_id, plan_hash=stored["hash"], approved_by=by,
                                                     approved_at=at, created_at=at))
        audit_log.append(conn, "repair.approved", by, f"plan:{plan_id}",
                         {"plan_id": plan_id, "tenant": stored["tenant_code"], "hash": stored["hash"]}, at)
    return {"plan_id": plan_id, "tenant": stored["tenant_code"], "hash": stored["hash"], "approved_by": by,
            "approved_at": iso(at)}


def approvals(settings: Settings, plan_id: str) -> list[dict]:
    with get_engine(settings.monitor_url).connect() as conn:
        return [{"approved_by": r.approved_by, "hash": r.plan_hash, "approved_at": iso(r.approved_at)}
                for r in conn.execute(sa.select(repair_approval).where(repair_approval.c.plan_id == plan_id)
                                      .order_by(repair_approval.c.id))]


def approval_of_current_hash(settings: Settings, stored: dict) -> dict | None:
    matching = [a for a in approvals(settings, stored["id"]) if a["hash"] == stored["hash"]]
    return matching[-1] if matching else None


def check_fresh(stored: dict, now: dt.datetime, max_age: dt.timedelta) -> None:
    age = now - as_utc(stored["created_at"])
    if age > max_age:
        raise PlanStale(f"repair plan {stored['id']} is {age.total_seconds() / 3600:.1f} h old, over the "
                        f"limit of {max_age.total_seconds() / 3600:.1f} h",
                        hint=f"the floor has moved on: make a new plan (hatthasilpa repair plan --tenant "
                             f"{stored['tenant_code']})")


def show(settings: Settings, plan_id: str) -> dict:
    stored = load(settings, plan_id)
    trail = audit.trail(settings, stored["tenant_code"], plan_id)
    return {"plan_id": plan_id, "tenant": stored["tenant_code"], "hash": stored["hash"],
            "hash_intact": stored["hash"] == stored["stored_hash"], "created_at": iso(stored["created_at"]),
            "created_by": stored["created_by"], "planned_by": stored["created_by"], "checks": stored["checks"], "row_cap": stored["row_cap"],
            "rows": stored["rows"], "guidance": stored["guidance"], "approvals": approvals(settings, plan_id),
            "audit": trail, "incidents": _plan_incidents(settings, plan_id)}


def _plan_incidents(settings: Settings, plan_id: str) -> list[dict]:
    with get_engine(settings.monitor_url).connect() as conn:
        return incidents_of(conn, plan_id)


# The states a plan is shown in (``tenant_plans``): what an engineer does next depends on it.
PENDING, APPROVED, APPLIED, STALE = "pending", "approved", "applied", "stale"


def tenant_plans(settings: Settings, tenant_code: str, limit: int = 20, now: dt.datetime | None = None,
             max_age: dt.timedelta | None = None) -> list[dict]:
    """The tenant's latest plans, newest first: id, hash, planner, rows by action, approvers and state —
    ``applied`` when every row has an outcome in the monitor's audit copy, else ``stale`` past the
    age limit, else ``approved`` when an approval names its current hash, else ``pending``."""
    require_migrated(settings.monitor_url)
    now, max_age = now or utcnow(), max_plan_age() if max_age is None else max_age
    with get_engine(settings.monitor_url).connect() as conn:
        stored = conn.execute(sa.select(repair_plan).where(sa.func.lower(repair_plan.c.tenant_code) ==
                                                           tenant_code.lower())
                              .order_by(repair_plan.c.created_at.desc(), repair_plan.c.id).limit(limit)).all()
        ids = [r.id for r in stored]
        approved = conn.execute(sa.select(repair_approval.c.plan_id, repair_approval.c.plan_hash,
                                          repair_approval.c.approved_by)
                                .where(repair_approval.c.plan_id.in_(ids)).order_by(repair_approval.c.id)).all()
        outcomes = dict(conn.execute(sa.select(repair_audit.c.plan_id, sa.func.count())
                                     .where(repair_audit.c.plan_id.in_(ids)).group_by(repair_audit.c.plan_id)).all())
    result = []
    for r in stored:
        digest = plan_hash(r.tenant_code, r.rows)
        approvers = [a.approved_by for a in approved if a.plan_id == r.id and a.plan_hash == digest]
        by_action: dict[str, int] = {}
        for row in r.rows:
            by_action[row["action"]] = by_action.get(row["action"], 0) + 1
        if r.rows and outcomes.get(r.id, 0) >= len(r.rows):
            state = APPLIED
        elif now - as_utc(r.created_at) > max_age:
            state = STALE
        else:
            state = APPROVED if approvers else PENDING
        result.append({"plan_id": r.id, "tenant": r.tenant_code, "hash": digest, "planned_by": r.created_by,
                       "created_at": iso(r.created_at), "rows": len(r.rows), "rows_by_action": by_action,
                       "approved_by": approvers, "state": state})
    return result
