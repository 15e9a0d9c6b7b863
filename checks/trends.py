"""Trends: a tenant's volumes against their bands, and its findings and incidents week by week.

``volume_trend`` reads the stored series of a tenant (``lifecycle_volume``) and judges each
shown hour against its seasonal baseline (``checks.baselines``), so the CLI, the demo and
the PNG show the value with its expected band.

``findings_trend`` reads two tables of the monitor store, each in SQL:

- the check history (``finding``): the daily peak count of each (tenant, check), one row
  per check and day;
- the incidents (``incident``, one row per incident with ``opened_at``, ``resolved_at`` and
  ``resolve_seconds``): the weekly summary — incidents new in the week, resolved in it, and
  still open at its end — one row per week; per (tenant, check) the incidents of the window,
  those resolved and their mean and longest time to resolve, one row per pair; and the
  incidents themselves with their time to resolve (the newest ``INCIDENT_LIMIT``).

The weekly numbers are what the dashboard's weekly panel shows from the incident counters
(``checks.incident_metrics``): both count incidents, not runs.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import sqlalchemy as sa

from lifecycle.db import Settings, get_engine, is_postgres
from lifecycle.schema import Timestamp
from lifecycle.uow import as_utc, utcnow

from . import baselines, volumes
from .schema import finding, incident
from .store import require_migrated


def volume_trend(settings: Settings, tenant: str, kinds: list[str], options: baselines.Options,
                 hours: int = 24, until: dt.datetime | None = None) -> dict:
    """The last ``hours`` stored hours of each kind up to ``until`` (default the last complete hour),
    each judged against its baseline."""
    require_migrated(settings.monitor_url)
    until = volumes.hour_start(until) if until else volumes.last_complete_hour()
    first = until - volumes.HOUR * (hours - 1)
    since = first.replace(hour=0) - dt.timedelta(weeks=options.weeks)
    points: dict[str, list] = {kind: [] for kind in kinds}
    with get_engine(settings.monitor_url).connect() as monitor:
        for row in volumes.series(monitor, tenant, since, until, kinds):
            points[row.kind].append((as_utc(row.hour), row.value))
    series = {}
    for kind in kinds:
        values = baselines.to_series(points[kind])
        scored = baselines.score_series(values, options, kind, since=pd.Timestamp(first)) if not values.empty \
            else None
        rows = []
        if scored is not None:
            threshold = options.threshold_for(kind)
            for hour, r in scored.iterrows():
                ready = not pd.isna(r["score"])
                rows.append({"hour": hour.isoformat(), "value": float(r["value"]),
                             "expected": float(r["expected"]) if ready else None,
                             "low": max(float(r["expected"] - threshold * r["scale"]), 0.0) if ready else None,
                             "high": float(r["expected"] + threshold * r["scale"]) if ready else None,
                             "score": round(float(r["score"]), 3) if ready else None,
                             "status": (baselines.ANOMALY if abs(r["score"]) >= threshold else baselines.OK)
                             if ready else baselines.INSUFFICIENT})
        series[kind] = rows
    return {"tenant": tenant, "weeks": options.weeks, "threshold": options.threshold, "until": until.isoformat(),
            "series": series}


def _day(conn: sa.Connection, column):
    return sa.func.date_trunc("day", column) if is_postgres(conn) else sa.func.date(column)


INCIDENT_LIMIT = 500  # incidents listed one by one (the newest); the weekly and per-pair sums count them all


def findings_trend(settings: Settings, tenant: str | None = None, weeks: int = 8,
                   now: dt.datetime | None = None) -> dict:
    """Daily peak counts per check (from the findings) and, from the incidents, the weekly
    summary, each (tenant, check)'s incidents and times to resolve, and the incidents one by one."""
    require_migrated(settings.monitor_url)
    now = as_utc(now) if now else utcnow()
    since = now - dt.timedelta(weeks=weeks)
    where = [finding.c.finished_at >= since, finding.c.error.is_(None)]
    if tenant is not None:
        where.append(finding.c.tenant_code == tenant)
    # an incident belongs to the window when it was open at some moment of it
    in_window = [incident.c.opened_at < now, sa.or_(incident.c.resolved_at.is_(None), incident.c.resolved_at >= since)]
    if tenant is not None:
        in_window.append(incident.c.tenant_code == tenant)
    bounds = week_bounds(since, now)
    with get_engine(settings.monitor_url).connect() as conn:
        day = _day(conn, finding.c.finished_at).label("day")
        daily = conn.execute(sa.select(finding.c.tenant_code, finding.c.check_id, day,
                                       sa.func.max(finding.c.count).label("count"))
                             .where(*where).group_by(finding.c.tenant_code, finding.c.check_id, day)
                             .order_by(finding.c.tenant_code, finding.c.check_id, day)).all()
        weekly = conn.execute(_weekly_query(bounds, in_window)).all()
        pairs = conn.execute(_pairs_query(in_window, now)).all()
        listed = conn.execute(sa.select(incident.c.id, incident.c.tenant_code, incident.c.check_id,
                                        incident.c.severity, incident.c.state, incident.c.opened_at,
                                        incident.c.resolved_at, incident.c.resolve_seconds)
                              .where(*in_window).order_by(incident.c.opened_at.desc(), incident.c.id.desc())
                              .limit(INCIDENT_LIMIT)).all()
    return {"since": since.isoformat(), "until": now.isoformat(), "weeks": weeks,
            "daily": [{"tenant": r.tenant_code, "check": r.check_id, "day": str(r.day)[:10], "count": int(r.count)}
                      for r in daily],
            "weekly": [{"week_start": start.isoformat(), "week_end": end.isoformat(),
                        "new": int(r.new), "resolved": int(r.resolved), "open": int(r.still_open)}
                       for (start, end), r in zip(bounds, weekly)],
            "pairs": [{"tenant": r.tenant_code, "check": r.check_id, "incidents": int(r.incidents),
                       "resolved": int(r.resolved), "open": int(r.incidents) - int(r.resolved),
                       "mean_seconds_to_resolve": _seconds(r.mean_seconds),
                       "max_seconds_to_resolve": _seconds(r.max_seconds)} for r in pairs],
            "incidents": [{"id": r.id, "tenant": r.tenant_code, "check": r.check_id, "severity": r.severity,
                           "state": r.state, "opened_at": as_utc(r.opened_at).isoformat(),
                           "resolved_at": as_utc(r.resolved_at).isoformat() if r.resolved_at else None,
                           "seconds_to_resolve": _seconds(r.resolve_seconds)} for r in reversed(listed)]}


