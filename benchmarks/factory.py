"""A factory of N tokens on PostgreSQL, bulk-loaded in SQL, with a known set of faults.

    python benchmarks/factory.py --tokens 1000000 [--prefix hs_factory] [--clean] [--spread-days D] [--drop]

Every row is written by ``INSERT … SELECT generate_series`` inside the databases (no row
passes through Python), in 100-piece jobs:

- completed jobs (the bulk of history): tokens completed on ``qc``, a ``spawned`` and a
  ``completed`` event per token, one assignment (done) and one closed session for every
  tenth piece, serials ``completed``;
- cancelled jobs (every 20th): the hard reset done — tokens scrapped with their
  ``scrapped_by_cancel`` event, instance archived, assignments expired, sessions closed,
  serials ``voided``;
- live jobs (the last ~1 % of jobs; at least twice the fault count): pieces 1–50 live (piece 1 active with an
  open session, piece 2 paused, the rest ready), pieces 51–100 completed; serials
  ``issued`` / ``completed``, their outbox rows published.

Core's registry holds the same serials, computed by the same formulas in the core
database (``job_ref`` the job code, ``token_ref`` the token id), so tenant and core agree
and the clean factory reports 0 on every check of the catalogue.

``inject_faults`` then breaks ``K = max(1, N / 10,000)`` rows (0.01 %) for every check and
returns, per check, the number of rows the catalogue must report (a few faults also
break a second rule; ``EXPECTED_ALSO`` says which). Three faults need a constraint a
legacy database lacked: the factory drops ``ux_job_graph_instance_one_active``,
``ux_token_work_session_one_open`` and ``ux_token_assignment_one_active`` first, and
disables the trigger that keeps scrapped tokens scrapped while it resurrects some.

Progress goes to stderr. Databases are ``{prefix}_core``, ``{prefix}_t_{tenant}`` and
``{prefix}_monitor``; ``--drop`` removes them.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from checks.catalogue import CHECK_IDS  # noqa: E402
from lifecycle import digest, graphs, migrate, registry  # noqa: E402
from lifecycle.db import Settings, dispose_engine, get_engine  # noqa: E402
from lifecycle.uow import UnitOfWork  # noqa: E402

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
PIECES = 100  # pieces per job
LIVE_PIECES = 50  # pieces 1..50 of a live job are live, 51..100 completed
CANCEL_EVERY = 20  # every 20th job of history was cancelled
SESSION_EVERY = 10  # one assignment and one session per ten pieces of history
SKU = "TOTE"
GRAPH = {"nodes": [{"code": "cut", "kind": "start"}, {"code": "stitch", "kind": "work"},
                   {"code": "qc", "kind": "end"}],
         "edges": [["cut", "stitch"], ["stitch", "qc"]]}

# A few faults break a second rule too (the broken row breaks it): check -> checks it also raises.
EXPECTED_ALSO = {
    "multiple_active_instances": "token_count_mismatch",  # the second active instance holds no tokens
    "cancelled_job_not_clean": "token_count_mismatch",  # its reactivated instance holds only scrapped tokens
    "session_on_dead_token": "session_without_assignment",  # the reopened session's assignment is done
}


def progress(message: str) -> None:
    print(f"[factory {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass
class Factory:
    """Where a built factory lives and its shape (job ids are 1..jobs, token id = (job-1)*100 + piece)."""

    admin_url: str
    prefix: str
    tenant: str
    tokens: int
    settings: Settings
    jobs: int = 0
    live_jobs: int = 0
    faults: int = 0
    expected: dict = field(default_factory=dict)
    spread_days: int = 0  # 0: history at two instants; else each job's day spread over this many days up to now

    @property
    def first_live_job(self) -> int:
        return self.jobs - self.live_jobs + 1

    def tenant_url(self) -> str:
        return _plain(self.settings.tenant_url(self.tenant))

    def core_url(self) -> str:
        return _plain(self.settings.core_url)

    def databases(self) -> list[str]:
        return [f"{self.prefix}_core", f"{self.prefix}_t_{self.tenant}", f"{self.prefix}_monitor"]


def _plain(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def _db_url(admin_url: str, name: str) -> str:
    return admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1) + f"/{name}"


def fault_count(tokens: int) -> int:
    return max(1, tokens // 10_000)


def settings_for(admin_url: str, prefix: str) -> Settings:
    return Settings(core_url=_db_url(admin_url, f"{prefix}_core"),
                    tenant_url_template=_db_url(admin_url, f"{prefix}_t_{{tenant}}"),
                    monitor_url=_db_url(admin_url, f"{prefix}_monitor"))


def _kind_sql(g: str, f: Factory) -> str:
    """SQL for the kind of job ``g``: 'live', 'cancelled' or 'completed'."""
    return (f"CASE WHEN {g} >= {f.first_live_job} THEN 'live' WHEN {g} % {CANCEL_EVERY} = 0 THEN 'cancelled' "
            f"ELSE 'completed' END")


def _born(f: Factory, g: str) -> str:
    """SQL for when job ``g`` spawned: 30 days ago, or its place in a history spread evenly up to now."""
    if not f.spread_days:
        return "now() - interval '30 days'"
    step = f.spread_days * 86400 / f.jobs
    return f"(now() - interval '{f.spread_days} days' + ({g} - 1) * interval '{step:.6f} seconds')"


def _done(f: Factory, g: str) -> str:
    """SQL for when history job ``g`` ended (completed or cancelled): a day ago, or an hour after its spawn."""
    return f"({_born(f, g)} + interval '1 hour')" if f.spread_days else "now() - interval '1 day'"


def _token_status_sql(f: Factory) -> str:
    """Token status from its job kind ``k`` and piece ``p``."""
    return (f"CASE WHEN k = 'cancelled' THEN 'scrapped' WHEN k = 'completed' OR p > {LIVE_PIECES} THEN 'completed' "
            f"WHEN p = 1 THEN 'active' WHEN p = 2 THEN 'paused' ELSE 'ready' END")


def serial_sql(token_id: str, tenant: str) -> str:
    return f"'{tenant.upper()}-{SKU}-' || lpad(({token_id})::text, 8, '0')"


def _serial_rows_sql(f: Factory, target: str) -> str:
    """The serial registry rows of every token, by formula: for the tenant or for core."""
    status = ("CASE WHEN k = 'cancelled' THEN 'voided' WHEN k = 'completed' OR p > "
              f"{LIVE_PIECES} THEN 'completed' ELSE 'issued' END")
    at = f"CASE WHEN k = 'live' THEN now() - interval '1 hour' ELSE {_done(f, 'g')} END"
    job_code = "'J' || lpad(g::text, 8, '0')"
    serial = serial_sql("(g - 1) * 100 + p", f.tenant)
    if target == "tenant":
        columns = "serial_code, tenant_code, sku, job_id, token_id, mode, status, version, created_at, updated_at"
        refs = "g, (g - 1) * 100 + p"
    else:
        columns = "serial_code, tenant_code, sku, job_ref, token_ref, mode, status, version, created_at, updated_at"
        refs = f"{job_code}, ((g - 1) * 100 + p)::text"
    return f"""
