"""Check runs and their findings in the monitor store (tables in ``checks.schema``).

A run is one ``check_run`` row and one ``finding`` row per (tenant, check) with the
count, the bounded sample, severity, timing and error; the same transaction opens,
updates or resolves each pair's incident (``checks.incidents``), so a run is never
recorded without it, whichever path records it, and updates ``check_latest``, one row
per (tenant, check): its last finding, its last finding without error and its error
counter, so readers of the current state (the exporter, the repair planner, the
reports) read one row per pair whatever the length of the history. ``latest_results``
answers the repair planner and the readable reports from the ``latest_finding`` view
(the findings ``check_latest`` points at). ``prune`` deletes the history older than the
retention period, never a finding ``check_latest`` points at nor a run an unresolved
incident names.

Writers bring the monitor store to head on first use (``ensure_migrated``); readers
never migrate, they refuse a store that is not at head (``require_migrated``).
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from lifecycle import migrate
from lifecycle.db import dialect_insert, get_engine
from lifecycle.errors import NotFound, ValidationError
from lifecycle.uow import iso, utcnow

from . import incidents
from .schema import MONITOR, check_latest, check_run, finding, incident

PRUNE_BATCH = 1000  # check runs deleted per transaction
RETENTION_DAYS = "HATTHASILPA_MONITOR_RETENTION_DAYS"  # the setting: days of history the monitor keeps
DEFAULT_RETENTION_DAYS = 90


def retention_days(value: str | int | None) -> int:
    """The retention setting as a number of days (default 90); VALIDATION_ERROR unless a whole number >= 1."""
    if value is None or value == "":
        return DEFAULT_RETENTION_DAYS
    try:
        days = int(value)
    except (TypeError, ValueError):
        days = 0
    if days < 1:
        raise ValidationError(f"{RETENTION_DAYS} must be a whole number of days >= 1, not {value!r}",
                              hint=f"unset it for the default of {DEFAULT_RETENTION_DAYS} days")
    return days


latest_finding = sa.table("latest_finding", *(sa.column(c.name) for c in finding.columns))


def ensure_migrated(monitor_url: str) -> None:
    """The monitor store is the monitor's own: a writer brings it to head on first use."""
    if not migrate.is_current(monitor_url, MONITOR):
        migrate.upgrade(monitor_url, MONITOR)


def require_migrated(monitor_url: str) -> None:
    """A reader's guard: NOT_FOUND (with the fix) when the monitor store is not at head."""
    current, head = migrate.current_revision(monitor_url), migrate.head_revision(MONITOR)
    if current != head:
        raise NotFound(f"the monitor store is at revision {current or 'none'}, not {head}",
                       hint="run `hatthasilpa db upgrade`, or any `check run`, which migrates it")


def record_run(monitor_url: str, report, trigger: str = "cli", selection: dict | None = None,
               plan_id: str | None = None) -> int:
    """Write a finished run, its incident updates and its findings in one transaction; return the run id.

    ``plan_id`` names the repair whose re-check this run is (an incident it resolves says so)."""
    ensure_migrated(monitor_url)
    with get_engine(monitor_url).begin() as conn:
        run_id = conn.execute(check_run.insert().values(
            started_at=report.started_at, finished_at=report.finished_at, trigger=trigger, status="finished",
            selection=selection, violation_count=sum(r.count for r in report.results),
            error_count=sum(1 for r in report.results if r.error), created_at=utcnow(),
        ).returning(check_run.c.id)).scalar_one()
        incidents.record(conn, run_id, report.results, utcnow(), plan_id=plan_id)
        for r in report.results:
            finding_id = conn.execute(finding.insert().values(
                run_id=run_id, tenant_code=r.tenant, check_id=r.check, family=r.family, severity=r.severity,
                count=r.count, sample=r.sample, started_at=r.started_at, finished_at=r.finished_at,
                duration_seconds=r.duration_seconds, error=r.error, created_at=utcnow(),
            ).returning(finding.c.id)).scalar_one()
            _keep_latest(conn, r, finding_id)
    return run_id


