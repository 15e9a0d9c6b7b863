"""Generated volume series: a workshop's weekly and daily rhythm, counting noise, a month-end push,
and labelled anomalies (spawn storms, cancellation waves, sessions that stop, a stuck relay).

The backtest of the baselines (``benchmarks/volumes_bench.py``) and the demo's history are
built from it. The workshop works weekdays 07:00–19:00 UTC (quieter in the first and last
hours) and Saturday mornings; it is closed at night and on Sunday. The last two days of a
month run 1.5 × busier. Each hour of each kind is drawn as the lifecycle would produce it:
jobs start (Poisson), each spawns its quantity of tokens (2 to 6), every token gets a serial,
the relay publishes every serial event within the hour, a few tokens are scrapped and a
few jobs cancelled, operators open and complete sessions.

An anomaly is a list of *cells* (kind, hour) it changes; the backtest counts an anomaly
found when an alarm falls on one of its cells, and an alarm true when it falls on a cell
of some anomaly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .baselines import Options, is_month_end, score_series
from .volumes import KIND_IDS

MONTH_END_BUMP = 1.5
QUANTITIES = (2, 3, 4, 5, 6)


@dataclass(frozen=True)
class Levels:
    """Per-hour means at full activity."""

    jobs: float = 5.0
    scrapped: float = 1.5
    cancelled: float = 0.4
    sessions: float = 60.0
    backlog: float = 1.0


@dataclass
class Anomaly:
    label: str  # spike, drop, stuck_relay
    what: str
    cells: set[tuple[str, pd.Timestamp]] = field(default_factory=set)


def activity(index: pd.DatetimeIndex) -> np.ndarray:
    """How busy the workshop is in each hour, 0 (closed) to 1, month-end push included."""
    hour, weekday = index.hour, index.day_of_week
    weekday_level = np.select([(hour >= 8) & (hour < 17), (hour == 7) | ((hour >= 17) & (hour < 19))], [1.0, 0.4], 0.0)
    saturday_level = np.where((hour >= 8) & (hour < 13), 0.5, 0.0)
    level = np.where(weekday < 5, weekday_level, np.where(weekday == 5, saturday_level, 0.0))
    return level * np.where(is_month_end(index), MONTH_END_BUMP, 1.0)


def generate(start: pd.Timestamp, weeks: int, seed: int = 7, levels: Levels = Levels(),
             scale: float = 1.0) -> pd.DataFrame:
    """``weeks`` of hourly volumes from ``start`` (UTC): one column per kind, one row per hour."""
    rng = np.random.default_rng(seed)
    index = pd.date_range(pd.Timestamp(start).tz_convert("UTC"), periods=weeks * 168, freq="h")
    a = activity(index) * scale
    jobs = rng.poisson(levels.jobs * a)
    tokens = np.array([rng.choice(QUANTITIES, size=n).sum() if n else 0 for n in jobs])
    scrapped = rng.poisson(levels.scrapped * a)
    cancelled = rng.poisson(levels.cancelled * a)
    opened = rng.poisson(levels.sessions * a)
    completed = rng.binomial(opened, 0.92)
    frame = pd.DataFrame({
        "jobs_started": jobs, "tokens_spawned": tokens,
        "tokens_per_spawn": np.divide(tokens, jobs, out=np.zeros(len(jobs)), where=jobs > 0),
        "tokens_scrapped": scrapped, "jobs_cancelled": cancelled,
        "sessions_opened": opened, "sessions_completed": completed,
        "serials_issued": tokens, "serials_relayed": tokens + scrapped,
        "outbox_backlog": rng.poisson(levels.backlog * np.minimum(a, 1.0)),
    }, index=index).astype(float)
    return frame[list(KIND_IDS)]


def _cells(kinds, hours) -> set:
    return {(k, h) for k in kinds for h in hours}


def spawn_storm(frame: pd.DataFrame, hour: pd.Timestamp, factor: float = 10.0) -> Anomaly:
    """Every job of the hour spawned ``factor`` times its quantity."""
    extra = frame.at[hour, "tokens_spawned"] * (factor - 1) or 8 * factor
    jobs = max(frame.at[hour, "jobs_started"], 1.0)
    frame.at[hour, "jobs_started"] = jobs
    for kind in ("tokens_spawned", "serials_issued", "serials_relayed"):
        frame.at[hour, kind] += extra
    frame.at[hour, "tokens_per_spawn"] = frame.at[hour, "tokens_spawned"] / jobs
    return Anomaly("spike", f"spawn storm at {hour}",
                   _cells(("tokens_spawned", "tokens_per_spawn", "serials_issued", "serials_relayed"), [hour]))


def cancellation_wave(frame: pd.DataFrame, hour: pd.Timestamp, jobs: int = 12) -> Anomaly:
    scrapped = jobs * 4
    frame.at[hour, "jobs_cancelled"] += jobs
    frame.at[hour, "tokens_scrapped"] += scrapped
    frame.at[hour, "serials_relayed"] += scrapped  # the voids go through the relay
    return Anomaly("spike", f"{jobs} jobs cancelled at {hour}",
                   _cells(("jobs_cancelled", "tokens_scrapped", "serials_relayed"), [hour]))


def sessions_stop(frame: pd.DataFrame, first: pd.Timestamp, hours: int = 3) -> Anomaly:
    """Nobody opens (or completes) a session for ``hours`` hours."""
    span = pd.date_range(first, periods=hours, freq="h")
    for kind in ("sessions_opened", "sessions_completed"):
        frame.loc[span, kind] = np.floor(frame.loc[span, kind] * 0.05)
    return Anomaly("drop", f"sessions stopped from {first} for {hours} h",
                   _cells(("sessions_opened", "sessions_completed"), span))


def stuck_relay(frame: pd.DataFrame, first: pd.Timestamp, hours: int = 4) -> Anomaly:
    """The relay publishes nothing for ``hours`` hours, then catches up in the next one."""
    span = pd.date_range(first, periods=hours, freq="h")
    held = 0.0
    for hour in span:
        held += frame.at[hour, "serials_relayed"]
        frame.at[hour, "serials_relayed"] = 0.0
        frame.at[hour, "outbox_backlog"] += held
    recovery = first + pd.Timedelta(hours=hours)
    frame.at[recovery, "serials_relayed"] += held
    return Anomaly("stuck_relay", f"relay stuck from {first} for {hours} h",
                   _cells(("serials_relayed", "outbox_backlog"), list(span) + [recovery]))


def holiday(frame: pd.DataFrame, day: pd.Timestamp, factor: float = 0.75) -> None:
    """A quieter day (a local holiday, a training morning): not an anomaly."""
    span = pd.date_range(day, periods=24, freq="h")
    frame.loc[span] = np.floor(frame.loc[span] * factor)
    frame.loc[span, "tokens_per_spawn"] = np.divide(
        frame.loc[span, "tokens_spawned"], frame.loc[span, "jobs_started"],
        out=np.zeros(24), where=frame.loc[span, "jobs_started"].to_numpy() > 0)


def scenario(start: pd.Timestamp, weeks: int = 10, seed: int = 7, first_week: int = 3,
             per_week: int = 4) -> tuple[pd.DataFrame, list[Anomaly]]:
    """A generated series with ``per_week`` anomalies in each week from ``first_week`` on (0-based),
    cycling through storms, waves, stopped sessions and stuck relays on weekday working hours,
    and one holiday-like quieter day per three weeks."""
    frame = generate(start, weeks, seed)
    rng = np.random.default_rng(seed + 1)
    injectors = (spawn_storm, cancellation_wave, sessions_stop, stuck_relay)
    anomalies: list[Anomaly] = []
    n = 0
    for week in range(first_week, weeks):
        monday = frame.index[0] + pd.Timedelta(weeks=week)
        days = rng.choice(5, size=per_week, replace=per_week > 5)
        for day in days:
            hour = monday + pd.Timedelta(days=int(day), hours=int(rng.integers(9, 14)))
            anomalies.append(injectors[n % len(injectors)](frame, hour))
            n += 1
        if week % 3 == 1:
            quiet = int(rng.choice([d for d in range(5) if d not in days] or [4]))
            holiday(frame, monday + pd.Timedelta(days=quiet))
    return frame, anomalies


def backtest(frame: pd.DataFrame, anomalies: list[Anomaly], options: Options,
             since: pd.Timestamp) -> dict:
    """Judge every hour of every kind from ``since`` on; precision over alarms, recall over anomalies."""
    alarms: set[tuple[str, pd.Timestamp]] = set()
    judged = 0
    for kind in frame.columns:
        scored = score_series(frame[kind], options, kind, since=since)
        judged += int(scored["score"].notna().sum())
        alarms |= {(kind, hour) for hour in scored.index[scored["score"].abs() >= options.threshold_for(kind)]}
    cells = set().union(*(a.cells for a in anomalies)) if anomalies else set()
    found = [a for a in anomalies if a.cells & alarms]
    false = sorted(alarms - cells)
    return {"judged": judged, "alarms": len(alarms), "true_alarms": len(alarms & cells), "false_alarms": false,
            "anomalies": len(anomalies), "found": len(found),
            "missed": [a.what for a in anomalies if not a.cells & alarms],
            "precision": len(alarms & cells) / len(alarms) if alarms else 1.0,
            "recall": len(found) / len(anomalies) if anomalies else 1.0}
