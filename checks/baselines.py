"""Seasonal baselines of the hourly volumes, with pandas: what an hour usually looks like.

A factory has a weekly rhythm (quiet nights, busy weekday mornings, a slow Sunday) and,
often, a month-end push. The baseline of a (tenant, kind) is therefore kept per
*hour-of-week slot* (0 = Monday 00:00 UTC … 167 = Sunday 23:00): the median and the MAD
(median absolute deviation) of that slot over the last ``weeks`` weeks (default 8). Both
are robust: a past spike or outage in the history barely moves them.

- **Minimum history** — a slot seen in fewer than ``min_weeks`` weeks (default 3) gives no
  verdict: the hour is ``insufficient_history``, never an anomaly.
- **Month-end** — the last ``MONTH_END_DAYS`` days of a month are kept out of the slot
  statistics; where the month-end hours of the history run consistently above (or below)
  their slots' medians, by at least ``MONTH_END_MIN_EFFECT``, their median ratio becomes
  the month-end factor that scales the expectation of month-end hours. Where the data
  shows no such effect the factor is 1.
- **Score** — the robust z-score ``(value − expected) / scale`` where ``scale`` is the
  robust σ (1.4826 × MAD), never below √expected (the noise of counting) nor 1. An hour
  whose score's magnitude reaches the threshold (default 5, per-kind overrides) is an
  anomaly; its expected range is ``expected ± threshold × scale``.

The baseline that judges an hour is fit from the ``weeks`` weeks before that hour's day
(its UTC midnight), so every hour of a day is judged against the same baseline.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from lifecycle.errors import ValidationError

SLOTS = 168
MAD_TO_SIGMA = 1.4826  # a normal distribution's σ from its MAD
DEFAULT_WEEKS = 8
MIN_WEEKS = 3
DEFAULT_THRESHOLD = 5.0
MONTH_END_DAYS = 2
MONTH_END_MIN_HOURS = 12  # month-end hours the history needs before a factor is believed
MONTH_END_MIN_EFFECT = 0.15  # |factor − 1| below this is no month-end effect

OK, ANOMALY, INSUFFICIENT = "ok", "anomaly", "insufficient_history"


@dataclass(frozen=True)
class Options:
    weeks: int = DEFAULT_WEEKS
    min_weeks: int = MIN_WEEKS
    threshold: float = DEFAULT_THRESHOLD
    thresholds: Mapping[str, float] = field(default_factory=dict)  # per-kind overrides

    def __post_init__(self) -> None:
        if not 1 <= self.min_weeks <= self.weeks <= 52:
            raise ValidationError(f"baseline weeks must be 1 to 52 and at least the minimum history "
                                  f"({self.min_weeks}); got {self.weeks}", hint="e.g. --weeks 8")
        if any(not t > 0 for t in [self.threshold, *self.thresholds.values()]):
            raise ValidationError("anomaly thresholds must be positive", hint="e.g. 5, or tokens_spawned=6")

    def threshold_for(self, kind: str) -> float:
        return float(self.thresholds.get(kind, self.threshold))


def parse_thresholds(text: str | None) -> dict[str, float]:
    """``"tokens_spawned=6,outbox_backlog=8"`` → per-kind thresholds (the setting's format)."""
    result: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        kind, sep, value = part.partition("=")
        try:
            result[kind.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not kind.strip():
            raise ValidationError(f"bad per-kind threshold {part!r}", hint="write KIND=NUMBER, comma separated, "
                                                                          "e.g. tokens_spawned=6,outbox_backlog=8")
    return result


# The settings of the baselines (``docs/configuration.md``).
WEEKS_SETTING = "HATTHASILPA_VOLUME_WEEKS"
THRESHOLD_SETTING = "HATTHASILPA_VOLUME_THRESHOLD"
THRESHOLDS_SETTING = "HATTHASILPA_VOLUME_THRESHOLDS"
SETTINGS = (WEEKS_SETTING, THRESHOLD_SETTING, THRESHOLDS_SETTING)


def _number(text: str, name: str, kind=float):
    try:
        return kind(text)
    except ValueError:
        raise ValidationError(f"{name} must be a number, not {text!r}", hint=f"e.g. {name}=5") from None


def options_from(environ: Mapping[str, str | None], weeks: int | None = None, threshold: float | None = None,
                 thresholds: str | None = None) -> Options:
    """The options: explicit values first, then the settings, then the defaults."""
    weeks_text, threshold_text = environ.get(WEEKS_SETTING), environ.get(THRESHOLD_SETTING)
    return Options(
        weeks=weeks or (_number(weeks_text, WEEKS_SETTING, int) if weeks_text else DEFAULT_WEEKS),
        threshold=threshold or (_number(threshold_text, THRESHOLD_SETTING) if threshold_text else DEFAULT_THRESHOLD),
        thresholds=parse_thresholds(thresholds if thresholds is not None else environ.get(THRESHOLDS_SETTING)))


def slot_of(index: pd.DatetimeIndex) -> np.ndarray:
    """The hour-of-week slot of each hour (Monday 00:00 UTC is 0)."""
    return np.asarray(index.day_of_week * 24 + index.hour, dtype=int)


def is_month_end(index: pd.DatetimeIndex) -> np.ndarray:
    """Whether each hour falls in the last ``MONTH_END_DAYS`` days of its month."""
    return np.asarray((index + pd.Timedelta(days=MONTH_END_DAYS)).month != index.month)


def to_series(points: Iterable[tuple[dt.datetime, float]]) -> pd.Series:
    """(hour, value) pairs → a float series on a UTC hourly index, in order."""
    points = list(points)
    index = pd.DatetimeIndex([pd.Timestamp(h) for h, _ in points])
    index = index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")
    return pd.Series([float(v) for _, v in points], index=index, dtype=float).sort_index()


@dataclass(frozen=True)
class Baseline:
    """Median, MAD and weeks seen per slot (a frame indexed by slot), and the month-end factor."""

    slots: pd.DataFrame
    month_end_factor: float = 1.0

    def slot(self, slot: int) -> tuple[float, float, int]:
        if slot not in self.slots.index:
            return math.nan, math.nan, 0
        row = self.slots.loc[slot]
        return float(row["median"]), float(row["mad"]), int(row["weeks"])


def _mad(values: pd.Series) -> float:
    return float((values - values.median()).abs().median())


def fit(history: pd.Series) -> Baseline:
    """The baseline of a history (already cut to its window)."""
    if history.empty:
        return Baseline(pd.DataFrame(columns=["median", "mad", "weeks"], dtype=float))
    month_end = is_month_end(history.index)
    normal = history[~month_end]
    groups = normal.groupby(slot_of(normal.index))
    slots = pd.DataFrame({"median": groups.median(), "mad": groups.agg(_mad), "weeks": groups.size()})
    return Baseline(slots, _month_end_factor(history[month_end], slots))


def _month_end_factor(month_end_hours: pd.Series, slots: pd.DataFrame) -> float:
    if len(month_end_hours) < MONTH_END_MIN_HOURS or slots.empty:
        return 1.0
    medians = slots["median"].reindex(slot_of(month_end_hours.index)).to_numpy()
    usable = np.isfinite(medians) & (medians > 0)
    if usable.sum() < MONTH_END_MIN_HOURS:
        return 1.0
    factor = float(np.median(month_end_hours.to_numpy()[usable] / medians[usable]))
    return factor if abs(factor - 1.0) >= MONTH_END_MIN_EFFECT else 1.0


def window(series: pd.Series, hour: pd.Timestamp, weeks: int) -> pd.Series:
    """The history that judges ``hour``: the ``weeks`` weeks before its day's UTC midnight."""
    day = pd.Timestamp(hour).normalize()
    return series[(series.index >= day - pd.Timedelta(weeks=weeks)) & (series.index < day)]


@dataclass(frozen=True)
class Verdict:
    hour: dt.datetime
    slot: int
    value: float
    expected: float | None
    scale: float | None
    score: float | None
    low: float | None
    high: float | None
    weeks: int
    month_end: bool
    threshold: float
    status: str

    def to_dict(self) -> dict:
        return {"hour": self.hour.isoformat(), "slot": self.slot, "value": self.value, "expected": self.expected,
                "scale": self.scale, "score": self.score, "low": self.low, "high": self.high,
                "weeks": self.weeks, "month_end": self.month_end, "threshold": self.threshold,
                "status": self.status}


def judge(value: float, hour: pd.Timestamp, baseline: Baseline, options: Options, kind: str = "") -> Verdict:
    """The verdict on one hour's value against its slot in ``baseline``."""
    hour = pd.Timestamp(hour)
    slot = int(hour.day_of_week * 24 + hour.hour)
    month_end = bool(is_month_end(pd.DatetimeIndex([hour]))[0])
    threshold = options.threshold_for(kind)
    median, mad, weeks = baseline.slot(slot)
    if weeks < options.min_weeks:
        return Verdict(hour.to_pydatetime(), slot, float(value), None, None, None, None, None, weeks, month_end,
                       threshold, INSUFFICIENT)
    factor = baseline.month_end_factor if month_end else 1.0
    expected = median * factor
    scale = max(MAD_TO_SIGMA * mad * factor, math.sqrt(abs(expected)), 1.0)
    score = (float(value) - expected) / scale
    return Verdict(hour.to_pydatetime(), slot, float(value), expected, scale, score,
                   max(expected - threshold * scale, 0.0), expected + threshold * scale, weeks, month_end,
                   threshold, ANOMALY if abs(score) >= threshold else OK)


def judge_hour(series: pd.Series, hour: pd.Timestamp, options: Options, kind: str = "") -> Verdict:
    """The verdict on ``series`` at ``hour`` (which the series must hold)."""
    hour = pd.Timestamp(hour)
    return judge(float(series.loc[hour]), hour, fit(window(series, hour, options.weeks)), options, kind)


def judge_series(series: pd.Series, options: Options, kind: str = "",
                 since: pd.Timestamp | None = None) -> list[Verdict]:
    """The verdict on every hour of ``series`` from ``since`` on, one baseline fit per day."""
    verdicts: list[Verdict] = []
    hours = series.index if since is None else series.index[series.index >= pd.Timestamp(since)]
    for day, day_hours in pd.Series(hours, index=hours).groupby(hours.normalize()):
        baseline = fit(window(series, day, options.weeks))
        verdicts += [judge(float(series.loc[h]), h, baseline, options, kind) for h in day_hours.index]
    return verdicts


def baseline_rows(series: pd.Series, asof: pd.Timestamp, options: Options) -> tuple[list[dict], float]:
    """Every slot's baseline as rows (``slot``, ``median``, ``mad``, ``weeks``) for the day of ``asof``,
    and the month-end factor."""
    baseline = fit(window(series, pd.Timestamp(asof), options.weeks))
    rows = [{"slot": int(slot), "median": float(r["median"]), "mad": float(r["mad"]), "weeks": int(r["weeks"])}
            for slot, r in baseline.slots.iterrows()]
    return rows, baseline.month_end_factor
