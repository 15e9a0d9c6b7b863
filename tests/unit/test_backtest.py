"""The backtest of the volume baselines, small: three weeks of history then one judged week with
injected anomalies of every kind (the full 10-week version is benchmarks/volumes_bench.py)."""

from __future__ import annotations

import pandas as pd

from checks import baselines, synthetic

START = pd.Timestamp("2026-09-07", tz="UTC")


def test_recall_and_precision_on_a_small_generated_series():
    frame, anomalies = synthetic.scenario(START, weeks=4, seed=3, first_week=3, per_week=4)
    labels = {a.label for a in anomalies}
    assert labels == {"spike", "drop", "stuck_relay"} and len(anomalies) == 4
    result = synthetic.backtest(frame, anomalies, baselines.Options(), START + pd.Timedelta(weeks=3))
    assert result["judged"] > 1000
    assert result["recall"] >= 0.9, result["missed"]
    assert result["precision"] >= 0.8, result["false_alarms"]


def test_a_series_without_anomalies_raises_few_alarms_and_the_metric_can_fail():
    # a judged week without a month-end: a history's first month-end has no factor yet (benchmarks/RESULTS.md)
    quiet_start = START + pd.Timedelta(weeks=1)
    frame, _ = synthetic.scenario(quiet_start, weeks=4, seed=5, per_week=0)
    quiet = synthetic.backtest(frame, [], baselines.Options(), quiet_start + pd.Timedelta(weeks=3))
    assert quiet["alarms"] <= 0.002 * quiet["judged"]
    frame, anomalies = synthetic.scenario(START, weeks=4, seed=3, per_week=4)
    deaf = synthetic.backtest(frame, anomalies, baselines.Options(threshold=1000), START + pd.Timedelta(weeks=3))
    assert deaf["recall"] == 0.0  # a detector that never fires fails the recall bar
