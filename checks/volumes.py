"""The lifecycle's hourly pulse: what a tenant did in one hour, counted from indexed timestamps.

The catalogue finds rows that break a rule; volumes show a factory behaving strangely while
every row is still legal (a spawn storm, a wave of cancellations, a relay trickling). Each
*kind* is one number per (tenant, hour), the hour being ``[start, start + 1 h)`` in UTC:

======================  ==========================================================================
kind                    counts, for rows whose timestamp falls in the hour
======================  ==========================================================================
jobs_started            jobs with a spawn cycle (``token_spawn.created_at``)
tokens_spawned          tokens those spawn cycles placed
tokens_per_spawn        tokens spawned per spawn cycle (0 when no cycle)
tokens_scrapped         tokens scrapped (``flow_token.scrapped_at``)
jobs_cancelled          jobs whose instance a hard reset archived (``job_graph_instance.archived_at``)
sessions_opened         work sessions started (``token_work_session.started_at``)
sessions_completed      work sessions completed (``ended_at``, close reason ``completed``)
serials_issued          serials written to the tenant registry (``serial_registry.created_at``)
serials_relayed         outbox events the relay published to core (``serial_outbox.published_at``)
outbox_backlog          outbox rows not yet published at the end of the hour
======================  ==========================================================================

Every count is a range scan of a timestamp index (tenant migration 0004), so counting an
hour costs that hour's rows whatever the size of the tenant; the backlog reads the
unpublished rows (a partial index) and the rows published since the hour ended (for the
last complete hour, minutes of rows). ``collect`` counts every hour the monitor store does
not hold yet, up to the last complete hour, and writes one row per (tenant, kind, hour).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa

from lifecycle.db import Settings, dialect_insert, get_engine
from lifecycle.schema import flow_token, job_graph_instance, serial_outbox, serial_registry, token_spawn, \
    token_work_session
from lifecycle.uow import as_utc, utcnow

from . import baselines
from .schema import lifecycle_volume, volume_baseline
from .store import ensure_migrated

HOUR = dt.timedelta(hours=1)
DEFAULT_BACKFILL_WEEKS = 8  # a first run fills this much history, enough for the default baseline


@dataclass(frozen=True)
class Kind:
    id: str
    description: str


KINDS: tuple[Kind, ...] = (
    Kind("jobs_started", "jobs with a spawn cycle in the hour"),
    Kind("tokens_spawned", "tokens placed by the hour's spawn cycles"),
    Kind("tokens_per_spawn", "tokens per spawn cycle in the hour (0 without a cycle)"),
    Kind("tokens_scrapped", "tokens scrapped in the hour"),
    Kind("jobs_cancelled", "jobs whose instance a hard reset archived in the hour"),
    Kind("sessions_opened", "work sessions started in the hour"),
    Kind("sessions_completed", "work sessions completed in the hour"),
    Kind("serials_issued", "serials written to the tenant registry in the hour"),
    Kind("serials_relayed", "serial outbox events published to core in the hour"),
    Kind("outbox_backlog", "serial outbox rows unpublished at the end of the hour"),
)
KIND_IDS = tuple(k.id for k in KINDS)


def hour_start(at: dt.datetime) -> dt.datetime:
    return as_utc(at).replace(minute=0, second=0, microsecond=0)


def last_complete_hour(now: dt.datetime | None = None) -> dt.datetime:
    """The start of the last hour that has ended."""
    return hour_start(now or utcnow()) - HOUR


def _within(column, start: dt.datetime, end: dt.datetime):
    return sa.and_(column >= start, column < end)


def hour_queries(start: dt.datetime) -> dict[str, sa.Select]:
    """The statements that count the hour starting at ``start``, by name (the EXPLAIN test reads them)."""
    end = start + HOUR
    count = sa.func.count()
    return {
        "spawns": sa.select(count.label("cycles"), sa.func.count(sa.distinct(token_spawn.c.job_id)).label("jobs"),
                            sa.func.coalesce(sa.func.sum(token_spawn.c.token_count), 0).label("tokens"))
        .where(_within(token_spawn.c.created_at, start, end)),
        "tokens_scrapped": sa.select(count).where(_within(flow_token.c.scrapped_at, start, end)),
        "jobs_cancelled": sa.select(sa.func.count(sa.distinct(job_graph_instance.c.job_id)))
        .where(_within(job_graph_instance.c.archived_at, start, end)),
        "sessions_opened": sa.select(count).where(_within(token_work_session.c.started_at, start, end)),
        "sessions_completed": sa.select(count).where(_within(token_work_session.c.ended_at, start, end),
                                                     token_work_session.c.close_reason == "completed"),
        "serials_issued": sa.select(count).where(_within(serial_registry.c.created_at, start, end)),
        "serials_relayed": sa.select(count).where(_within(serial_outbox.c.published_at, start, end)),
        # unpublished at the end of the hour: still unpublished, or published only after it ended
        "outbox_unpublished": sa.select(count).where(serial_outbox.c.published_at.is_(None),
                                                     serial_outbox.c.created_at < end),
        "outbox_published_after": sa.select(count).where(serial_outbox.c.published_at >= end,
                                                         serial_outbox.c.created_at < end),
    }


def count_hour(conn: sa.Connection, start: dt.datetime) -> dict[str, float]:
    """Every kind for the hour starting at ``start``, read on one tenant connection."""
    q = {name: conn.execute(query) for name, query in hour_queries(hour_start(start)).items()}
    spawns = q.pop("spawns").one()
    n = {name: int(result.scalar_one()) for name, result in q.items()}
    return {
        "jobs_started": float(spawns.jobs),
        "tokens_spawned": float(spawns.tokens),
        "tokens_per_spawn": float(spawns.tokens) / spawns.cycles if spawns.cycles else 0.0,
        "tokens_scrapped": float(n["tokens_scrapped"]),
        "jobs_cancelled": float(n["jobs_cancelled"]),
        "sessions_opened": float(n["sessions_opened"]),
        "sessions_completed": float(n["sessions_completed"]),
        "serials_issued": float(n["serials_issued"]),
        "serials_relayed": float(n["serials_relayed"]),
        "outbox_backlog": float(n["outbox_unpublished"] + n["outbox_published_after"]),
    }


def last_stored_hour(monitor: sa.Connection, tenant: str) -> dt.datetime | None:
    latest = monitor.execute(sa.select(sa.func.max(lifecycle_volume.c.hour))
                             .where(lifecycle_volume.c.tenant_code == tenant)).scalar()
    return as_utc(latest)


def missing_hours(last_stored: dt.datetime | None, until: dt.datetime,
                  backfill_weeks: int = DEFAULT_BACKFILL_WEEKS) -> list[dt.datetime]:
    """The hours after ``last_stored`` up to ``until`` (included), at most ``backfill_weeks`` back."""
    until = hour_start(until)
    earliest = until - dt.timedelta(weeks=backfill_weeks) + HOUR
    first = max(last_stored + HOUR, earliest) if last_stored is not None else earliest
    hours = []
    while first <= until:
        hours.append(first)
        first += HOUR
    return hours


def write(monitor: sa.Connection, tenant: str, rows: list[dict], source: str = "counted") -> int:
    """Upsert ``rows`` (``hour``, ``kind``, ``value``) of one tenant; a rewritten hour loses its score."""
    if not rows:
        return 0
    now = utcnow()
    insert = dialect_insert(monitor, lifecycle_volume)
    values = [{"tenant_code": tenant, "kind": r["kind"], "hour": r["hour"], "value": float(r["value"]),
               "source": source, "created_at": now} for r in rows]
    for chunk in range(0, len(values), 1000):
        statement = insert.values(values[chunk:chunk + 1000])
        monitor.execute(statement.on_conflict_do_update(
            index_elements=["tenant_code", "kind", "hour"],
            set_={"value": statement.excluded.value, "source": statement.excluded.source,
                  "expected": None, "scale": None, "score": None}))
    return len(values)


def collect(settings: Settings, tenant: str, now: dt.datetime | None = None,
            backfill_weeks: int = DEFAULT_BACKFILL_WEEKS, progress=None) -> dict:
    """Count every hour of ``tenant`` the monitor store lacks, up to the last complete hour.

    A first run fills ``backfill_weeks`` of history; a scheduled run counts the one hour
    that ended since the last. Returns the hours counted and the last hour's values."""
    until = last_complete_hour(now)
    ensure_migrated(settings.monitor_url)
    monitor_engine = get_engine(settings.monitor_url)
    with monitor_engine.connect() as monitor:
        hours = missing_hours(last_stored_hour(monitor, tenant), until, backfill_weeks)
    rows: list[dict] = []
    last: dict[str, float] = {}
    with get_engine(settings.tenant_url(tenant)).connect() as conn:
        for i, start in enumerate(hours):
            last = count_hour(conn, start)
            rows += [{"hour": start, "kind": kind, "value": value} for kind, value in last.items()]
            if progress and i % 168 == 167:
                progress(f"{tenant}: {i + 1}/{len(hours)} hours counted")
            conn.rollback()  # one short read transaction per hour, never one across the backfill
    with monitor_engine.begin() as monitor:
        write(monitor, tenant, rows)
    return {"tenant": tenant, "hours": len(hours), "first": hours[0] if hours else None,
            "last": hours[-1] if hours else None, "values": last}


