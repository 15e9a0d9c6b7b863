"""Scrape cost vs. the length of the monitor store's history, on PostgreSQL.

Fills two monitor stores with the check history of the same tenants and checks (every
catalogue check per tenant): a small history (1,000 findings and 10,000 resolved incidents
by default) and a long one (1,000,000 findings, 100,000 incidents), then scrapes the
monitor's metrics from each in turn, in one run. The history is written at the revision
before the incident counters and the store is then upgraded to head, as an existing store
is, so the migration fills the counters from the incidents; each store's history then ends
with a real run written through ``checks.store.record_run``, the way every run is written,
so ``check_latest`` and ``incident_tally`` hold what a production store would hold. A scrape
reads one row of each per pair (and the unresolved incidents), so the ratio should stay
near 1; for comparison the script also times the reads the exporter used before (the last
finding per pair found with ``max(id) ... group by`` over ``finding``, and the incident
counters and histograms aggregated over ``incident``), which grow with the history.

    python benchmarks/scrape_bench.py [--small 1000] [--large 1000000] [--small-incidents 10000]
                                      [--large-incidents 100000] [--tenants 5] [--repeat 50]

Uses ``HATTHASILPA_BENCH_PG_URL`` (default postgresql://postgres@127.0.0.1:5432/postgres),
creates the databases ``<--db>_small`` and ``<--db>_large`` (default ``hs_bench_scrape``)
and drops them at the end (``--keep`` leaves them). Prints the medians and the ratio; exits 1
when the ratio is above ``--max-ratio`` (default 1.2).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import time
from pathlib import Path

import psycopg
import sqlalchemy as sa
from prometheus_client import generate_latest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from checks import all_checks, metrics, store  # noqa: E402
from checks.schema import MONITOR, finding, incident  # noqa: E402
from checks.runner import CheckResult, RunReport  # noqa: E402
from lifecycle import migrate  # noqa: E402
from lifecycle.db import Settings, dispose_engines, get_engine  # noqa: E402
from lifecycle.uow import utcnow  # noqa: E402
from reconcile.metrics import SOURCES  # noqa: E402

# Every source that reads the monitor store (the outbox backlog reads the tenant DBs, not history).
MONITOR_SOURCES = tuple(s for s in SOURCES if s is not metrics.outbox_families)
HISTORY_REVISION = "0006"  # the last revision before the incident counters: the history is written there
FORMER_BUCKETS = (60.0, 300.0, 900.0, 1800.0, 3600.0, 4 * 3600.0, 12 * 3600.0, 86400.0, 3 * 86400.0, 7 * 86400.0)


def admin(url: str):
    return psycopg.connect(url, autocommit=True)


def fill_history(url: str, pairs: list[tuple[str, str, str]], findings: int) -> None:
    """``findings`` more historical findings: whole runs of every pair, written in bulk by SQL."""
    runs = max(1, findings // len(pairs))
    tenants = [p[0] for p in pairs]
    checks = [p[1] for p in pairs]
    severities = [p[2] for p in pairs]
    with psycopg.connect(url) as conn:
        conn.execute("""
            WITH runs AS (
                INSERT INTO check_run (started_at, finished_at, trigger, status, violation_count, created_at)
                SELECT now() - make_interval(mins => 15 * g), now() - make_interval(mins => 15 * g),
                       'bench', 'finished', 0, now() - make_interval(mins => 15 * g)
                FROM generate_series(%(runs)s, 1, -1) g
                RETURNING id, started_at)
            INSERT INTO finding (run_id, tenant_code, check_id, family, severity, count, sample, started_at,
                                 finished_at, duration_seconds, error, created_at)
            SELECT r.id, p.tenant, p.check_id, 'tokens', p.severity, (r.id + p.n) %% 3, '[]', r.started_at,
                   r.started_at, 0.01, CASE WHEN (r.id + p.n) %% 97 = 0 THEN 'statement timeout' END, r.started_at
            FROM runs r
            CROSS JOIN unnest(%(tenants)s::text[], %(checks)s::text[], %(severities)s::text[])
                 WITH ORDINALITY AS p(tenant, check_id, severity, n)
            ORDER BY r.id, p.n
        """, {"runs": runs, "tenants": tenants, "checks": checks, "severities": severities})
        conn.commit()
    with admin(url) as conn:
        conn.execute("VACUUM ANALYZE")


def fill_incidents(url: str, pairs: list[tuple[str, str, str]], incidents: int) -> None:
    """``incidents`` resolved incidents spread over the pairs, two in three acknowledged, with
    times to acknowledge and to resolve across every bucket of the histograms."""
    per_pair = max(0, incidents // len(pairs))
    with psycopg.connect(url) as conn:
        conn.execute("""
            INSERT INTO incident (tenant_code, check_id, severity, state, count, opened_at, opened_run_id,
                                  last_run_id, last_seen_at, keys_tracked, acknowledged_by, acknowledged_at,
                                  resolved_at, resolved_run_id, ack_seconds, resolve_seconds, created_at, updated_at)
            SELECT p.tenant, p.check_id, p.severity, 'resolved', 0, o.at, 1, 1, o.at + o.resolve, 0,
                   CASE WHEN g %% 3 > 0 THEN 'bench' END, CASE WHEN g %% 3 > 0 THEN o.at + o.ack END,
                   o.at + o.resolve, 1, CASE WHEN g %% 3 > 0 THEN extract(epoch FROM o.ack) END,
                   extract(epoch FROM o.resolve), o.at, o.at
            FROM generate_series(1, %(per_pair)s) g
            CROSS JOIN unnest(%(tenants)s::text[], %(checks)s::text[], %(severities)s::text[])
                 AS p(tenant, check_id, severity)
            CROSS JOIN LATERAL (SELECT now() - make_interval(hours => g) - interval '30 days' AS at,
                                       make_interval(secs => (g * 7919) %% 400000 / 8.0) AS ack,
                                       make_interval(secs => (g * 104729) %% 900000 + 30.5) AS resolve) o
        """, {"per_pair": per_pair, "tenants": [p[0] for p in pairs], "checks": [p[1] for p in pairs],
              "severities": [p[2] for p in pairs]})
        conn.commit()
    with admin(url) as conn:
        conn.execute("VACUUM ANALYZE incident")


def record_latest(url: str, pairs) -> None:
    """A real run of every pair, written through the store like any run."""
    now = utcnow()
    results = [CheckResult(check=c, tenant=t, severity=s, family="tokens", count=1, sample=[], started_at=now,
                           finished_at=now, duration_seconds=0.02) for t, c, s in pairs]
    store.record_run(url, RunReport(None, now, now, results), trigger="bench")


def scrape_seconds(stores: dict[str, Settings], repeat: int) -> dict[str, float]:
    """Median scrape time of each store, the stores scraped in turn (small, large, small, ...) so
    that whatever else the machine does weighs on both alike."""
    registries = {name: metrics.registry_for(settings, sources=MONITOR_SOURCES) for name, settings in stores.items()}
    for registry in registries.values():
        generate_latest(registry)  # warm: connections and caches, as on a running exporter
    times: dict[str, list[float]] = {name: [] for name in registries}
    for _ in range(repeat):
        for name, registry in registries.items():
            started = time.perf_counter()
            generate_latest(registry)
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(t) for name, t in times.items()}


def old_query_seconds(url: str, repeat: int) -> float:
    """The exporter's former read: the last finding per pair by ``max(id) ... group by`` over all findings."""
    latest_ids = sa.select(sa.func.max(finding.c.id)).group_by(finding.c.tenant_code, finding.c.check_id)
    query = sa.select(finding).where(finding.c.id.in_(latest_ids))
    times = []
    with get_engine(url).connect() as conn:
        conn.execute(query).all()  # warm
        for _ in range(repeat):
            started = time.perf_counter()
            conn.execute(query).all()
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def old_incident_query_seconds(url: str, repeat: int) -> float:
    """The exporter's former reads of the incident counters and histograms: aggregates over every incident."""
    counts = sa.select(incident.c.tenant_code, incident.c.check_id, sa.func.count(),
                       sa.func.count(incident.c.resolved_at)).group_by(incident.c.tenant_code, incident.c.check_id)
    histograms = [sa.select(incident.c.tenant_code, incident.c.check_id, sa.func.count(), sa.func.sum(column),
                            *(sa.func.sum(sa.case((column <= b, 1), else_=0)) for b in FORMER_BUCKETS))
                  .where(column.is_not(None)).group_by(incident.c.tenant_code, incident.c.check_id)
                  for column in (incident.c.ack_seconds, incident.c.resolve_seconds)]
    times = []
    with get_engine(url).connect() as conn:
        for _ in range(repeat + 1):  # the first is the warm-up
            started = time.perf_counter()
            for query in (counts, *histograms):
                conn.execute(query).all()
            times.append(time.perf_counter() - started)
    return statistics.median(times[1:])


