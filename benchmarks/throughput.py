"""Operators' session throughput against pgbench TPC-B on the same server.

    .venv/bin/python benchmarks/throughput.py [--operators 16] [--seconds 20] [--profile]

N operator processes each work their own job's tokens through the lifecycle API exactly as
the CLI does (``registry.tenant_uow`` then ``sessions.start`` and ``sessions.complete`` with
routing, one unit of work each), for a fixed time. Then ``pgbench`` runs TPC-B on a scratch
database with as many clients for the same time. Printed: cycles/s, p50/p95 of a cycle, pgbench
tps and the ratio. The cycles each process counts must equal the completed sessions in the
tenant DB (a benchmark that loses work is void). ``--profile`` also profiles one operator's
cycles in this process and prints where the time goes.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import multiprocessing as mp
import pstats
import re
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lifecycle import graphs, registry, services, sessions  # noqa: E402
from lifecycle.db import Settings, get_engine  # noqa: E402
from scratch import create_stores, drop_stores  # noqa: E402

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
GRAPH = {"nodes": [{"code": "cut", "kind": "start"}, {"code": "stitch", "kind": "work"},
                   {"code": "edge", "kind": "work"}, {"code": "qc", "kind": "end"}],
         "edges": [["cut", "stitch"], ["stitch", "edge"], ["edge", "qc"]]}
TENANT = "bench"
STEPS_PER_TOKEN = 3  # cut, stitch, edge: the third completion reaches qc, the end


def log(message: str) -> None:
    print(f"[throughput {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def build(admin_url: str, prefix: str, operators: int, pieces: int) -> Settings:
    settings = create_stores(admin_url, prefix, TENANT)
    with registry.tenant_uow(settings, TENANT) as uow:
        graphs.create_graph(uow, "bag", graphs.parse_graph(GRAPH))
        uow.commit()
    for n in range(operators):
        with registry.tenant_uow(settings, TENANT) as uow:
            services.create_job(uow, f"J{n}", "TOTE", pieces, "bag")
            uow.commit()
        with registry.tenant_uow(settings, TENANT) as uow:
            services.start_job(uow, f"J{n}")
            uow.commit()
    return settings


def _token_ids(settings: Settings, job_code: str) -> list[int]:
    with registry.tenant_uow(settings, TENANT) as uow:
        return list(uow.conn.execute(sa.text(
            "SELECT t.id FROM flow_token t JOIN hatthasilpa_job j ON j.id = t.job_id WHERE j.job_code = :c "
            "ORDER BY t.id"), {"c": job_code}).scalars())


def cycle(settings: Settings, token_id: int, operator: str) -> None:
    """One session: start, then complete routed to the next node (each its own unit of work, as the CLI)."""
    with registry.tenant_uow(settings, TENANT) as uow:
        sessions.start(uow, token_id, operator)
        uow.commit()
    with registry.tenant_uow(settings, TENANT) as uow:
        sessions.complete(uow, token_id, operator)
        uow.commit()


def operator_loop(settings: Settings, number: int, start_at: float, stop_at: float, out) -> None:
    operator = f"op{number:02d}"
    tokens = _token_ids(settings, f"J{number}")
    while time.time() < start_at:  # all operators begin together
        time.sleep(0.001)
    latencies = []
    for token_id in tokens:
        for _ in range(STEPS_PER_TOKEN):
            if time.time() >= stop_at:
                out.put((number, latencies))
                return
            began = time.perf_counter()
            cycle(settings, token_id, operator)
            latencies.append(time.perf_counter() - began)
    out.put((number, latencies))
    raise SystemExit(f"operator {number} ran out of tokens: give more --pieces")


def run_operators(settings: Settings, operators: int, seconds: float) -> tuple[list[float], float]:
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    start_at = time.time() + 5 + operators * 0.3  # time to start the processes
    procs = [ctx.Process(target=operator_loop, args=(settings, n, start_at, start_at + seconds, out))
             for n in range(operators)]
    for p in procs:
        p.start()
    latencies: list[float] = []
    for _ in procs:
        _, mine = out.get(timeout=seconds + 300)
        latencies += mine
    for p in procs:
        p.join(timeout=60)
        if p.exitcode != 0:
            raise SystemExit(f"an operator process failed (exit {p.exitcode})")
    return latencies, seconds


def completed_sessions(settings: Settings) -> int:
    with registry.tenant_uow(settings, TENANT) as uow:
        return uow.conn.execute(sa.text(
            "SELECT count(*) FROM token_work_session WHERE close_reason = 'completed'")).scalar_one()


def pgbench(admin_url: str, prefix: str, clients: int, seconds: float) -> float:
    name = f"{prefix}_pgbench"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    conninfo = psycopg.conninfo.conninfo_to_dict(admin_url)
    base = ["-h", conninfo.get("host", "127.0.0.1"), "-p", str(conninfo.get("port", 5432)),
            "-U", conninfo.get("user", "postgres")]
    subprocess.run(["pgbench", *base, "-i", "-q", "-s", str(clients), name], check=True, capture_output=True)
    result = subprocess.run(["pgbench", *base, "-n", "-c", str(clients), "-j", "2", "-T", str(int(seconds)), name],
                            check=True, capture_output=True, text=True)
    match = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", result.stdout)
    if not match:
        raise SystemExit(f"pgbench printed no tps:\n{result.stdout}\n{result.stderr}")
    return float(match.group(1))


def profile(settings: Settings, cycles: int) -> str:
    """Profile one operator's cycles in this process (a fresh job) and summarize where time goes."""
    with registry.tenant_uow(settings, TENANT) as uow:
        services.create_job(uow, "JP", "TOTE", cycles, "bag")
        uow.commit()
    with registry.tenant_uow(settings, TENANT) as uow:
        services.start_job(uow, "JP")
        uow.commit()
    tokens = _token_ids(settings, "JP")
    cycle(settings, tokens[0], "opprof")  # connections and caches warm
    statements: dict[str, int] = {}

    def count(conn, cursor, statement, parameters, context, executemany):
        database = conn.engine.url.database
        statements[database] = statements.get(database, 0) + 1

    for url in (settings.core_url, settings.tenant_url(TENANT)):
        sa.event.listen(get_engine(url), "before_cursor_execute", count)
    profiler = cProfile.Profile()
    began = time.perf_counter()
    profiler.enable()
    for token_id in tokens[1:]:
        cycle(settings, token_id, "opprof")
    profiler.disable()
    elapsed = time.perf_counter() - began
    for url in (settings.core_url, settings.tenant_url(TENANT)):
        sa.event.remove(get_engine(url), "before_cursor_execute", count)
    stats = pstats.Stats(profiler)
    waiting = sum(tt for (file, _, name), (_, _, tt, _, _) in stats.stats.items()
                  if name in ("<method 'recv_into' of '_socket.socket' objects>", "wait", "poll")
                  or "select" in name and file == "~")
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(12)
    per = elapsed / (len(tokens) - 1) * 1000
    n = len(tokens) - 1
    per_db = ", ".join(f"{db.rsplit('_', 1)[-1] if db.endswith('_core') else 'tenant'} {c / n:.1f}"
                       for db, c in sorted(statements.items()))
    return (f"one operator alone: {n} cycles, {per:.2f} ms each; waiting on the server {waiting / elapsed:.0%} "
            f"of it; SQL statements per cycle: {per_db} (plus BEGIN/COMMIT per unit of work)\n" + text.getvalue())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--admin-url", default=DEFAULT_ADMIN_URL)
    parser.add_argument("--operators", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--pieces", type=int, default=1000, help="tokens of each operator's job")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args(argv)
    prefix = f"hs_tp_{uuid.uuid4().hex[:8]}"
    try:
        log(f"building {args.operators} jobs of {args.pieces} pieces")
        settings = build(args.admin_url, prefix, args.operators, args.pieces)
        before = completed_sessions(settings)
        log(f"{args.operators} operators for {args.seconds:g} s")
        latencies, seconds = run_operators(settings, args.operators, args.seconds)
        done = completed_sessions(settings) - before
        if done != len(latencies):
            raise SystemExit(f"void: operators counted {len(latencies)} cycles, the tenant holds {done} completed")
        log(f"pgbench TPC-B, {args.operators} clients for {args.seconds:g} s")
        tps = pgbench(args.admin_url, prefix, args.operators, args.seconds)
        rate = len(latencies) / seconds
        q = statistics.quantiles(latencies, n=100)
        print(f"| what | value |\n|---|---:|\n"
              f"| operators | {args.operators} |\n"
              f"| session cycles (start + complete) | {len(latencies)} in {seconds:g} s |\n"
              f"| cycles/s | {rate:.1f} |\n"
              f"| cycle p50 / p95 | {q[49] * 1000:.1f} / {q[94] * 1000:.1f} ms |\n"
              f"| pgbench TPC-B tps ({args.operators} clients) | {tps:.1f} |\n"
              f"| cycles/s ÷ pgbench tps | {rate / tps:.1%} |")
        if args.profile:
            print(profile(settings, 300))
        return 0
    finally:
        drop_stores(args.admin_url, prefix, TENANT, extra=("pgbench",))


if __name__ == "__main__":
    sys.exit(main())
