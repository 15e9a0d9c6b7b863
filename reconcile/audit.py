"""The repair audit: before/after of every applied or skipped plan row.

The authoritative row is written in the tenant database, in the same transaction as
the change it records (``record``); the unique (plan, row) index there gives each
plan row one outcome, whoever applies it. ``sync`` then copies a tenant's rows to the
monitor store's ``repair_audit`` (idempotent: keyed by tenant and tenant row id), where
``repair show`` and the metrics read them, and appends each new copy to the monitor's
hash-chained audit log (``checks.audit_log``) in the same transaction.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa

from checks import audit_log
from lifecycle.db import Settings, get_engine
from lifecycle.schema import tenant_repair_audit

from .schema import repair_audit
from lifecycle.uow import iso, utcnow

log = logging.getLogger(__name__)

APPLIED, SKIPPED = "applied", "skipped"


def record(conn: sa.Connection, plan_id: str, row: dict, outcome: str, before: dict | None, after: dict | None,
           reason: str | None, actor: str, now) -> None:
    conn.execute(tenant_repair_audit.insert().values(
        plan_id=plan_id, row_seq=row["seq"], check_id=row["check"], action=row["action"], outcome=outcome,
        row_key=row["key"], before=before, after=after, reason=reason, actor=actor, created_at=now))


def outcomes(conn: sa.Connection, plan_id: str) -> dict[int, str]:
    """{row seq: outcome} of the plan's rows that already have one."""
    return dict(conn.execute(sa.select(tenant_repair_audit.c.row_seq, tenant_repair_audit.c.outcome)
                             .where(tenant_repair_audit.c.plan_id == plan_id)).all())


def outcome_of(conn: sa.Connection, plan_id: str, seq: int) -> str | None:
    return conn.execute(sa.select(tenant_repair_audit.c.outcome).where(
        tenant_repair_audit.c.plan_id == plan_id, tenant_repair_audit.c.row_seq == seq)).scalar()


def sync(settings: Settings, tenant_code: str, plan_id: str | None = None) -> int:
    """Copy the tenant's audit rows (of one plan, or all) to the monitor store; return how many were new."""
    query = sa.select(tenant_repair_audit).order_by(tenant_repair_audit.c.id)
    if plan_id is not None:
        query = query.where(tenant_repair_audit.c.plan_id == plan_id)
    with get_engine(settings.tenant_url(tenant_code)).connect() as conn:
        rows = [r._asdict() for r in conn.execute(query)]
    if not rows:
        return 0
    now = utcnow()
    copies = [{"tenant_code": tenant_code, "tenant_audit_id": r["id"], "plan_id": r["plan_id"],
               "row_seq": r["row_seq"], "check_id": r["check_id"], "action": r["action"], "outcome": r["outcome"],
               "row_key": r["row_key"], "before": r["before"], "after": r["after"], "reason": r["reason"],
               "actor": r["actor"], "applied_at": r["created_at"], "created_at": now} for r in rows]
    with get_engine(settings.monitor_url).begin() as conn:
        audit_log.lock_chain(conn)  # concurrent syncs of one tenant copy (and chain) each row once
        have = set(conn.execute(sa.select(repair_audit.c.tenant_audit_id).where(
            repair_audit.c.tenant_code == tenant_code,
            repair_audit.c.tenant_audit_id.between(copies[0]["tenant_audit_id"], copies[-1]["tenant_audit_id"]))
        ).scalars())
        new = [c for c in copies if c["tenant_audit_id"] not in have]
        if new:
            conn.execute(repair_audit.insert(), new)
        for c in new:
            audit_log.append(conn, f"repair.{c['outcome']}", c["actor"], f"plan:{c['plan_id']}",
                             {"tenant": tenant_code, "tenant_audit_id": c["tenant_audit_id"], "plan_id": c["plan_id"],
                              "seq": c["row_seq"], "check": c["check_id"], "action": c["action"],
                              "key": c["row_key"], "before": c["before"], "after": c["after"], "reason": c["reason"],
                              "applied_at": iso(c["applied_at"])}, now)
        return len(new)


def trail(settings: Settings, tenant_code: str, plan_id: str) -> list[dict]:
    """The plan's audit rows from the monitor store, after copying any the tenant holds that it lacks."""
    try:
        sync(settings, tenant_code, plan_id)
    except sa.exc.DBAPIError as exc:  # the tenant may be unreachable: show what the monitor has
        log.warning("repair audit of tenant %s not synced: %s", tenant_code, exc.orig)
    with get_engine(settings.monitor_url).connect() as conn:
        return [{"seq": r.row_seq, "check": r.check_id, "action": r.action, "outcome": r.outcome, "key": r.row_key,
                 "before": r.before, "after": r.after, "reason": r.reason, "actor": r.actor,
                 "at": iso(r.applied_at)}
                for r in conn.execute(sa.select(repair_audit).where(repair_audit.c.plan_id == plan_id)
                                      .order_by(repair_audit.c.row_seq))]
