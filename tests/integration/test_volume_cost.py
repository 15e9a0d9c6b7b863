"""The hourly volumes cost one hour's rows: every count is an index range scan (PostgreSQL EXPLAIN ANALYZE)."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from checks import volumes
from lifecycle import services

H = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.timezone.utc)
CYCLES = 20_000  # one spawn cycle a minute for about two weeks, each with a token, a session, a serial, an event
BIG = ("token_spawn", "flow_token", "token_work_session", "serial_registry", "serial_outbox")

HISTORY = """
INSERT INTO token_spawn (instance_id, job_id, token_count, created_at)
SELECT :instance, :job, 1, CAST(:h AS timestamptz) - make_interval(mins => g) FROM generate_series(1, :n) g;
INSERT INTO flow_token (instance_id, job_id, spawn_id, piece_index, current_node_id, status, scrapped_at,
                        created_at, updated_at)
SELECT :instance, :job, s.id, 1, :node, 'scrapped', s.created_at, s.created_at, s.created_at
FROM token_spawn s WHERE s.token_count = 1 AND s.id NOT IN (SELECT spawn_id FROM flow_token);
INSERT INTO token_work_session (token_id, operator_id, status, started_at, ended_at, close_reason, created_at,
                                updated_at)
SELECT t.id, 'op', 'closed', t.created_at, t.created_at + interval '20 seconds', 'completed', t.created_at, t.created_at
FROM flow_token t WHERE t.status = 'scrapped';
INSERT INTO serial_registry (serial_code, tenant_code, sku, job_id, token_id, mode, status, created_at, updated_at)
SELECT 'S-' || t.id, 'atelier', 'TOTE', t.job_id, t.id, 'STD', 'issued', t.created_at, t.created_at
FROM flow_token t WHERE t.status = 'scrapped';
INSERT INTO serial_outbox (event_id, serial_code, version, payload, published_at, created_at)
SELECT 'E-' || r.serial_code, r.serial_code, 1, '{}', r.created_at + interval '30 seconds', r.created_at
FROM serial_registry r WHERE r.serial_code LIKE 'S-%';
"""


def _scans(plan: dict):
    if "Relation Name" in plan:
        yield plan
    for child in plan.get("Plans", []):
        yield from _scans(child)


def test_each_hourly_count_reads_only_its_hour(pg_factory):
    factory = pg_factory
    with factory.uow() as uow:
        services.create_job(uow, "J-BIG", "TOTE", 1, "bag", mode="batch")
        started = services.start_job(uow, "J-BIG")
        uow.commit()
    job, node = factory.rows("SELECT job_id, current_node_id FROM flow_token WHERE id = :t", t=started["token_ids"][0])[0]
    with factory.tenant_engine().begin() as conn:
        for statement in filter(str.strip, HISTORY.split(";")):
            conn.execute(sa.text(statement), {"instance": started["instance_id"], "job": job, "node": node,
                                              "h": H, "n": CYCLES})
        for table in BIG:
            conn.exec_driver_sql(f"ANALYZE {table}")
    assert factory.scalar("SELECT count(*) FROM serial_outbox") >= CYCLES
    hour = H - volumes.HOUR  # the last complete hour when H has just begun
    read: dict[str, int] = {}
    with factory.tenant_engine().connect() as conn:
        assert volumes.count_hour(conn, hour)["tokens_spawned"] == 60.0
        for name, query in volumes.hour_queries(hour).items():
            compiled = query.compile(dialect=conn.dialect)
            (plan,) = conn.exec_driver_sql("EXPLAIN (ANALYZE, FORMAT JSON) " + str(compiled),
                                           compiled.params).scalar()
            scans = list(_scans(plan["Plan"]))
            assert all(s["Node Type"] != "Seq Scan" for s in scans if s["Relation Name"] in BIG), (name, scans)
            read[name] = sum((s["Actual Rows"] + s.get("Rows Removed by Filter", 0)) * s["Actual Loops"]
                             for s in scans)
    # one hour holds 60 rows of each kind; the tables hold 20 000
    assert max(read.values()) <= 3 * 60, read


def test_the_big_tenant_cost_benchmark_at_small_n_reads_each_hours_range_only(pg_admin_url):
    """benchmarks/volumes_cost.py, as run at millions of tokens for benchmarks/RESULTS.md, at 20,000."""
    admin_url, reason = pg_admin_url
    if admin_url is None:
        pytest.fail(reason, pytrace=False)
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, str(root / "benchmarks" / "volumes_cost.py"), "--tokens", "20000",
                           "--spread-days", "2", "--backfill-weeks", "1",
                           "--prefix", f"hs_volcost_{uuid.uuid4().hex[:8]}"],
                          capture_output=True, text=True, cwd=root,
                          env={"HATTHASILPA_BENCH_PG_URL": admin_url, "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = re.findall(r"^\| (last complete|mid-history) \| (\w+) \| ([\d,]+) \| ([\d,]+) \|", proc.stdout, re.M)
    assert len(rows) == 2 * len(volumes.hour_queries(H))
    assert sum(int(in_range.replace(",", "")) for *_, in_range, _ in rows) > 0  # the hours hold rows
    assert "first collect (backfill): 168 hours" in proc.stdout and "next collect: 1 hour" in proc.stdout