def count_rows(url: str, table) -> int:
    with get_engine(url).connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=1_000)
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--small-incidents", type=int, default=10_000)
    parser.add_argument("--large-incidents", type=int, default=100_000)
    parser.add_argument("--tenants", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--max-ratio", type=float, default=1.2)
    parser.add_argument("--db", default="hs_bench_scrape")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()

    admin_url = os.environ.get("HATTHASILPA_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    base = admin_url.rsplit("/", 1)[0]
    sizes = {"small": args.small, "large": args.large}
    incident_sizes = {"small": args.small_incidents, "large": args.large_incidents}
    dbs = {name: f"{args.db}_{name}" for name in sizes}
    raw = {name: f"{base}/{db}" for name, db in dbs.items()}
    urls = {name: url.replace("postgresql://", "postgresql+psycopg://", 1) for name, url in raw.items()}
    with admin(admin_url) as conn:
        for db in dbs.values():
            conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{db}"')
    pairs = [(f"t{n:02d}", c.id, c.severity.value) for n in range(args.tenants) for c in all_checks()]
    try:
        rows, incident_rows = {}, {}
        for name, url in urls.items():  # the same pairs; only the length of the history differs
            migrate.upgrade(url, MONITOR, HISTORY_REVISION)
            fill_history(raw[name], pairs, sizes[name] - len(pairs))
            fill_incidents(raw[name], pairs, incident_sizes[name] - len(pairs))
            migrate.upgrade(url, MONITOR)
            record_latest(url, pairs)  # opens one incident per pair
            rows[name], incident_rows[name] = count_rows(url, finding), count_rows(url, incident)
            expected = len(pairs) * (1 + max(0, (incident_sizes[name] - len(pairs)) // len(pairs)))
            if rows[name] != sizes[name]:
                raise SystemExit(f"VOID: the {name} history holds {rows[name]:,} findings, not {sizes[name]:,}")
            if incident_rows[name] != expected:
                raise SystemExit(f"VOID: the {name} history holds {incident_rows[name]:,} incidents, not {expected:,}")
        scrape = scrape_seconds({name: Settings(core_url=url, tenant_url_template=url, monitor_url=url)
                                 for name, url in urls.items()}, args.repeat)
        old = {name: old_query_seconds(url, max(3, args.repeat // 5)) for name, url in urls.items()}
        old_incidents = {name: old_incident_query_seconds(url, max(3, args.repeat // 5)) for name, url in urls.items()}
    finally:
        dispose_engines()
        if not args.keep:
            with admin(admin_url) as conn:
                for db in dbs.values():
                    conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')

    small, large, small_old, large_old = scrape["small"], scrape["large"], old["small"], old["large"]
    ratio = large / small
    print(f"pairs (tenant, check): {len(pairs)}  ({args.tenants} tenants x {len(all_checks())} checks)")
    print(f"{'findings':>10} {'incidents':>10} {'scrape (median of ' + str(args.repeat) + ')':>26}"
          f" {'former max(id) query':>22} {'former incident aggregates':>28}")
    for name in ("small", "large"):
        print(f"{rows[name]:>10,} {incident_rows[name]:>10,} {scrape[name] * 1000:>23.2f} ms"
              f" {old[name] * 1000:>19.2f} ms {old_incidents[name] * 1000:>25.2f} ms")
    print(f"scrape ratio large/small: {ratio:.2f} (limit {args.max_ratio});"
          f" former query ratio: {large_old / small_old:.1f};"
          f" former incident aggregates ratio: {old_incidents['large'] / old_incidents['small']:.1f}")
    return 0 if ratio <= args.max_ratio else 1


if __name__ == "__main__":
    sys.exit(main())