def series(monitor: sa.Connection, tenant: str, since: dt.datetime, until: dt.datetime,
           kinds: tuple[str, ...] | list[str] = KIND_IDS) -> list[sa.Row]:
    """The stored rows of ``tenant`` for ``kinds`` with ``since <= hour <= until``, in hour order."""
    return list(monitor.execute(
        sa.select(lifecycle_volume).where(lifecycle_volume.c.tenant_code == tenant,
                                          lifecycle_volume.c.kind.in_(list(kinds)),
                                          lifecycle_volume.c.hour >= since, lifecycle_volume.c.hour <= until)
        .order_by(lifecycle_volume.c.kind, lifecycle_volume.c.hour)))


# --------------------------------------------------------------------------- verdicts
def history(monitor: sa.Connection, tenant: str, hour: dt.datetime, weeks: int,
            kinds: tuple[str, ...] | list[str] = KIND_IDS) -> dict:
    """Each kind's stored series from the start of its baseline window through ``hour``, as pandas."""
    since = hour_start(hour).replace(hour=0) - dt.timedelta(weeks=weeks)
    points: dict[str, list] = {k: [] for k in kinds}
    for row in series(monitor, tenant, since, hour_start(hour), kinds):
        points[row.kind].append((as_utc(row.hour), row.value))
    return {kind: baselines.to_series(p) for kind, p in points.items()}


