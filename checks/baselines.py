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
  slot's robust σ (1.4826 × MAD), never below the kind's counting noise (dispersion ×
  √expected) nor 1. The dispersion is fit over every busy hour of the window — the median
  of 1.4826 × |value − slot median| / √(slot median), at least 1 — so a slot seen only a
  few weeks borrows the noise level of the whole week instead of trusting three points;
  tokens arrive in jobs of several, so their dispersion is above 1. An hour
  whose score's magnitude reaches the threshold (default 5, per-kind overrides) is an
  anomaly; its expected range is ``expected ± threshold × scale``.

The baseline that judges an hour is fit from the ``weeks`` weeks before that hour's day
(its UTC midnight), so every hour of a day is judged against the same baseline.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Collection, Iterable, Mapping
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
        if any(not (math.isfinite(t) and t > 0) for t in [self.threshold, *self.thresholds.values()]):
            raise ValidationError("anomaly thresholds must be positive numbers", hint="e.g. 5, or tokens_spawned=6")

    def threshold_for(self, kind: str) -> float:
        return float(self.thresholds.get(kind, self.threshold))


def parse_thresholds(text: str | None, kinds: Collection[str]) -> dict[str, float]:
    """``"tokens_spawned=6,outbox_backlog=8"`` → per-kind thresholds (the setting's format).

    Every name must be one of ``kinds`` and every value a positive number, each named once:
    a typo'd kind would otherwise leave its threshold silently at the default."""
    valid = f"valid kinds: {', '.join(kinds)}"
    result: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        kind, sep, value = (p.strip() for p in part.partition("="))
        if not sep or not kind:
            raise ValidationError(f"bad per-kind threshold {part!r} in {THRESHOLDS_SETTING}",
                                  hint="write KIND=NUMBER, comma separated, e.g. tokens_spawned=6,outbox_backlog=8")
        if kind not in kinds:
            raise ValidationError(f"unknown kind {kind!r} in {THRESHOLDS_SETTING}", hint=valid)
        if kind in result:
            raise ValidationError(f"kind {kind!r} given twice in {THRESHOLDS_SETTING}", hint="name each kind once")
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not (math.isfinite(number) and number > 0):
            raise ValidationError(f"the threshold of {kind} in {THRESHOLDS_SETTING} must be a positive number, "
                                  f"not {value!r}", hint=f"e.g. {kind}=6; {valid}")
        result[kind] = number
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


