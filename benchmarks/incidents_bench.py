"""What incidents add to recording a run, on PostgreSQL.

A run of the 20-check catalogue on one tenant is recorded two ways on the same monitor
store: the run and its findings alone (the write a run cost before incidents), and
``checks.store.record_run``, which in the same transaction also opens, follows or
resolves each (tenant, check) incident and refreshes its offending keys. Three shapes:

- ``clean``: every check finds zero rows (no incident: one indexed lookup per check);
- ``steady``: N checks find K rows each, the same keys every run (incidents updated,
  K keys' ``last_seen`` refreshed per incident);
- ``churn``: the same, with a fresh half of the keys each run (keys added up to the cap).

    python benchmarks/incidents_bench.py [--runs 30] [--failing 5] [--keys 1000]

Uses ``HATTHASILPA_BENCH_PG_URL`` (default postgresql://postgres@127.0.0.1:5432/postgres);
creates the database ``hs_i13_bench_monitor`` and drops it at the end.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from checks import all_checks, store  # noqa: E402
from checks.runner import CheckResult, RunReport  # noqa: E402
from checks.schema import MONITOR, check_run, finding  # noqa: E402
from lifecycle import migrate  # noqa: E402
from lifecycle.db import dispose_engines, get_engine  # noqa: E402
from lifecycle.uow import utcnow  # noqa: E402

DB = f"hs_incidents_bench_{uuid.uuid4().hex[:8]}"  # unique: runs of the benchmark never share a database


def report(failing: int, keys: int, shift: int, tenant: str) -> RunReport:
    now = utcnow()
    results = []
    for i, check in enumerate(all_checks()):
        found = [{"token_id": shift + k} for k in range(keys)] if i < failing else []
        results.append(CheckResult(check=check.id, tenant=tenant, severity=check.severity.value,
                                   family=check.family.value, count=len(found),
                                   sample=[{**k, "reason": "bench"} for k in found[:20]], started_at=now,
                                   finished_at=now, duration_seconds=0.01, keys=found))
    return RunReport(run_id=None, started_at=now, finished_at=now, results=results)


def record_without_incidents(url: str, rep: RunReport) -> None:
    """The run and its findings only: what recording cost before incidents."""
    store.ensure_migrated(url)
    with get_engine(url).begin() as conn:
        run_id = conn.execute(check_run.insert().values(
            started_at=rep.started_at, finished_at=rep.finished_at, trigger="bench", status="finished",
            violation_count=sum(r.count for r in rep.results), error_count=0, created_at=utcnow(),
        ).returning(check_run.c.id)).scalar_one()
        conn.execute(finding.insert(), [
            {"run_id": run_id, "tenant_code": r.tenant, "check_id": r.check, "family": r.family,
             "severity": r.severity, "count": r.count, "sample": r.sample, "started_at": r.started_at,
             "finished_at": r.finished_at, "duration_seconds": r.duration_seconds, "error": None,
             "created_at": utcnow()} for r in rep.results])


def timed(fn, reports) -> float:
    samples = []
    for rep in reports:
        t0 = time.perf_counter()
        fn(rep)
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--failing", type=int, default=5, help="checks finding rows")
    parser.add_argument("--keys", type=int, default=1000, help="rows found per failing check")
    args, _ = parser.parse_known_args()
    admin_url = os.environ.get("HATTHASILPA_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DB}"')
    url = admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1) + f"/{DB}"
    try:
        migrate.upgrade(url, MONITOR)
        print(f"recording a run of {len(all_checks())} checks; median of {args.runs} runs, PostgreSQL")
        print(f"{'shape':<8} {'findings only ms':>17} {'with incidents ms':>18} {'ratio':>6}")
        shapes = {"clean": (0, 0, lambda i: 0), "steady": (args.failing, args.keys, lambda i: 0),
                  "churn": (args.failing, args.keys, lambda i: i * args.keys // 2)}
        for n, (shape, (failing, keys, shift)) in enumerate(shapes.items()):
            tenant = f"t{n}"
            plain = timed(lambda rep: record_without_incidents(url, rep),
                          [report(failing, keys, shift(i), tenant) for i in range(args.runs)])
            record_run = lambda rep: store.record_run(url, rep, trigger="bench")  # noqa: E731
            record_run(report(failing, keys, 0, tenant))  # incidents opened before timing
            full = timed(record_run, [report(failing, keys, shift(i), tenant) for i in range(1, args.runs + 1)])
            print(f"{shape:<8} {plain:>17.2f} {full:>18.2f} {full / plain:>6.1f}")
    finally:
        dispose_engines()
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)')
    return 0


if __name__ == "__main__":
    sys.exit(main())