def judge_hour(settings: Settings, tenant: str, hour: dt.datetime, options: baselines.Options,
               kinds: tuple[str, ...] | list[str] = KIND_IDS) -> dict[str, baselines.Verdict]:
    """Judge ``hour`` of every kind against its seasonal baseline and store the scores with the values.
    A kind without a stored value for the hour has no verdict."""
    hour = hour_start(hour)
    verdicts: dict[str, baselines.Verdict] = {}
    engine = get_engine(settings.monitor_url)
    with engine.connect() as monitor:
        for kind, values in history(monitor, tenant, hour, options.weeks, kinds).items():
            if not values.empty and values.index[-1] == pd_hour(hour):
                verdicts[kind] = baselines.judge_hour(values, pd_hour(hour), options, kind)
    with engine.begin() as monitor:
        for kind, v in verdicts.items():
            monitor.execute(lifecycle_volume.update().where(
                lifecycle_volume.c.tenant_code == tenant, lifecycle_volume.c.kind == kind,
                lifecycle_volume.c.hour == hour).values(expected=v.expected, scale=v.scale, score=v.score))
    return verdicts


def pd_hour(hour: dt.datetime):
    return baselines.to_series([(hour, 0.0)]).index[0]


def refresh_baselines(settings: Settings, tenant: str, asof: dt.datetime, options: baselines.Options,
                      kinds: tuple[str, ...] | list[str] = KIND_IDS) -> dict[str, dict]:
    """Recompute and store every slot's baseline of each kind for the day of ``asof``."""
    now = utcnow()
    engine = get_engine(settings.monitor_url)
    summary: dict[str, dict] = {}
    with engine.connect() as monitor:
        frames = history(monitor, tenant, asof, options.weeks, kinds)
    with engine.begin() as monitor:
        monitor.execute(volume_baseline.delete().where(volume_baseline.c.tenant_code == tenant,
                                                       volume_baseline.c.kind.in_(list(kinds))))
        for kind, values in frames.items():
            rows, baseline = baselines.baseline_rows(values, pd_hour(asof), options)
            factor = baseline.month_end_factor
            if rows:
                monitor.execute(volume_baseline.insert(), [
                    {"tenant_code": tenant, "kind": kind, **r, "month_end_factor": factor, "computed_at": now}
                    for r in rows])
            ready = sum(1 for r in rows if r["weeks"] >= options.min_weeks)
            summary[kind] = {"slots": len(rows), "slots_ready": ready, "month_end_factor": factor,
                             "dispersion": baseline.dispersion}
    return summary