def _keep_latest(conn: sa.Connection, result, finding_id: int) -> None:
    """Upsert the pair's ``check_latest`` row: the newest finding wins (a slower concurrent run
    never moves it back); a run without error also moves the last success; an error counts."""
    ok = result.error is None
    row = {"tenant_code": result.tenant, "check_id": result.check, "severity": result.severity,
           "finding_id": finding_id, "finished_at": result.finished_at,
           "duration_seconds": result.duration_seconds, "error": result.error,
           "success_finding_id": finding_id if ok else None, "success_count": result.count if ok else None,
           "success_at": result.finished_at if ok else None, "error_count": 0 if ok else 1,
           "updated_at": utcnow()}
    insert = dialect_insert(conn, check_latest)
    new, old = insert.excluded, check_latest.c
    newer = new.finding_id > old.finding_id
    newer_success = sa.and_(new.success_finding_id.is_not(None),
                            sa.or_(old.success_finding_id.is_(None), new.success_finding_id > old.success_finding_id))
    update = {name: sa.case((newer, new[name]), else_=old[name])
              for name in ("severity", "finding_id", "finished_at", "duration_seconds", "error")}
    update.update({name: sa.case((newer_success, new[name]), else_=old[name])
                   for name in ("success_finding_id", "success_count", "success_at")})
    update["error_count"] = old.error_count + new.error_count
    update["updated_at"] = new.updated_at
    conn.execute(insert.values(row).on_conflict_do_update(index_elements=["tenant_code", "check_id"], set_=update))


def prune(monitor_url: str, older_than: dt.datetime, batch: int = PRUNE_BATCH) -> dict:
    """Delete check runs created before ``older_than`` with their findings, in bounded batches,
    keeping every finding ``check_latest`` points at (and the run that holds it) and every run an
    unresolved incident names. Returns ``{"runs": n, "findings": m}`` deleted."""
    ensure_migrated(monitor_url)
    kept = sa.union(sa.select(check_latest.c.finding_id),
                    sa.select(check_latest.c.success_finding_id).where(check_latest.c.success_finding_id.is_not(None)))
    unresolved = incident.c.resolved_at.is_(None)
    named = sa.union(sa.select(incident.c.opened_run_id).where(unresolved),
                     sa.select(incident.c.last_run_id).where(unresolved))
    deleted = {"runs": 0, "findings": 0}
    after = 0
    engine = get_engine(monitor_url)
    while True:
        with engine.begin() as conn:
            run_ids = conn.execute(
                sa.select(check_run.c.id).where(check_run.c.created_at < older_than, check_run.c.id > after,
                                                check_run.c.id.not_in(named))
                .order_by(check_run.c.id).limit(batch)).scalars().all()
            if not run_ids:
                return deleted
            after = run_ids[-1]
            deleted["findings"] += conn.execute(finding.delete().where(
                finding.c.run_id.in_(run_ids), finding.c.id.not_in(kept))).rowcount
            holding = sa.select(finding.c.id).where(finding.c.run_id == check_run.c.id)
            deleted["runs"] += conn.execute(check_run.delete().where(
                check_run.c.id.in_(run_ids), ~sa.exists(holding))).rowcount


def _finding_dict(row) -> dict:
    body = dict(row._mapping)
    for name in ("started_at", "finished_at", "created_at"):
        body[name] = iso(body[name])
    return body


def latest_results(monitor_url: str, tenant: str | None = None) -> list[dict]:
    """The last finding of every (tenant, check), optionally for one tenant."""
    query = sa.select(latest_finding).order_by(latest_finding.c.tenant_code, latest_finding.c.check_id)
    if tenant is not None:
        query = query.where(latest_finding.c.tenant_code == tenant)
    with get_engine(monitor_url).connect() as conn:
        return [_finding_dict(r) for r in conn.execute(query)]


def failing_checks(monitor_url: str, check_ids: list[str]) -> dict[str, list[str]]:
    """Every tenant that ran any of ``check_ids``, with those of them failing at their latest run
    (rows found, or an error); one ``check_latest`` row per pair is read."""
    failing = sa.or_(check_latest.c.error.is_not(None), check_latest.c.success_count > 0)
    query = (sa.select(check_latest.c.tenant_code, check_latest.c.check_id, failing.label("failing"))
             .where(check_latest.c.check_id.in_(check_ids))
             .order_by(check_latest.c.tenant_code, check_latest.c.check_id))
    by_tenant: dict[str, list[str]] = {}
    with get_engine(monitor_url).connect() as conn:
        for tenant, check, is_failing in conn.execute(query):
            by_tenant.setdefault(tenant, [])
            if is_failing:
                by_tenant[tenant].append(check)
    return by_tenant


def run_findings(monitor_url: str, run_id: int) -> list[dict]:
    with get_engine(monitor_url).connect() as conn:
        return [_finding_dict(r) for r in conn.execute(
            sa.select(finding).where(finding.c.run_id == run_id).order_by(finding.c.id))]
