"""The hourly volumes' cost on a big tenant: counting one hour reads that hour's rows, not the tenant.

    python benchmarks/volumes_cost.py [--tokens 10000000] [--spread-days 28] [--prefix hs_volcost] [--reuse] [--keep]

Builds the clean factory of ``benchmarks/factory.py`` with its history spread over
``--spread-days`` days up to now (each job spawned at its place in that span and ended an
hour later), so an hour holds an hour's share of the tenant, not all of it. Then, for the
last complete hour (what the hourly ``lifecycle_volumes`` asset counts) and an hour in the
middle of the history (what a first run's backfill counts), it runs every statement of
``checks.volumes.hour_queries`` under ``EXPLAIN (ANALYZE, BUFFERS)`` and prints, per
statement:

- **in range**: the rows its predicate selects, counted apart (for the hour's counts, the
  rows whose timestamp falls in the hour; for the backlog, the rows unpublished, and the
  rows published after the hour ended);
- **read**: the rows its plan's scans produced or filtered away (``Actual Rows`` plus
  ``Rows Removed by Filter``, times the loops) — what the statement cost in rows;
- the scan nodes, the buffers touched (shared hit + read) and the execution time.

Then it times ``count_hour`` (one asset run's counting) and a first ``collect`` (the
backfill of ``--backfill-weeks``, then the next hour alone). It exits 1 when a statement
reads more than ``SMALL_TABLE`` rows beyond its range (a sequential scan passes only where
the range is nearly the whole table, as for the backlog of an hour long past, or where the
table is small, as at the small N of the test; a boundary row read past the range passes).
``--reuse`` measures an existing factory of the same prefix; ``--keep`` leaves the
databases (dropped by default).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from pathlib import Path

import psycopg
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import factory  # noqa: E402
from checks import volumes  # noqa: E402
from lifecycle.db import dispose_engine, get_engine  # noqa: E402

SMALL_TABLE = 1_000  # rows a plan may read beyond its range (a small table read whole, a boundary row)
TABLES = ("token_spawn", "flow_token", "job_graph_instance", "token_work_session", "serial_registry", "serial_outbox")

# Each statement's range, counted apart from its plan: the rows it must read at least.
RANGES = {
    "spawns": "SELECT count(*) FROM token_spawn WHERE created_at >= :s AND created_at < :e",
    "tokens_scrapped": "SELECT count(*) FROM flow_token WHERE scrapped_at >= :s AND scrapped_at < :e",
    "jobs_cancelled": "SELECT count(*) FROM job_graph_instance WHERE archived_at >= :s AND archived_at < :e",
    "sessions_opened": "SELECT count(*) FROM token_work_session WHERE started_at >= :s AND started_at < :e",
    "sessions_completed": "SELECT count(*) FROM token_work_session WHERE ended_at >= :s AND ended_at < :e",
    "serials_issued": "SELECT count(*) FROM serial_registry WHERE created_at >= :s AND created_at < :e",
    "serials_relayed": "SELECT count(*) FROM serial_outbox WHERE published_at >= :s AND published_at < :e",
    "outbox_unpublished": "SELECT count(*) FROM serial_outbox WHERE published_at IS NULL",
    "outbox_published_after": "SELECT count(*) FROM serial_outbox WHERE published_at >= :e",
}


def scans(plan: dict):
    if "Relation Name" in plan:
        yield plan
    for child in plan.get("Plans", []):
        yield from scans(child)


def explain(conn: sa.Connection, query: sa.Select) -> dict:
    compiled = query.compile(dialect=conn.dialect)
    (result,) = conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + str(compiled),
                                     compiled.params).scalar()
    plan = result["Plan"]
    found = list(scans(plan))
    return {"read": sum((s["Actual Rows"] + s.get("Rows Removed by Filter", 0)) * s["Actual Loops"] for s in found),
            "nodes": ", ".join(sorted({f"{s['Node Type']} {s.get('Index Name') or s['Relation Name']}"
                                       for s in found})),
            "buffers": plan.get("Shared Hit Blocks", 0) + plan.get("Shared Read Blocks", 0),
            "ms": result["Execution Time"]}


def measure(conn: sa.Connection, label: str, start: dt.datetime) -> list[dict]:
    rows = []
    for name, query in volumes.hour_queries(start).items():
        in_range = conn.execute(sa.text(RANGES[name]), {"s": start, "e": start + volumes.HOUR}).scalar_one()
        rows.append({"hour": label, "statement": name, "in_range": in_range, **explain(conn, query)})
    return rows


def table_rows(conn: sa.Connection) -> dict[str, int]:
    return {t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one() for t in TABLES}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=10_000_000)
    parser.add_argument("--spread-days", type=int, default=28)
    parser.add_argument("--backfill-weeks", type=int, default=volumes.DEFAULT_BACKFILL_WEEKS)
    parser.add_argument("--prefix", default="hs_volcost")
    parser.add_argument("--reuse", action="store_true", help="measure the existing factory of --prefix")
    parser.add_argument("--keep", action="store_true", help="leave the factory's databases (default: drop them)")
    args = parser.parse_args()
    admin_url = os.environ.get("HATTHASILPA_BENCH_PG_URL", factory.DEFAULT_ADMIN_URL)
    settings = factory.settings_for(admin_url, args.prefix)
    try:
        if not args.reuse:
            started = time.perf_counter()
            factory.create(admin_url, args.prefix, args.tokens, spread_days=args.spread_days)
            print(f"factory of {args.tokens:,} tokens, history spread over {args.spread_days} days: loaded in "
                  f"{time.perf_counter() - started:.0f} s")
        with psycopg.connect(factory._plain(settings.tenant_url("bench")), autocommit=True) as pg:
            version = pg.execute("SHOW server_version").fetchone()[0]
        last = volumes.last_complete_hour()
        middle = volumes.hour_start(last - dt.timedelta(days=args.spread_days / 2))
        with get_engine(settings.tenant_url("bench")).connect() as conn:
            sizes = table_rows(conn)
            rows = measure(conn, "last complete", last) + measure(conn, "mid-history", middle)
            conn.rollback()
            timings = []
            for label, start in (("last complete", last), ("mid-history", middle)):
                t0 = time.perf_counter()
                volumes.count_hour(conn, start)
                timings.append((label, time.perf_counter() - t0))
                conn.rollback()
        t0 = time.perf_counter()
        first = volumes.collect(settings, "bench", now=last + volumes.HOUR, backfill_weeks=args.backfill_weeks)
        first_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        nxt = volumes.collect(settings, "bench", now=last + 2 * volumes.HOUR, backfill_weeks=args.backfill_weeks)
        next_s = time.perf_counter() - t0
    finally:
        for url in (settings.tenant_url("bench"), settings.monitor_url, settings.core_url):
            dispose_engine(url)
        if not args.keep:
            factory.drop(admin_url, args.prefix)

    print(f"\nPostgreSQL {version}; tenant rows: " + ", ".join(f"{t} {n:,}" for t, n in sizes.items()))
    print(f"hours: last complete {last.isoformat()}, mid-history {middle.isoformat()}\n")
    print("| hour | statement | rows in range | rows read | buffers | ms | scans |")
    print("|---|---|---:|---:|---:|---:|---|")
    for r in rows:
        print(f"| {r['hour']} | {r['statement']} | {r['in_range']:,} | {r['read']:,} | {r['buffers']:,} | "
              f"{r['ms']:.2f} | {r['nodes']} |")
    print()
    for label, seconds in timings:
        print(f"count_hour, {label} hour: {seconds * 1000:.0f} ms")
    print(f"first collect (backfill): {first['hours']} hours in {first_s:.1f} s; "
          f"next collect: {nxt['hours']} hour in {next_s:.2f} s")
    # a sequential scan passes only where the range is the table, or the table is a few pages
    failures = [f"{r['hour']} {r['statement']}: read {r['read']:,} rows ({r['nodes']}), its range holds "
                f"{r['in_range']:,}" for r in rows if r["read"] > r["in_range"] + SMALL_TABLE]
    for failure in failures:
        print(f"FAIL {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
