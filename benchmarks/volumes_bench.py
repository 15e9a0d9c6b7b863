"""Backtest of the volume baselines on generated series: precision and recall at the default threshold.

Each run generates a 10-week hourly series of every kind (``checks/synthetic.py``: the
workshop's weekly and daily rhythm, counting noise, a 1.5 × month-end push, a quieter
holiday-like day every three weeks) with four injected anomalies a week from week 4 on —
spawn storms, cancellation waves, sessions that stop for three hours, a relay stuck for
four hours — then judges every hour that has three weeks of history, as the hourly asset
check would, and counts:

- precision: alarms (kind, hour) that fall on a cell some anomaly changed, over all alarms;
- recall: anomalies with at least one alarm on their cells, over all anomalies.

    python benchmarks/volumes_bench.py [--seeds 1 2 3 4 5] [--weeks 10] [--threshold 5]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from checks import baselines, synthetic  # noqa: E402

START = pd.Timestamp("2026-09-07", tz="UTC")  # a Monday; the series spans the ends of September and October


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--weeks", type=int, default=10)
    parser.add_argument("--threshold", type=float, default=baselines.DEFAULT_THRESHOLD)
    args = parser.parse_args()
    options = baselines.Options(threshold=args.threshold)
    since = START + pd.Timedelta(weeks=baselines.MIN_WEEKS)
    totals = {"judged": 0, "alarms": 0, "true_alarms": 0, "anomalies": 0, "found": 0}
    print(f"{'seed':>4} {'judged':>7} {'alarms':>6} {'true':>5} {'anomalies':>9} {'found':>5} "
          f"{'precision':>9} {'recall':>6} {'seconds':>7}")
    for seed in args.seeds:
        started = time.perf_counter()
        frame, anomalies = synthetic.scenario(START, args.weeks, seed)
        r = synthetic.backtest(frame, anomalies, options, since)
        for key in totals:
            totals[key] += r[key]
        print(f"{seed:>4} {r['judged']:>7} {r['alarms']:>6} {r['true_alarms']:>5} {r['anomalies']:>9} "
              f"{r['found']:>5} {r['precision']:>9.3f} {r['recall']:>6.3f} {time.perf_counter() - started:>7.1f}")
        for what in r["missed"]:
            print(f"      missed: {what}")
    precision = totals["true_alarms"] / totals["alarms"] if totals["alarms"] else 1.0
    recall = totals["found"] / totals["anomalies"] if totals["anomalies"] else 1.0
    print(f"\nall {len(args.seeds)} series at threshold {args.threshold:g}: {totals['judged']} hours judged, "
          f"{totals['alarms']} alarms ({totals['true_alarms']} on injected anomalies), "
          f"{totals['found']}/{totals['anomalies']} anomalies found")
    print(f"precision {precision:.3f}  recall {recall:.3f}")
    return 0 if precision >= 0.9 and recall >= 0.9 else 1


if __name__ == "__main__":
    sys.exit(main())