def options_from(environ: Mapping[str, str | None], *, kinds: Collection[str], weeks: int | None = None,
                 threshold: float | None = None, thresholds: str | None = None) -> Options:
    """The options: explicit values first, then the settings, then the defaults. ``kinds`` are
    the names a per-kind threshold may use (``checks.volumes.KIND_IDS``)."""
    weeks_text, threshold_text = environ.get(WEEKS_SETTING), environ.get(THRESHOLD_SETTING)
    return Options(
        weeks=weeks or (_number(weeks_text, WEEKS_SETTING, int) if weeks_text else DEFAULT_WEEKS),
        threshold=threshold or (_number(threshold_text, THRESHOLD_SETTING) if threshold_text else DEFAULT_THRESHOLD),
        thresholds=parse_thresholds(thresholds if thresholds is not None else environ.get(THRESHOLDS_SETTING), kinds))


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
    """Median, MAD and weeks seen per slot (a frame indexed by slot), the month-end factor, and the
    kind's dispersion: how much wider than counting noise (√expected) its hours spread."""

    slots: pd.DataFrame
    month_end_factor: float = 1.0
    dispersion: float = 1.0

    def arrays(self, slots: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        table = self.slots.reindex(slots)
        return (table["median"].to_numpy(dtype=float), table["mad"].to_numpy(dtype=float),
                table["weeks"].fillna(0).to_numpy(dtype=int), table["mean"].to_numpy(dtype=float))


EMPTY = pd.DataFrame({"median": pd.Series(dtype=float), "mad": pd.Series(dtype=float),
                      "weeks": pd.Series(dtype=int), "mean": pd.Series(dtype=float)})


def fit(history: pd.Series) -> Baseline:
    """The baseline of a history (already cut to its window)."""
    history = history.dropna()
    if history.empty:
        return Baseline(EMPTY)
    month_end = is_month_end(history.index)
    normal = history[~month_end]
    slots = slot_of(normal.index)
    table = normal.groupby(slots).agg(["median", "mean", "size"]).rename(columns={"size": "weeks"})
    deviation = np.abs(normal.to_numpy() - table["median"].reindex(slots).to_numpy())
    table["mad"] = pd.Series(deviation).groupby(slots).median().to_numpy()
    return Baseline(table, _month_end_factor(history[month_end], table), _dispersion(normal))


def _dispersion(normal: pd.Series) -> float:
    """How much wider than √level a kind's hours spread: from the changes of each slot week over week
    (σ of a difference is √2 σ), robustly, over the slots that are busy in both weeks."""
    previous = normal.shift(freq=pd.Timedelta(weeks=1)).reindex(normal.index)
    level = (normal + previous) / 2
    busy = (level >= 1) & previous.notna()
    if busy.sum() < MONTH_END_MIN_HOURS:
        return 1.0
    ratios = (normal[busy] - previous[busy]).abs() / np.sqrt(level[busy])
    return max(float(MAD_TO_SIGMA * np.median(ratios) / math.sqrt(2)), 1.0)


def _month_end_factor(month_end_hours: pd.Series, slots: pd.DataFrame) -> float:
    if len(month_end_hours) < MONTH_END_MIN_HOURS or slots.empty:
        return 1.0
    medians = slots["median"].reindex(slot_of(month_end_hours.index)).to_numpy(dtype=float)
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


def scores(values: pd.Series, baseline: Baseline, options: Options, kind: str = "") -> pd.DataFrame:
    """Expected value, scale, score and weeks of history of every hour of ``values``, vectorized;
    ``score`` is NaN where the slot has too little history."""
    index = pd.DatetimeIndex(values.index)
    slots, month_end = slot_of(index), is_month_end(index)
    median, mad, weeks, mean = baseline.arrays(slots)
    factor = np.where(month_end, baseline.month_end_factor, 1.0)
    expected = median * factor
    level = np.fmax(np.abs(expected), np.abs(mean) * factor)  # the mean too: a sparse slot's median is often 0
    with np.errstate(invalid="ignore"):
        scale = np.fmax(np.fmax(MAD_TO_SIGMA * mad * factor, baseline.dispersion * np.sqrt(level)), 1.0)
    score = (values.to_numpy(dtype=float) - expected) / scale
    ready = weeks >= options.min_weeks
    return pd.DataFrame({"slot": slots, "month_end": month_end, "value": values.to_numpy(dtype=float),
                         "expected": np.where(ready, expected, np.nan), "scale": np.where(ready, scale, np.nan),
                         "score": np.where(ready, score, np.nan), "weeks": weeks}, index=index)


def judge_many(values: pd.Series, baseline: Baseline, options: Options, kind: str = "") -> list[Verdict]:
    """The verdicts on the hours of ``values`` (indexed by hour) against one baseline."""
    threshold = options.threshold_for(kind)
    verdicts = []
    for hour, r in scores(values, baseline, options, kind).iterrows():
        common = dict(hour=hour.to_pydatetime(), slot=int(r["slot"]), value=float(r["value"]), weeks=int(r["weeks"]),
                      month_end=bool(r["month_end"]), threshold=threshold)
        if math.isnan(r["score"]):
            verdicts.append(Verdict(expected=None, scale=None, score=None, low=None, high=None, status=INSUFFICIENT,
                                    **common))
            continue
        e, s, z = float(r["expected"]), float(r["scale"]), float(r["score"])
        verdicts.append(Verdict(expected=e, scale=s, score=z, low=max(e - threshold * s, 0.0), high=e + threshold * s,
                                status=ANOMALY if abs(z) >= threshold else OK, **common))
    return verdicts


def judge(value: float, hour: pd.Timestamp, baseline: Baseline, options: Options, kind: str = "") -> Verdict:
    """The verdict on one hour's value against its slot in ``baseline``."""
    return judge_many(pd.Series([float(value)], index=pd.DatetimeIndex([pd.Timestamp(hour)])), baseline,
                      options, kind)[0]


def judge_hour(series: pd.Series, hour: pd.Timestamp, options: Options, kind: str = "") -> Verdict:
    """The verdict on ``series`` at ``hour`` (which the series must hold)."""
    hour = pd.Timestamp(hour)
    return judge(float(series.loc[hour]), hour, fit(window(series, hour, options.weeks)), options, kind)


def score_series(series: pd.Series, options: Options, kind: str = "",
                 since: pd.Timestamp | None = None) -> pd.DataFrame:
    """``scores`` of every hour of ``series`` from ``since`` on, one baseline fit per day."""
    scored = series if since is None else series[series.index >= pd.Timestamp(since)]
    frames = [scores(values, fit(window(series, day, options.weeks)), options, kind)
              for day, values in scored.groupby(scored.index.normalize())]
    return pd.concat(frames) if frames else scores(scored, fit(scored.iloc[:0]), options, kind)


def judge_series(series: pd.Series, options: Options, kind: str = "",
                 since: pd.Timestamp | None = None) -> list[Verdict]:
    """The verdict on every hour of ``series`` from ``since`` on, one baseline fit per day."""
    scored = series if since is None else series[series.index >= pd.Timestamp(since)]
    verdicts: list[Verdict] = []
    for day, values in scored.groupby(scored.index.normalize()):
        verdicts += judge_many(values, fit(window(series, day, options.weeks)), options, kind)
    return verdicts


def baseline_rows(series: pd.Series, asof: pd.Timestamp, options: Options) -> tuple[list[dict], Baseline]:
    """Every slot's baseline as rows (``slot``, ``median``, ``mad``, ``weeks``) for the day of ``asof``,
    and the baseline itself (month-end factor, dispersion)."""
    baseline = fit(window(series, pd.Timestamp(asof), options.weeks))
    rows = [{"slot": int(slot), "median": float(r["median"]), "mad": float(r["mad"]), "weeks": int(r["weeks"])}
            for slot, r in baseline.slots.iterrows()]
    return rows, baseline
