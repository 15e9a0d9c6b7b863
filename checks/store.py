"""Check runs and their findings in the monitor store (tables in ``checks.schema``).

A run is one ``check_run`` row and one ``finding`` row per (tenant, check) with the
count, the bounded sample, severity, timing and error; the same transaction opens,
updates or resolves each pair's incident (``checks.incidents``), so a run is never
recorded without it, whichever path records it. ``latest_results`` answers the
repair planner and the readable reports: the last finding of every (tenant, check),
from the ``latest_finding`` view.

Writers bring the monitor store to head on first use (``ensure_migrated``); readers
never migrate, they refuse a store that is not at head (``require_migrated``).
"""

from __future__ import annotations

import sqlalchemy as sa

from lifecycle import migrate
from lifecycle.db import get_engine
from lifecycle.errors import NotFound
from lifecycle.uow import iso, utcnow

from . import incidents
from .schema import MONITOR, check_run, finding

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
        if report.results:
            conn.execute(finding.insert(), [
                {"run_id": run_id, "tenant_code": r.tenant, "check_id": r.check, "family": r.family,
                 "severity": r.severity, "count": r.count, "sample": r.sample, "started_at": r.started_at,
                 "finished_at": r.finished_at, "duration_seconds": r.duration_seconds, "error": r.error,
                 "created_at": utcnow()} for r in report.results])
    return run_id


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


def run_findings(monitor_url: str, run_id: int) -> list[dict]:
    with get_engine(monitor_url).connect() as conn:
        return [_finding_dict(r) for r in conn.execute(
            sa.select(finding).where(finding.c.run_id == run_id).order_by(finding.c.id))]
