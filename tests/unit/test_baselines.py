"""Seasonal baselines: the minimum-history guard, drops within the MAD, the month-end factor, thresholds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from checks import baselines
from checks.baselines import ANOMALY, INSUFFICIENT, OK, Options
from lifecycle.errors import ValidationError

START = pd.Timestamp("2026-09-07 00:00", tz="UTC")  # a Monday


def weekly(weeks: int, seed: int = 1, level: float = 40.0) -> pd.Series:
    """A factory's week: busy weekday daytime, quiet nights and weekends, counting noise."""
    index = pd.date_range(START, periods=weeks * 168, freq="h")
    rng = np.random.default_rng(seed)
    day = np.where((index.hour >= 8) & (index.hour < 18), level, 2.0)
    day = np.where(index.day_of_week >= 5, day / 4, day)
    return pd.Series(rng.poisson(day).astype(float), index=index)


def test_no_verdict_before_three_weeks_of_the_same_slot():
    series = weekly(4)
    spike_week2 = START + pd.Timedelta(weeks=2, hours=10)
    series.loc[spike_week2] = 500.0
    early = baselines.judge_hour(series, spike_week2, Options())
    assert early.status == INSUFFICIENT and early.score is None and early.weeks == 2
    spike_week3 = START + pd.Timedelta(weeks=3, hours=10)
    series.loc[spike_week3] = 500.0
    later = baselines.judge_hour(series, spike_week3, Options())
    assert later.weeks == 3 and later.status == ANOMALY and later.score > 5


def test_a_holiday_like_drop_within_the_mad_raises_no_alarm():
    series = weekly(9)
    holiday = START + pd.Timedelta(weeks=8, days=2)  # a Wednesday, at three quarters of its usual work
    hours = pd.date_range(holiday, periods=24, freq="h")
    series.loc[hours] = np.floor(series.loc[hours] * 0.75)
    verdicts = baselines.judge_series(series, Options(), since=holiday)[:24]
    assert [v.status for v in verdicts] == [OK] * 24
    assert min(v.score for v in verdicts) < -1  # the drop is seen, and judged within the band
    assert all(v.low <= v.value <= v.high for v in verdicts)


def test_a_stopped_morning_is_an_anomaly():
    series = weekly(9)
    monday = START + pd.Timedelta(weeks=8, hours=9)
    series.loc[monday] = 0.0
    verdict = baselines.judge_hour(series, monday, Options())
    assert verdict.status == ANOMALY and verdict.score <= -5 and verdict.expected > 30


def test_month_end_factor_only_where_the_data_shows_it():
    series = weekly(9)
    plain = baselines.fit(baselines.window(series, series.index[-1], 8))
    assert plain.month_end_factor == 1.0
    bumped = series.copy()
    month_end = baselines.is_month_end(bumped.index)
    bumped[month_end] = bumped[month_end] * 1.6
    fitted = baselines.fit(baselines.window(bumped, bumped.index[-1], 8))
    assert fitted.month_end_factor == pytest.approx(1.6, rel=0.15)


KINDS = ("jobs_started", "tokens_spawned", "outbox_backlog")


def test_thresholds_per_kind_and_bad_settings():
    options = baselines.options_from({"HATTHASILPA_VOLUME_THRESHOLDS": "outbox_backlog=8, tokens_spawned=6"},
                                     kinds=KINDS)
    assert options.threshold_for("outbox_backlog") == 8 and options.threshold_for("jobs_started") == 5
    assert baselines.options_from({}, kinds=KINDS, weeks=4).weeks == 4
    with pytest.raises(ValidationError):
        baselines.parse_thresholds("tokens_spawned", KINDS)
    with pytest.raises(ValidationError):
        Options(weeks=2)  # fewer weeks than the minimum history
    with pytest.raises(ValidationError):
        baselines.options_from({"HATTHASILPA_VOLUME_THRESHOLD": "high"}, kinds=KINDS)
    with pytest.raises(ValidationError):
        baselines.options_from({"HATTHASILPA_VOLUME_THRESHOLD": "nan"}, kinds=KINDS)


@pytest.mark.parametrize("text, says", [
    ("spawns=6", "unknown kind 'spawns'"),
    ("tokens_spawned=6,Outbox_Backlog=8", "unknown kind 'Outbox_Backlog'"),
    ("tokens_spawned=high", "must be a positive number, not 'high'"),
    ("tokens_spawned=0", "must be a positive number, not '0'"),
    ("tokens_spawned=-2", "must be a positive number, not '-2'"),
    ("tokens_spawned=nan", "must be a positive number, not 'nan'"),
    ("tokens_spawned=inf", "must be a positive number, not 'inf'"),
    ("tokens_spawned=", "must be a positive number, not ''"),
    ("tokens_spawned=6,tokens_spawned=7", "given twice"),
    ("=6", "bad per-kind threshold"),
])
def test_a_bad_per_kind_threshold_is_a_validation_error_naming_the_valid_kinds(text, says):
    with pytest.raises(ValidationError) as raised:
        baselines.options_from({"HATTHASILPA_VOLUME_THRESHOLDS": text}, kinds=KINDS)
    error = raised.value
    assert error.code == "VALIDATION_ERROR" and says in error.message
    assert "HATTHASILPA_VOLUME_THRESHOLDS" in error.message
    if "unknown" in says or "number" in says:
        assert error.hint.endswith("valid kinds: jobs_started, tokens_spawned, outbox_backlog")