def week_bounds(since: dt.datetime, now: dt.datetime) -> list[tuple[dt.datetime, dt.datetime]]:
    """Seven-day weeks from ``since``; the last ends at ``now``."""
    bounds, start = [], since
    while start < now:
        end = min(start + dt.timedelta(weeks=1), now)
        bounds.append((start, end))
        start = end
    return bounds


def _weekly_query(bounds: list[tuple[dt.datetime, dt.datetime]], in_window: list) -> sa.Select:
    """One row per week, in order: incidents opened in it, resolved in it, and still open at its end.

    The weeks are a small table of literals joined to the incidents open at some moment of
    them, so the database counts and Python receives one row per week."""
    week = sa.union_all(*(sa.select(sa.literal(n).label("n"), sa.literal(start, Timestamp).label("starts"),
                                    sa.literal(end, Timestamp).label("ends"))
                          for n, (start, end) in enumerate(bounds))).cte("week")
    o, r = incident.c.opened_at, incident.c.resolved_at

    def number(*condition):
        return sa.func.coalesce(sa.func.sum(sa.case((sa.and_(*condition), 1), else_=0)), 0)

    joined = week.outerjoin(incident, sa.and_(*in_window, o < week.c.ends,
                                              sa.or_(r.is_(None), r >= week.c.starts)))
    return (sa.select(week.c.n, number(o >= week.c.starts).label("new"),
                      number(r.is_not(None), r < week.c.ends).label("resolved"),
                      number(incident.c.id.is_not(None), sa.or_(r.is_(None), r >= week.c.ends)).label("still_open"))
            .select_from(joined).group_by(week.c.n).order_by(week.c.n))


def _pairs_query(in_window: list, now: dt.datetime) -> sa.Select:
    """Per (tenant, check): its incidents of the window, those resolved by ``now``, and their times to resolve."""
    resolved = sa.and_(incident.c.resolved_at.is_not(None), incident.c.resolved_at < now)
    seconds = sa.case((resolved, incident.c.resolve_seconds))
    return (sa.select(incident.c.tenant_code, incident.c.check_id, sa.func.count().label("incidents"),
                      sa.func.coalesce(sa.func.sum(sa.case((resolved, 1), else_=0)), 0).label("resolved"),
                      sa.func.avg(seconds).label("mean_seconds"), sa.func.max(seconds).label("max_seconds"))
            .where(*in_window).group_by(incident.c.tenant_code, incident.c.check_id)
            .order_by(incident.c.tenant_code, incident.c.check_id))


def _seconds(value) -> float | None:
    return None if value is None else round(float(value), 1)