INSERT INTO serial_registry ({columns})
SELECT {serial}, '{f.tenant}', '{SKU}', {refs}, 'STD', {status}, 1, {at}, {at}
FROM (SELECT g, {_kind_sql('g', f)} AS k FROM generate_series(1, {f.jobs}) g) j
CROSS JOIN generate_series(1, {PIECES}) p
"""


def _run(url: str, statements: list[tuple[str, str]]) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET synchronous_commit = off")
        conn.execute("SET session_replication_role = replica")  # rows consistent by construction: no FK triggers
        conn.execute("SET maintenance_work_mem = '256MB'")
        for label, sql in statements:
            t0 = time.perf_counter()
            cur = conn.execute(sql)
            progress(f"{label}: {cur.rowcount if cur.rowcount >= 0 else '-'} rows in {time.perf_counter() - t0:.1f}s")


def create(admin_url: str, prefix: str, tokens: int, tenant: str = "bench", spread_days: int = 0) -> Factory:
    """Create and migrate the three databases, register the tenant, load the clean factory.

    ``spread_days`` spreads the history's timestamps (spawns, ends, scraps, sessions,
    serials) job by job over that many days up to now, so an hour holds an hour's share."""
    if tokens < 20_000:
        raise ValueError("the factory needs at least 20,000 tokens (200 jobs) to place every fault")
    f = Factory(admin_url, prefix, tenant, tokens, settings_for(admin_url, prefix), spread_days=spread_days)
    f.jobs = tokens // PIECES
    f.faults = fault_count(tokens)
    f.live_jobs = max(f.jobs // 100, 2 * f.faults)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        for name in f.databases():
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
    migrate.upgrade(f.settings.core_url, migrate.CORE)
    registry.add_tenant(f.settings, tenant, name="Benchmark atelier")
    with UnitOfWork(get_engine(f.settings.tenant_url(tenant))) as uow:
        graphs.create_graph(uow, "bag", graphs.parse_graph(GRAPH))
        uow.commit()
    dispose_engine(f.settings.tenant_url(tenant))
    dispose_engine(f.settings.core_url)
    progress(f"{tokens:,} tokens in {f.jobs:,} jobs ({f.live_jobs:,} live), {f.faults:,} faults per check")
    t0 = time.perf_counter()
    _run(f.tenant_url(), _tenant_load(f))
    _run(f.core_url(), [("core serial_registry", _serial_rows_sql(f, "core")), ("core analyze", "ANALYZE")])
    rebuild_digests(f)
    progress(f"loaded in {time.perf_counter() - t0:.1f}s")
    return f


def rebuild_digests(f: Factory) -> None:
    """The bulk load bypasses triggers (``session_replication_role = replica``), as a restore does:
    rebuild both serial digests from the registries afterwards, as an operator would."""
    t0 = time.perf_counter()
    for side, url in (("tenant", f.settings.tenant_url(f.tenant)), ("core", f.settings.core_url)):
        with get_engine(url).connect() as conn, conn.begin():
            digest.rebuild(conn, side, f.tenant)
        dispose_engine(url)
    progress(f"serial digests rebuilt in {time.perf_counter() - t0:.1f}s")


def _tenant_load(f: Factory) -> list[tuple[str, str]]:
    jobs = f"(SELECT g, {_kind_sql('g', f)} AS k FROM generate_series(1, {f.jobs}) g) j"
    pieces = f"{jobs} CROSS JOIN generate_series(1, {PIECES}) p"
    token = "(g - 1) * 100 + p"
    node = "(SELECT id FROM routing_node WHERE node_code = {code!r})"
    cut, stitch, qc = (node.format(code=c) for c in ("cut", "stitch", "qc"))
    ts = _token_status_sql(f)
    done = _done(f, "g")
    # a closed session ends an hour ago, or (spread) when its job ended; live jobs' sessions keep now
    session_end = (f"CASE WHEN t.job_id >= {f.first_live_job} THEN now() - interval '1 hour' "
                   f"ELSE {_done(f, 't.job_id')} END") if f.spread_days else "now() - interval '1 hour'"
    return [
        ("hatthasilpa_job", f"""
INSERT INTO hatthasilpa_job (id, job_code, sku, quantity, graph_id, production_mode, status, created_at, updated_at)
SELECT g, 'J' || lpad(g::text, 8, '0'), '{SKU}', {PIECES}, (SELECT min(id) FROM routing_graph), 'piece',
       CASE k WHEN 'live' THEN 'in_progress' ELSE k END, now() - interval '30 days', now() - interval '1 day'
FROM {jobs}"""),
        ("job_graph_instance", f"""
INSERT INTO job_graph_instance (id, job_id, graph_id, status, archived_at, created_at, updated_at)
SELECT g, g, (SELECT min(id) FROM routing_graph),
       CASE k WHEN 'live' THEN 'active' WHEN 'completed' THEN 'completed' ELSE 'archived' END,
       CASE WHEN k = 'cancelled' THEN {done} END, now() - interval '30 days', now() - interval '1 day'
FROM {jobs}"""),
        ("token_spawn", f"""
INSERT INTO token_spawn (id, instance_id, job_id, token_count, idempotency_key, created_at)
SELECT g, g, g, {PIECES}, NULL, {_born(f, 'g')} FROM {jobs}"""),
        ("flow_token", f"""
INSERT INTO flow_token (id, instance_id, job_id, spawn_id, piece_index, current_node_id, serial_code, status,
                        scrapped_at, completed_at, created_at, updated_at)
SELECT {token}, g, g, g, p,
       CASE WHEN s = 'completed' THEN {qc} WHEN s IN ('active', 'paused') THEN {stitch} ELSE {cut} END,
       {serial_sql(token, f.tenant)}, s,
       CASE WHEN s = 'scrapped' THEN {done} END,
       CASE WHEN s = 'completed' THEN now() - interval '1 day' END, now() - interval '30 days', now() - interval '1 day'
FROM (SELECT g, k, p, {ts} AS s FROM {pieces}) x"""),
        ("token_event", f"""
INSERT INTO token_event (token_id, event_type, from_status, to_status, node_id, actor, at, created_at)
SELECT {token}, 'spawned', NULL, 'ready', {cut}, 'factory', now() - interval '30 days', now() - interval '30 days'
FROM {pieces}
UNION ALL
SELECT {token}, CASE WHEN k = 'cancelled' THEN 'scrapped_by_cancel' ELSE 'completed' END,
       CASE WHEN k = 'cancelled' THEN 'ready' ELSE 'active' END,
       CASE WHEN k = 'cancelled' THEN 'scrapped' ELSE 'completed' END, {qc}, 'factory',
       now() - interval '1 day', now() - interval '1 day'
FROM {pieces} WHERE k <> 'live' OR p > {LIVE_PIECES}"""),
        # one assignment per token that had work: every tenth piece of history, pieces 1 and 2 of live jobs
        ("token_assignment", f"""
INSERT INTO token_assignment (id, token_id, operator_id, status, source, created_at, updated_at)
SELECT {token}, {token}, 'op-' || g, CASE WHEN k = 'live' AND p <= 2 THEN 'active'
                                          WHEN k = 'cancelled' THEN 'expired' ELSE 'done' END,
       'self', now() - interval '2 days', now() - interval '1 day'
FROM {pieces} WHERE p % {SESSION_EVERY} = 1 OR (k = 'live' AND p = 2)"""),
        ("token_work_session", f"""
INSERT INTO token_work_session (id, token_id, assignment_id, operator_id, status, started_at, ended_at,
                                work_seconds, created_at, updated_at)
SELECT a.id, a.token_id, a.id, a.operator_id,
       CASE WHEN a.status = 'active' AND t.status = 'active' THEN 'active'
            WHEN a.status = 'active' THEN 'paused' ELSE 'closed' END,
       CASE WHEN a.status = 'active' THEN now() - interval '2 hours' ELSE {session_end} - interval '1 hour' END,
       CASE WHEN a.status = 'active' THEN NULL ELSE {session_end} END,
       CASE WHEN a.status = 'active' THEN 0 ELSE 3600 END, now() - interval '2 hours', now() - interval '1 hour'
FROM token_assignment a JOIN flow_token t ON t.id = a.token_id"""),
        ("serial_registry", _serial_rows_sql(f, "tenant")),
        ("serial_sequence", f"""
INSERT INTO serial_sequence (tenant_code, sku, last_value, created_at, updated_at)
VALUES ('{f.tenant}', '{SKU}', {f.jobs * PIECES}, now(), now())"""),
        ("serial_outbox (published, live jobs)", f"""
INSERT INTO serial_outbox (event_id, serial_code, version, payload, published_at, attempts, created_at)
SELECT md5(r.serial_code), r.serial_code, 1, '{{}}', r.created_at + interval '1 second', 1, r.created_at
FROM serial_registry r WHERE r.job_id >= {f.first_live_job}"""),
        *((f"sequence of {t}", f"SELECT setval(pg_get_serial_sequence('{t}', 'id'), (SELECT max(id) FROM {t}))")
          for t in ("hatthasilpa_job", "job_graph_instance", "token_spawn", "flow_token", "token_assignment",
                    "token_work_session")),
        ("vacuum analyze", "VACUUM ANALYZE"),
    ]


# --------------------------------------------------------------------------- faults
def _completed_jobs(f: Factory, groups: int) -> list[list[int]]:
    """``groups`` disjoint lists of K completed jobs each, from the oldest."""
    ids = [g for g in range(1, f.first_live_job) if g % CANCEL_EVERY != 0][:groups * f.faults]
    if len(ids) < groups * f.faults:
        raise ValueError("too few completed jobs for the faults")
    return [ids[i * f.faults:(i + 1) * f.faults] for i in range(groups)]


def _cancelled_jobs(f: Factory, groups: int) -> list[list[int]]:
    ids = [g for g in range(CANCEL_EVERY, f.first_live_job, CANCEL_EVERY)][:groups * f.faults]
    if len(ids) < groups * f.faults:
        raise ValueError("too few cancelled jobs for the faults")
    return [ids[i * f.faults:(i + 1) * f.faults] for i in range(groups)]


def _tokens(jobs: list[int], piece: int) -> str:
    return "ARRAY[" + ",".join(str((g - 1) * PIECES + piece) for g in jobs) + "]::int[]"


def _ids(jobs: list[int]) -> str:
    return "ARRAY[" + ",".join(str(g) for g in jobs) + "]::int[]"


def inject_faults(f: Factory) -> dict[str, int]:
    """Break K rows for every check of the catalogue; return the count each check must report."""
    k = f.faults
    r_orphan, r_spawn, r_instances, r_assign, r_dead, r_noassign, r_serials = _completed_jobs(f, 7)
    c_resurrect, c_unclean = _cancelled_jobs(f, 2)
    live_a = list(range(f.first_live_job, f.first_live_job + k))
    live_b = list(range(f.first_live_job + k, f.first_live_job + 2 * k))
    serial = lambda jobs, piece: (  # noqa: E731
        f"ARRAY(SELECT {serial_sql('t', f.tenant)} FROM unnest({_tokens(jobs, piece)}) t)")
    tenant = [
        ("legacy schema: drop three partial unique indexes", """
DROP INDEX ux_job_graph_instance_one_active; DROP INDEX ux_token_work_session_one_open;
DROP INDEX ux_token_assignment_one_active"""),
        ("orphan_token", f"""
UPDATE flow_token SET status = 'ready', completed_at = NULL WHERE id = ANY({_tokens(r_orphan, 1)})"""),
        ("multi_spawn_instance", f"""
INSERT INTO token_spawn (instance_id, job_id, token_count, created_at)
SELECT g, g, {PIECES}, now() FROM unnest({_ids(r_spawn)}) g"""),
        ("token_count_mismatch", f"UPDATE hatthasilpa_job SET quantity = {PIECES + 1} WHERE id = ANY({_ids(live_a)})"),
        ("mixed_token_states", f"""
INSERT INTO flow_token (instance_id, job_id, spawn_id, piece_index, current_node_id, status, scrapped_at,
                        created_at, updated_at)
SELECT g, g, g, {PIECES + 1}, (SELECT min(id) FROM routing_node), 'scrapped', now(), now(), now()
FROM unnest({_ids(live_b)}) g"""),
        ("scrapped_token_resurrected", f"""
ALTER TABLE flow_token DISABLE TRIGGER flow_token_scrapped_is_final;
UPDATE flow_token SET status = 'completed', scrapped_at = NULL, completed_at = now()
WHERE id = ANY({_tokens(c_resurrect, 5)});
ALTER TABLE flow_token ENABLE TRIGGER flow_token_scrapped_is_final"""),
        ("work_queue_pollution", f"""
INSERT INTO token_assignment (token_id, operator_id, status, source, created_at, updated_at)
SELECT t, o, 'active', 'manager', now(), now() FROM unnest({_tokens(live_a, 3)}) t
CROSS JOIN (VALUES ('op-x'), ('op-z')) v(o)"""),
        ("multiple_active_instances", f"""
UPDATE job_graph_instance SET status = 'active' WHERE id = ANY({_ids(r_instances)});
INSERT INTO job_graph_instance (job_id, graph_id, status, created_at, updated_at)
SELECT g, (SELECT min(id) FROM routing_graph), 'active', now(), now() FROM unnest({_ids(r_instances)}) g"""),
        ("cancelled_job_not_clean", f"""
UPDATE job_graph_instance SET status = 'active', archived_at = NULL WHERE id = ANY({_ids(c_unclean)})"""),
        ("session_without_assignment", f"""
UPDATE token_work_session SET assignment_id = NULL WHERE token_id = ANY({_tokens(r_noassign, 11)})"""),
        ("assignment_without_token", f"""
INSERT INTO token_assignment (token_id, operator_id, status, source, created_at, updated_at)
SELECT t, 'op-y', 'active', 'manager', now(), now() FROM unnest({_tokens(r_assign, 2)}) t"""),
        ("duplicate_open_session", f"""
INSERT INTO token_work_session (token_id, assignment_id, operator_id, status, started_at, work_seconds,
                                created_at, updated_at)
SELECT s.token_id, s.assignment_id, s.operator_id, 'paused', now(), 0, now(), now()
FROM token_work_session s WHERE s.token_id = ANY({_tokens(live_a, 2)})"""),
        ("session_on_dead_token", f"""
UPDATE token_work_session SET status = 'paused', ended_at = NULL WHERE token_id = ANY({_tokens(r_dead, 1)})"""),
        ("stale_open_session", f"""
UPDATE token_work_session SET started_at = now() - interval '13 hours' WHERE token_id = ANY({_tokens(live_b, 1)})"""),
        ("serial_outbox_lag", f"""
INSERT INTO serial_outbox (event_id, serial_code, version, payload, attempts, created_at)
SELECT 'lag-' || c, c, 2, '{{}}', 1, now() - interval '10 minutes' FROM unnest({serial(r_serials, 8)}) c"""),
        ("temp_serial_on_production_tenant (tenant)", f"""
UPDATE serial_registry SET mode = 'TEMP' WHERE serial_code = ANY({serial(r_serials, 7)})"""),
        ("duplicate_serial", f"""
UPDATE flow_token t SET serial_code = n.serial_code FROM flow_token n
WHERE t.id = ANY({_tokens(r_serials, 3)}) AND n.id = t.id + 1"""),
        ("token_without_serial", f"UPDATE flow_token SET serial_code = NULL WHERE id = ANY({_tokens(live_b, 4)})"),
        ("analyze", "ANALYZE"),
    ]
    core = [
        ("serial_missing_in_core", f"DELETE FROM serial_registry WHERE serial_code = ANY({serial(r_serials, 5)})"),
        ("serial_missing_in_tenant", f"""
INSERT INTO serial_registry (serial_code, tenant_code, sku, job_ref, token_ref, mode, status, created_at, updated_at)
SELECT '{f.tenant.upper()}-{SKU}-X' || lpad(g::text, 7, '0'), '{f.tenant}', '{SKU}', 'J-GONE', g::text, 'STD',
       'completed', now() - interval '1 day', now() - interval '1 day' FROM generate_series(1, {k}) g"""),
        ("serial_field_mismatch", f"""
UPDATE serial_registry SET sku = 'WALLET' WHERE serial_code = ANY({serial(r_serials, 6)})"""),
        ("duplicate_serial (core: a serial of this tenant held for another)", f"""
UPDATE serial_registry SET tenant_code = 'studio' WHERE serial_code = ANY({serial(r_serials, 9)})"""),
        ("temp_serial_on_production_tenant (core)", f"""
UPDATE serial_registry SET mode = 'TEMP' WHERE serial_code = ANY({serial(r_serials, 7)})"""),
        ("analyze", "ANALYZE"),
    ]
    t0 = time.perf_counter()
    _run(f.tenant_url(), tenant)
    _run(f.core_url(), core)
    progress(f"faults injected in {time.perf_counter() - t0:.1f}s")
    rebuild_digests(f)
    expected = {check: k for check in CHECK_IDS}
    for also in EXPECTED_ALSO.values():
        expected[also] += k
    expected["duplicate_serial"] += k  # one serial on two tokens, and one held in core for another tenant
    f.expected = expected
    return expected


def drop(admin_url: str, prefix: str, tenant: str = "bench") -> None:
    settings = settings_for(admin_url, prefix)
    for url in (settings.core_url, settings.tenant_url(tenant), settings.monitor_url):
        dispose_engine(url)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        for name in (f"{prefix}_core", f"{prefix}_t_{tenant}", f"{prefix}_monitor"):
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=10_000_000)
    parser.add_argument("--prefix", default="hs_factory")
    parser.add_argument("--tenant", default="bench")
    parser.add_argument("--clean", action="store_true", help="load the clean factory only, inject no faults")
    parser.add_argument("--drop", action="store_true", help="drop the factory's databases and exit")
    parser.add_argument("--spread-days", type=int, default=0,
                        help="spread the history's timestamps over this many days up to now (default: two instants)")
    args = parser.parse_args()
    admin_url = os.environ.get("HATTHASILPA_BENCH_PG_URL", DEFAULT_ADMIN_URL)
    if args.drop:
        drop(admin_url, args.prefix, args.tenant)
        return 0
    f = create(admin_url, args.prefix, args.tokens, args.tenant, spread_days=args.spread_days)
    if not args.clean:
        expected = inject_faults(f)
        progress("expected findings: " + ", ".join(f"{c} {n}" for c, n in expected.items()))
    print(f"HATTHASILPA_CORE_URL={f.settings.core_url}")
    print(f"HATTHASILPA_TENANT_URL_TEMPLATE={f.settings.tenant_url_template}")
    print(f"HATTHASILPA_MONITOR_URL={f.settings.monitor_url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
