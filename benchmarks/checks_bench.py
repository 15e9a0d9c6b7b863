"""Fast checks vs. history size, on PostgreSQL.

Builds one tenant with a few thousand live tokens (jobs started through the lifecycle
services, serials and sessions bulk-written), measures every check, then adds
archived history in steps (cancelled jobs, archived instances, scrapped tokens with
their events, closed sessions, done assignments, voided serials in tenant and core,
published outbox rows) and measures again. The fast checks touch only live rows
through partial indexes, so their time should stay flat while history grows; the
history checks (``reads_history``) grow with it, which is why they run on the slower
schedule.

    python benchmarks/checks_bench.py [--history 50000 200000] [--live-jobs 60] [--repeat 3]

Uses ``HATTHASILPA_BENCH_PG_URL`` (default postgresql://postgres@127.0.0.1:5432/postgres),
creates databases ``hs_bench_core`` and ``hs_bench_t_bench`` and drops them at the end
(``--keep`` leaves them).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from checks import all_checks, run_tenant  # noqa: E402
from lifecycle import graphs, migrate, registry, services  # noqa: E402
from lifecycle.db import Settings, dispose_engines, get_engine  # noqa: E402
from lifecycle.uow import UnitOfWork  # noqa: E402

TENANT = "bench"
GRAPH = {"nodes": [{"code": "cut", "kind": "start"}, {"code": "stitch", "kind": "work"}, {"code": "qc", "kind": "end"}],
         "edges": [["cut", "stitch"], ["stitch", "qc"]]}
PIECES_PER_HISTORY_JOB = 100


def raw(url: str, autocommit: bool = False):
    """A plain psycopg connection: bulk SQL runs as one multi-statement script."""
    return psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://", 1), autocommit=autocommit)


def admin(url: str, db: str | None = None):
    return psycopg.connect(url if db is None else url.rsplit("/", 1)[0] + f"/{db}", autocommit=True)


def setup(admin_url: str) -> Settings:
    base = admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    with admin(admin_url) as conn:
        for db in ("hs_bench_core", "hs_bench_t_bench", "hs_bench_monitor"):
            conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{db}"')
    settings = Settings(core_url=f"{base}/hs_bench_core", tenant_url_template=f"{base}/hs_bench_t_{{tenant}}",
                        monitor_url=f"{base}/hs_bench_monitor")
    migrate.upgrade(settings.core_url, migrate.CORE)
    registry.add_tenant(settings, TENANT, name="Benchmark atelier")
    return settings


def live_floor(settings: Settings, jobs: int, quantity: int) -> None:
    engine = get_engine(settings.tenant_url(TENANT))
    with UnitOfWork(engine) as uow:
        graphs.create_graph(uow, "bag", graphs.parse_graph(GRAPH))
        uow.commit()
    for n in range(jobs):
        with UnitOfWork(engine) as uow:
            services.create_job(uow, f"LIVE-{n:04d}", "TOTE", quantity, "bag")
            services.start_job(uow, f"LIVE-{n:04d}")
            uow.commit()
    with raw(settings.tenant_url(TENANT)) as conn:  # serials for every live token; a session per job
        conn.execute("""
            UPDATE flow_token SET serial_code = 'BENCH-TOTE-L' || lpad(id::text, 9, '0') WHERE serial_code IS NULL;
            INSERT INTO serial_registry (serial_code, tenant_code, sku, job_id, token_id, mode, status,
                                         created_at, updated_at)
            SELECT serial_code, 'bench', 'TOTE', job_id, id, 'STD', 'issued', now() - interval '1 hour',
                   now() - interval '1 hour' FROM flow_token;
            INSERT INTO token_assignment (token_id, operator_id, status, source, created_at, updated_at)
            SELECT min(id), 'op-' || job_id, 'active', 'self', now(), now() FROM flow_token GROUP BY job_id;
            INSERT INTO token_work_session (token_id, assignment_id, operator_id, status, started_at, created_at,
                                            updated_at)
            SELECT a.token_id, a.id, a.operator_id, 'active', now() - interval '1 hour', now(), now()
            FROM token_assignment a;
            UPDATE flow_token SET status = 'active' WHERE id IN (SELECT token_id FROM token_assignment);
        """)
    copy_serials_to_core(settings, "L")


def add_history(settings: Settings, batch: str, tokens: int) -> None:
    """Cancelled jobs whose scrapped tokens, events, sessions and voided serials are history."""
    jobs = max(1, tokens // PIECES_PER_HISTORY_JOB)
    with raw(settings.tenant_url(TENANT)) as conn:
        conn.execute(f"""
            INSERT INTO hatthasilpa_job (job_code, sku, quantity, graph_id, production_mode, status, created_at,
                                         updated_at)
            SELECT 'H{batch}-' || g, 'TOTE', {PIECES_PER_HISTORY_JOB}, (SELECT min(id) FROM routing_graph), 'piece',
                   'cancelled', now() - interval '30 days', now() - interval '30 days'
            FROM generate_series(1, {jobs}) g;
            INSERT INTO job_graph_instance (job_id, graph_id, status, archived_at, created_at, updated_at)
            SELECT id, graph_id, 'archived', now(), now(), now() FROM hatthasilpa_job WHERE job_code LIKE 'H{batch}-%';
            INSERT INTO token_spawn (instance_id, job_id, token_count, created_at)
            SELECT i.id, i.job_id, {PIECES_PER_HISTORY_JOB}, now()
            FROM job_graph_instance i JOIN hatthasilpa_job j ON j.id = i.job_id WHERE j.job_code LIKE 'H{batch}-%';
            INSERT INTO flow_token (instance_id, job_id, spawn_id, piece_index, current_node_id, serial_code, status,
                                    scrapped_at, created_at, updated_at)
            SELECT s.instance_id, s.job_id, s.id, p, (SELECT min(id) FROM routing_node),
                   'BENCH-TOTE-H{batch}-' || s.id || '-' || p, 'scrapped', now(), now(), now()
            FROM token_spawn s JOIN hatthasilpa_job j ON j.id = s.job_id
            CROSS JOIN generate_series(1, {PIECES_PER_HISTORY_JOB}) p WHERE j.job_code LIKE 'H{batch}-%';
            CREATE TEMP TABLE new_tokens ON COMMIT DROP AS
            SELECT t.id, t.job_id, t.serial_code FROM flow_token t JOIN hatthasilpa_job j ON j.id = t.job_id
            WHERE j.job_code LIKE 'H{batch}-%';
            INSERT INTO token_event (token_id, event_type, from_status, to_status, actor, at, created_at)
            SELECT id, 'spawned', NULL, 'ready', 'bench', now(), now() FROM new_tokens
            UNION ALL SELECT id, 'scrapped_by_cancel', 'ready', 'scrapped', 'bench', now(), now() FROM new_tokens;
            INSERT INTO token_assignment (token_id, operator_id, status, source, created_at, updated_at)
            SELECT id, 'op-h', 'done', 'self', now(), now() FROM new_tokens;
            INSERT INTO token_work_session (token_id, assignment_id, operator_id, status, started_at, ended_at,
                                            work_seconds, created_at, updated_at)
            SELECT a.token_id, a.id, 'op-h', 'closed', now() - interval '2 hours', now() - interval '1 hour', 3600,
                   now(), now()
            FROM token_assignment a JOIN new_tokens n ON n.id = a.token_id;
            INSERT INTO serial_registry (serial_code, tenant_code, sku, job_id, token_id, mode, status, created_at,
                                         updated_at)
            SELECT serial_code, 'bench', 'TOTE', job_id, id, 'STD', 'voided', now() - interval '1 day',
                   now() - interval '1 day' FROM new_tokens;
            INSERT INTO serial_outbox (event_id, serial_code, version, payload, published_at, attempts, created_at)
            SELECT md5(serial_code), serial_code, 1, '{{}}', now(), 1, now() - interval '1 day' FROM new_tokens;
        """)
    copy_serials_to_core(settings, f"H{batch}-")


def copy_serials_to_core(settings: Settings, marker: str) -> None:
    """Publish the tenant's serials whose code contains ``marker`` to core, streamed with COPY."""
    with raw(settings.tenant_url(TENANT)) as src, raw(settings.core_url) as dst:
        with src.cursor(name="serials") as cur, dst.cursor().copy(
                "COPY serial_registry (serial_code, tenant_code, sku, job_ref, token_ref, mode, status, created_at, "
                "updated_at) FROM STDIN") as copy:
            # core keeps the job by its code (job_ref) and the token by its id as text (token_ref)
            cur.execute("SELECT r.serial_code, r.tenant_code, r.sku, j.job_code, r.token_id::text, r.mode, r.status, "
                        "r.created_at, r.updated_at FROM serial_registry r JOIN hatthasilpa_job j ON j.id = r.job_id "
                        "WHERE r.serial_code LIKE %s", (f"%{marker}%",))
            for row in cur:
                copy.write_row(row)


