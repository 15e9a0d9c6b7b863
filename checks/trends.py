"""Trends: a tenant's volumes against their bands, and the findings history as episodes and weeks.

``volume_trend`` reads the stored series of a tenant (``lifecycle_volume``) and judges each
shown hour against its seasonal baseline (``checks.baselines``), so the CLI, the demo and
the PNG show the value with its expected band.

``findings_trend`` reads the check history (``finding``) in SQL: the daily peak count of
each (tenant, check), and the runs where a check went from zero rows to some or back — an
*episode* opens at the first run that finds rows and resolves at the first run that finds
none again. From those few rows it builds the weekly summary (episodes new, resolved, still
open at the week's end) and the time to resolve of each resolved episode. The monitor store
never hands Python more than one row per check and day, plus one per transition.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import sqlalchemy as sa

from lifecycle.db import Settings, get_engine, is_postgres
from lifecycle.uow import as_utc, utcnow

from . import baselines, volumes
from .schema import finding
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


def findings_trend(settings: Settings, tenant: str | None = None, weeks: int = 8,
                   now: dt.datetime | None = None) -> dict:
    """Daily peak counts per check, the episodes of each (tenant, check), and the weekly summary."""
    require_migrated(settings.monitor_url)
    now = now or utcnow()
    since = now - dt.timedelta(weeks=weeks)
    where = [finding.c.finished_at >= since, finding.c.error.is_(None)]
    if tenant is not None:
        where.append(finding.c.tenant_code == tenant)
    with get_engine(settings.monitor_url).connect() as conn:
        day = _day(conn, finding.c.finished_at).label("day")
        daily = conn.execute(sa.select(finding.c.tenant_code, finding.c.check_id, day,
                                       sa.func.max(finding.c.count).label("count"))
                             .where(*where).group_by(finding.c.tenant_code, finding.c.check_id, day)
                             .order_by(finding.c.tenant_code, finding.c.check_id, day)).all()
        found = sa.case((finding.c["count"] > 0, 1), else_=0)
        ordered = sa.select(finding.c.tenant_code, finding.c.check_id, finding.c.finished_at, finding.c["count"],
                            found.label("found"),
                            sa.func.lag(found).over(partition_by=[finding.c.tenant_code, finding.c.check_id],
                                                    order_by=finding.c.id).label("before")
                            ).where(*where).subquery()
        changes = conn.execute(sa.select(ordered).where(sa.or_(
            ordered.c.found != ordered.c.before, sa.and_(ordered.c.before.is_(None), ordered.c.found == 1)))
            .order_by(ordered.c.tenant_code, ordered.c.check_id, ordered.c.finished_at)).all()
    episodes = _episodes(changes)
    return {"since": since.isoformat(), "weeks": weeks,
            "daily": [{"tenant": r.tenant_code, "check": r.check_id, "day": str(r.day)[:10], "count": int(r.count)}
                      for r in daily],
            "episodes": episodes, "weekly": _weekly(episodes, since, now)}


def _episodes(changes) -> list[dict]:
    episodes: list[dict] = []
    open_by_pair: dict[tuple[str, str], dict] = {}
    for r in changes:
        pair = (r.tenant_code, r.check_id)
        at = as_utc(r.finished_at)
        if r.found and pair not in open_by_pair:
            open_by_pair[pair] = {"tenant": pair[0], "check": pair[1], "opened_at": at, "resolved_at": None}
        elif not r.found and pair in open_by_pair:
            episode = open_by_pair.pop(pair)
            episode["resolved_at"] = at
            episodes.append(episode)
    episodes += open_by_pair.values()
    for e in episodes:
        e["seconds_to_resolve"] = (e["resolved_at"] - e["opened_at"]).total_seconds() if e["resolved_at"] else None
    return sorted(episodes, key=lambda e: (e["opened_at"], e["tenant"], e["check"]))


def _weekly(episodes: list[dict], since: dt.datetime, now: dt.datetime) -> list[dict]:
    weeks = []
    start = since
    while start < now:
        end = min(start + dt.timedelta(weeks=1), now)
        weeks.append({
            "week_start": start.isoformat(), "week_end": end.isoformat(),
            "new": sum(1 for e in episodes if start <= e["opened_at"] < end),
            "resolved": sum(1 for e in episodes if e["resolved_at"] and start <= e["resolved_at"] < end),
            "open": sum(1 for e in episodes if e["opened_at"] < end and (not e["resolved_at"] or e["resolved_at"] >= end)),
        })
        start = end
    return weeks
