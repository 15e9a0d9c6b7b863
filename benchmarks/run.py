"""The factory benchmark: one table from one run on the same data (``make bench``).

    python benchmarks/run.py [--tokens 1000000] [--prefix hs_bench] [--reladiff PATH] [--keep]

Builds the factory of ``benchmarks/factory.py`` (N tokens and serials, its faults
injected), then measures on it, each mode in its own process as a user runs it:

- the floors: ``count(*)`` and one hash pass over each table a check reads, and the
  issue's floor of the reconciliation, one hash pass over both serial registries;
- ``hatthasilpa check run`` of the whole catalogue (each check's own time from its
  result), of the 15-minute (fast) set, and of the tenant/core reconciliation;
- the same reconciliation by reladiff (``--reladiff``: its command, installed in a
  virtualenv of its own) and by a pandas load-and-merge;
- peak RSS of every process, each time as a ratio to its floor, and the EXPLAIN of
  every history check.

Found = injected is asserted for every mode: a mode that finds other rows than the
factory broke makes the run exit 1 (its timing would be void). Times on a shared
machine are noisy: compare the ratios of one run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import factory  # noqa: E402
from checks import all_checks  # noqa: E402
from checks.catalogue import CATALOGUE  # noqa: E402
from checks.context import tenant_params  # noqa: E402
from checks.engine import bound_query, parameter_names, tenant_sql  # noqa: E402
from lifecycle.db import get_engine  # noqa: E402

RECONCILIATION = ("serial_missing_in_core", "serial_missing_in_tenant", "serial_field_mismatch")
TABLES = ("hatthasilpa_job", "job_graph_instance", "token_spawn", "flow_token", "token_event", "token_assignment",
          "token_work_session", "serial_registry", "serial_outbox", "routing_node")
VIEW_TABLES = {"work_queue": ("flow_token", "job_graph_instance", "hatthasilpa_job", "routing_node",
                              "token_assignment")}
REGISTRY_HASH = "SELECT sum(hashtext(serial_code || sku || status)) FROM serial_registry"

PANDAS_MERGE = """
import sys, pandas as pd, sqlalchemy as sa
tenant, core = sys.argv[1:3]
t = pd.read_sql("SELECT serial_code, sku, status FROM serial_registry", sa.create_engine(tenant))
c = pd.read_sql("SELECT serial_code, sku, status FROM serial_registry", sa.create_engine(core))
m = t.merge(c, on="serial_code", how="outer", suffixes=("_t", "_c"), indicator=True)
d = m[(m["_merge"] != "both") | (m["sku_t"] != m["sku_c"]) | (m["status_t"] != m["status_c"])]
print(d["serial_code"].nunique())
"""


def timed_process(cmd: list[str], env: dict | None = None) -> tuple[float, float, str]:
    """(seconds, peak RSS in MB, stdout) of one process."""
    with tempfile.TemporaryFile(mode="w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, env=env, text=True)
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
        proc.stdout.close()
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            raise SystemExit(f"{' '.join(cmd[:5])} … failed ({proc.returncode}): {err.read()[-2000:]}")
    return seconds, usage.ru_maxrss / 1024, out


def hash_pass(url: str, table: str) -> tuple[float, float]:
    """(count(*) seconds, one hash pass seconds) over a table."""
    with psycopg.connect(url) as conn:
        t0 = time.perf_counter()
        conn.execute(f"SELECT count(*) FROM {table}").fetchone()
        t1 = time.perf_counter()
        conn.execute(f"SELECT sum(hashtext(x::text)) FROM {table} x").fetchone()
        return t1 - t0, time.perf_counter() - t1


def tables_read(check) -> tuple[set, set]:
    """(tenant tables, core tables) a check reads, from its SQL."""
    names = lambda sql: set(re.findall(r"(?:FROM|JOIN)\s+([a-z_]+)", sql or ""))  # noqa: E731
    tenant = set()
    for name in names(check.sql):
        tenant |= set(VIEW_TABLES.get(name, (name,)))
    core = names(check.core_sql)
    if check.compare is not None:
        tenant |= {"serial_registry", "hatthasilpa_job"}
        core |= {"serial_registry"}
    return tenant & set(TABLES), core & {"serial_registry"}


def check_run(f, env, *args) -> tuple[float, float, dict]:
    seconds, rss, out = timed_process([sys.executable, "-m", "hatthasilpa", "check", "run", "--tenant", f.tenant,
                                       "--json", *args], env)
    return seconds, rss, json.loads(out)["data"]


def explain(f) -> list[str]:
    """The plan of every history check that runs SQL in the tenant database."""
    lines = []
    engine, core = get_engine(f.settings.tenant_url(f.tenant)), get_engine(f.settings.core_url)
    with engine.connect() as conn, core.connect() as cconn:
        params = tenant_params(cconn, f.tenant)
        for check in all_checks():
            if not check.reads_history or not check.sql:
                continue
            values = {**params, **{k: None for k in check.keys}}
            sql = tenant_sql(check, conn)
            query = bound_query("EXPLAIN " + sql)
            plan = conn.execute(query, {n: values[n] for n in parameter_names(sql)}).scalars().all()
            lines.append(f"-- {check.id}")
            lines += [f"   {line}" for line in plan if "Scan" in line or "Aggregate" in line or "Join" in line]
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=1_000_000)
    parser.add_argument("--prefix", default="hs_bench")
    parser.add_argument("--timeout", type=float, default=3600.0, help="per-check budget of the measured runs")
    parser.add_argument("--reladiff", default=os.environ.get("RELADIFF"),
                        help="the reladiff command (its own virtualenv); left out when not given")
    parser.add_argument("--keep", action="store_true", help="keep the factory's databases")
    parser.add_argument("--skip-pandas", action="store_true",
                        help="leave out the pandas baseline (it holds both registries in memory: ~770 MB per 1M serials)")
    args = parser.parse_args()
    admin_url = os.environ.get("HATTHASILPA_BENCH_PG_URL", factory.DEFAULT_ADMIN_URL)
    started = time.perf_counter()
    f = factory.create(admin_url, args.prefix, args.tokens)
    expected = factory.inject_faults(f)
    env = {**os.environ, "HATTHASILPA_CORE_URL": f.settings.core_url,
           "HATTHASILPA_TENANT_URL_TEMPLATE": f.settings.tenant_url_template,
           "HATTHASILPA_MONITOR_URL": f.settings.monitor_url}
    try:
        return report(f, expected, env, args, started)
    finally:
        if not args.keep:
            factory.drop(admin_url, args.prefix, f.tenant)


def report(f, expected: dict, env: dict, args, started: float) -> int:
    floors = {("tenant", t): hash_pass(f.tenant_url(), t) for t in TABLES}
    floors[("core", "serial_registry")] = hash_pass(f.core_url(), "serial_registry")
    registry_floor = 0.0
    for url in (f.tenant_url(), f.core_url()):
        with psycopg.connect(url) as conn:
            t0 = time.perf_counter()
            conn.execute(REGISTRY_HASH).fetchone()
            registry_floor += time.perf_counter() - t0

    def floor_of(checks) -> float:
        read = set()
        for check in checks:
            tenant, core = tables_read(check)
            read |= {("tenant", t) for t in tenant} | {("core", t) for t in core}
        return sum(floors[k][1] for k in read)

    timeout = ["--timeout", str(args.timeout)]
    whole_s, whole_rss, whole = check_run(f, env, *timeout)
    fast_s, fast_rss, fast = check_run(f, env, "--fast", *timeout)
    rec_s, rec_rss, rec = check_run(f, env, *[a for c in RECONCILIATION for a in ("--check", c)], *timeout)
    full_s, full_rss, full = check_run(f, env, *[a for c in RECONCILIATION for a in ("--check", c)], "--full-reconcile",
                                       *timeout)
    if not args.skip_pandas:
        pandas_s, pandas_rss, pandas_out = timed_process(
            [sys.executable, "-c", PANDAS_MERGE, f.settings.tenant_url(f.tenant), f.settings.core_url])
    wrong: list[str] = []

    def found(mode: str, results: list[dict], ids) -> str:
        got = {r["check"]: r["count"] for r in results}
        errors = [r["check"] for r in results if r["error"]]
        want = {c: expected[c] for c in ids}
        if errors or got != want:
            wrong.append(f"{mode}: errors {errors}, found {got}, injected {want}")
        return f"{sum(got.values())}/{sum(want.values())}"

    # the same two tables compared on (serial_code; sku, status): missing in core, missing in tenant, sku changed
    differing = 3 * f.faults
    rows = [("floor: count(*) flow_token", floors[("tenant", "flow_token")][0], None, None, ""),
            ("floor: hash pass, both serial registries", registry_floor, None, None, "")]
    for c in all_checks():
        r = next(r for r in whole["results"] if r["check"] == c.id)
        rows.append((f"  {c.id}", r["duration_seconds"], floor_of([c]), None, f"{r['count']}/{expected[c.id]}"))
    rows.append(("check run (all 20)", whole_s, floor_of(all_checks()), whole_rss,
                 found("catalogue", whole["results"], CATALOGUE)))
    fast_ids = [c.id for c in all_checks() if c.fast]
    rows.append(("check run --fast (15-minute set)", fast_s, floors[("tenant", "flow_token")][0], fast_rss,
                 found("fast", fast["results"], fast_ids)))
    rows.append(("reconciliation: ours (3 serial checks)", rec_s, registry_floor, rec_rss,
                 found("reconciliation", rec["results"], RECONCILIATION)))
    rows.append(("reconciliation: ours, full pass (--full-reconcile: both sides summed from the tables)", full_s,
                 registry_floor, full_rss, found("full reconciliation", full["results"], RECONCILIATION)))
    if args.reladiff:
        rd_s, rd_rss, rd_out = timed_process([args.reladiff, f.tenant_url(), "serial_registry", f.core_url(),
                                              "serial_registry", "-k", "serial_code", "-c", "sku", "-c", "status"])
        keys = {m.group(1) for m in re.finditer(r"^[+-] ([^,\s]+),", rd_out, re.M)}
        if len(keys) != differing:
            wrong.append(f"reladiff: {len(keys)} differing serials, injected {differing}")
        rows.append(("reconciliation: reladiff (hashdiff)", rd_s, registry_floor, rd_rss, f"{len(keys)}/{differing}"))
    if not args.skip_pandas:
        if int(pandas_out.strip()) != differing:
            wrong.append(f"pandas: {pandas_out.strip()} differing serials, injected {differing}")
        rows.append(("reconciliation: pandas load + merge", pandas_s, registry_floor, pandas_rss,
                     f"{pandas_out.strip()}/{differing}"))

    print(f"\nfactory: {f.tokens:,} tokens and serials, {f.jobs:,} jobs ({f.live_jobs:,} live), "
          f"{f.faults:,} faults per check; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n")
    print(f"| what | seconds | × floor | peak RSS MB | found/injected |\n|---|---:|---:|---:|---:|")
    for what, seconds, floor, rss, hits in rows:
        ratio = f"{seconds / floor:.1f}" if floor else ""
        print(f"| {what} | {seconds:.2f} | {ratio} | {'' if rss is None else f'{rss:.0f}'} | {hits} |")
    ours = next(s for w, s, *_ in rows if w.startswith("reconciliation: ours"))
    others = {w.split(": ")[1]: s for w, s, *_ in rows if w.startswith("reconciliation: ") and "ours" not in w}
    print("\nreconciliation: ours is " + ", ".join(f"{s / ours:.1f}× faster than {w}" for w, s in others.items()))
    print("\nEXPLAIN of the history checks (scans, joins and aggregates):")
    print("\n".join(explain(f)))
    print(f"\nbuild + measure: {time.perf_counter() - started:.0f}s")
    if wrong:
        print("\nVOID: a mode found other rows than were injected:\n  " + "\n  ".join(wrong), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