def analyze(settings: Settings) -> None:
    for url in (settings.tenant_url(TENANT), settings.core_url):
        with raw(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")


def table_sizes(settings: Settings) -> dict:
    with get_engine(settings.tenant_url(TENANT)).connect() as conn:
        return {t: conn.exec_driver_sql(f"SELECT count(*) FROM {t}").scalar()
                for t in ("flow_token", "token_event", "token_work_session", "serial_registry")}


def measure(settings: Settings, repeat: int) -> dict[str, float]:
    runs: dict[str, list[float]] = {}
    for _ in range(repeat):
        for r in run_tenant(settings, TENANT, all_checks(), sample_size=20, timeout_seconds=600):
            if r.error:
                raise SystemExit(f"{r.check} failed: {r.error}")
            if r.count:  # the floor is clean: a timing of a check that finds rows measures the wrong thing
                raise SystemExit(f"{r.check} found {r.count} rows on the clean floor: {r.sample[:3]}")
            runs.setdefault(r.check, []).append(r.duration_seconds)
    return {check: statistics.median(times) for check, times in runs.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history", type=int, nargs="+", default=[50_000, 200_000],
                        help="total archived tokens after each step")
    parser.add_argument("--live-jobs", type=int, default=60)
    parser.add_argument("--live-quantity", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    admin_url = os.environ.get("HATTHASILPA_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")

    t0 = time.perf_counter()
    settings = setup(admin_url)
    live_floor(settings, args.live_jobs, args.live_quantity)
    analyze(settings)
    steps = [(0, table_sizes(settings), measure(settings, args.repeat))]
    done = 0
    for i, total in enumerate(args.history):
        add_history(settings, str(i), total - done)
        done = total
        analyze(settings)
        steps.append((total, table_sizes(settings), measure(settings, args.repeat)))
    fast = [c.id for c in all_checks() if c.fast]
    slow = [c.id for c in all_checks() if not c.fast]

    print(f"live tokens: {args.live_jobs * args.live_quantity}; build + measure took {time.perf_counter() - t0:.0f}s")
    header = f"{'check':<34}" + "".join(f"{f'hist {h:,}':>16}" for h, _, _ in steps)
    for title, ids in (("fast checks (live rows only), median ms", fast),
                       ("history checks (reads_history), median ms", slow)):
        print(f"\n{title}\n{header}")
        for cid in ids:
            print(f"{cid:<34}" + "".join(f"{m[cid] * 1000:>16.2f}" for _, _, m in steps))
        print(f"{'TOTAL':<34}" + "".join(f"{sum(m[c] for c in ids) * 1000:>16.2f}" for _, _, m in steps))
    print("\nrows:", "; ".join(f"hist {h:,}: " + ", ".join(f"{k} {v:,}" for k, v in sizes.items())
                               for h, sizes, _ in steps))
    base_fast = sum(steps[0][2][c] for c in fast)
    base_slow = sum(steps[0][2][c] for c in slow)
    for h, _, m in steps[1:]:
        print(f"history {h:,}: fast total x{sum(m[c] for c in fast) / base_fast:.2f} of the live-only time; "
              f"history checks x{sum(m[c] for c in slow) / base_slow:.2f}")
    dispose_engines()
    if not args.keep:
        with admin(admin_url) as conn:
            for db in ("hs_bench_core", "hs_bench_t_bench", "hs_bench_monitor"):
                conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


if __name__ == "__main__":
    main()
