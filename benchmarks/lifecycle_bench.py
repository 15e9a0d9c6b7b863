"""Lifecycle benchmark on PostgreSQL: spawn cost per token, and the work queue against history size.

    .venv/bin/python benchmarks/lifecycle_bench.py [--admin-url postgresql://postgres@127.0.0.1:5432/postgres]

Prints ratios measured in one run (this machine is shared and noisy: compare the ratios,
not the absolute times):

- spawn: per-token cost of starting a 1,000-piece job vs a 10-piece job (bulk inserts
  keep it flat: a ratio well under 1 means the fixed cost is amortized);
- work queue: a 100-row queue read on a tenant with a small history vs the same tenant
  after 200,000 scrapped tokens of cancelled jobs were added (the view joins live rows
  only: a ratio near 1 means history does not slow the queue).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from pathlib import Path

import psycopg
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lifecycle import graphs, migrate, queue, registry, services  # noqa: E402
from lifecycle.db import Settings, dispose_engines, get_engine  # noqa: E402
from checks.schema import MONITOR  # noqa: E402
from lifecycle.uow import UnitOfWork  # noqa: E402

GRAPH = {"nodes": [{"code": "cut", "kind": "start"}, {"code": "stitch", "kind": "work"}, {"code": "qc", "kind": "end"}],
         "edges": [["cut", "stitch"], ["stitch", "qc"]]}


def timed(fn, repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--history", type=int, default=200_000)
    args = parser.parse_args()
    prefix = f"hs_bench_{uuid.uuid4().hex[:8]}"
    base = args.admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    names = [f"{prefix}_core", f"{prefix}_monitor", f"{prefix}_t_bench"]
    with psycopg.connect(args.admin_url, autocommit=True) as conn:
        for name in names:
            conn.execute(f'CREATE DATABASE "{name}"')
    settings = Settings(core_url=f"{base}/{prefix}_core", tenant_url_template=f"{base}/{prefix}_t_{{tenant}}",
                        monitor_url=f"{base}/{prefix}_monitor")
    try:
        migrate.upgrade(settings.monitor_url, MONITOR)
        registry.add_tenant(settings, "bench")
        engine = get_engine(settings.tenant_url("bench"))
        tenant = registry.tenant_info(settings, "bench")
        counter = iter(range(10**9))
        spawned = 0  # tokens the timed starts must have placed

        def run(fn, *a, **kw):
            with UnitOfWork(engine, tenant=tenant) as uow:
                result = fn(uow, *a, **kw)
                uow.commit()
                return result

        run(graphs.create_graph, "bag", graphs.parse_graph(GRAPH))

        def start(quantity: int):
            code = f"J{next(counter)}"
            run(services.create_job, code, "TOTE", quantity, "bag")

            def go():
                nonlocal spawned
                result = run(services.start_job, code)
                if len(result["token_ids"]) != quantity:
                    raise SystemExit(f"VOID: starting {code} spawned {len(result['token_ids'])} of {quantity} tokens")
                spawned += quantity
            return go

        small = statistics.median(timed(start(10), 1) for _ in range(15)) / 10
        large = statistics.median(timed(start(1000), 1) for _ in range(5)) / 1000
        print(f"spawn    per-token: 10-piece job {small * 1e3:.3f} ms, 1000-piece job {large * 1e3:.3f} ms "
              f"-> ratio {large / small:.2f}")

        for _ in range(10):  # the live floor: 10 jobs in progress, 1,000 ready tokens
            start(100)()
        def read():
            tokens = run(queue.read_queue, node="cut", limit=100)["tokens"]
            if len(tokens) != 100:
                raise SystemExit(f"VOID: the queue read returned {len(tokens)} of 100 ready tokens")

        before = timed(read, 30)
        # History: cancelled jobs whose scrapped tokens stay in flow_token forever.
        batch = 1000
        for _ in range(args.history // batch):
            code = f"H{next(counter)}"
            run(services.create_job, code, "TOTE", batch, "bag")
            run(services.start_job, code)
            run(services.cancel_job, code)
        with engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
            total = conn.execute(sa.text("SELECT count(*) FROM flow_token")).scalar()
            scrapped = conn.execute(sa.text("SELECT count(*) FROM flow_token WHERE status = 'scrapped'")).scalar()
        history = args.history // batch * batch
        if total != spawned + history or scrapped != history:
            raise SystemExit(f"VOID: {total:,} tokens ({scrapped:,} scrapped); expected {spawned + history:,} "
                             f"({history:,} scrapped)")
        after = timed(read, 30)
        print(f"queue    100-row read: {before * 1e3:.2f} ms with 1,000 tokens, {after * 1e3:.2f} ms with "
              f"{total:,} tokens -> ratio {after / before:.2f}")
    finally:
        dispose_engines()
        with psycopg.connect(args.admin_url, autocommit=True) as conn:
            for name in names:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return 0


if __name__ == "__main__":
    sys.exit(main())
