"""A demo factory: three tenants, two graphs, jobs in every state.

``atelier`` (production) and ``sandbox`` (a test tenant) are built through the same use
cases the CLI calls, so the demo is also a smoke test of the whole lifecycle; ``legacy``
is a production tenant whose database came from the old ERP and carries the faults of
the risk register (``docs/risks.md``) for the monitor to find. ``reset`` deletes only
the embedded SQLite files of the stores; it refuses on any other database.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from checks import baselines, synthetic, volumes
from checks.report import table

from lifecycle import assignments, graphs, outbox, queue, registry, services, sessions
from lifecycle.db import Settings, display_url, dispose_engines, get_engine
from lifecycle.errors import Conflict, ValidationError
from lifecycle.uow import TenantInfo, UnitOfWork, utcnow

from . import stores

TENANTS = [("atelier", "Atelier Bangkok", False), ("sandbox", "QA sandbox", True),
           ("legacy", "Chiang Mai (legacy ERP import)", False)]
LEGACY = "legacy"

GRAPHS = {
    "tote": {"nodes": [{"code": "cut", "kind": "start"}, {"code": "stitch", "kind": "work"},
                       {"code": "edge", "kind": "work"}, {"code": "qc", "kind": "end"}],
             "edges": [["cut", "stitch"], ["stitch", "edge"], ["edge", "qc"]]},
    "wallet": {"nodes": [{"code": "cut", "kind": "start"}, {"code": "emboss", "kind": "work"},
                         {"code": "stitch", "kind": "work"}, {"code": "assemble", "kind": "work"},
                         {"code": "qc", "kind": "end"}],
               "edges": [["cut", "emboss"], ["cut", "stitch"], ["emboss", "assemble"], ["stitch", "assemble"],
                         ["assemble", "qc"]]},
}

# (how many, label, what happens to each job after create)
SCENARIOS = [
    (4, "planned", ["plan"]),
    (8, "in_progress", ["plan", "start", "work"]),
    (3, "cancelled", ["start", "work", "cancel"]),
    (4, "restarted", ["start", "cancel", "restore", "start", "work"]),
    (2, "restored", ["start", "cancel", "restore"]),
    (2, "archived", ["start", "cancel", "archive"]),
    (3, "completed", ["start", "finish"]),
    (1, "completed and archived", ["start", "finish", "archive"]),
]
OPERATORS = ["nok", "som", "dao", "pim"]


class DemoClock:
    """Simulated shop-floor time: each action takes a few minutes, ending about now."""

    def __init__(self) -> None:
        self.t = utcnow() - dt.timedelta(hours=8)

    def __call__(self) -> dt.datetime:
        return self.t

    def tick(self, minutes: float) -> None:
        self.t = min(self.t + dt.timedelta(minutes=minutes), utcnow())

# step -> the use case and its arguments for a job code
ACTIONS = {"start": lambda job: (services.start_job, job, None, "demo"),
           "cancel": lambda job: (services.cancel_job, job, None, "demo"),
           "restore": lambda job: (services.restore_job, job),
           "archive": lambda job: (services.archive_job, job)}


def _in_uow(engine, tenant: TenantInfo, clock: DemoClock, fn, *args, **kwargs):
    clock.tick(3)
    with UnitOfWork(engine, clock=clock, tenant=tenant) as uow:
        result = fn(uow, *args, **kwargs)
        uow.commit()
        return result


def _token_ids(engine, job_code: str) -> list[int]:
    with engine.connect() as conn:
        return list(conn.execute(sa.text(
            "SELECT t.id FROM flow_token t JOIN hatthasilpa_job j ON j.id = t.job_id "
            "WHERE j.job_code = :c AND t.status = 'ready' ORDER BY t.id"), {"c": job_code}).scalars())


def _work(engine, tenant: TenantInfo, clock: DemoClock, job_code: str, number: int) -> None:
    """Operators take the first pieces: one finishes a step, one pauses, one keeps working."""
    tokens = _token_ids(engine, job_code)
    operator = OPERATORS[number % len(OPERATORS)]
    if len(tokens) >= 1:
        _in_uow(engine, tenant, clock, sessions.start, tokens[0], operator)
        _in_uow(engine, tenant, clock, sessions.complete, tokens[0], operator, _first_branch(engine, tokens[0]))
    if len(tokens) >= 2:
        _in_uow(engine, tenant, clock, sessions.start, tokens[1], operator)
        _in_uow(engine, tenant, clock, sessions.pause, tokens[1], operator)


def _first_branch(engine, token_id: int) -> str | None:
    with UnitOfWork(engine) as uow:
        node = uow.conn.execute(sa.text("SELECT current_node_id FROM flow_token WHERE id = :t"), {"t": token_id}).scalar()
        options = sorted(sessions.successors(uow, node))
    return options[0] if len(options) > 1 else None


def _finish(engine, tenant: TenantInfo, clock: DemoClock, job_code: str, number: int) -> None:
    """Walk every piece of the job through its graph until the job completes."""
    operator = OPERATORS[(number + 1) % len(OPERATORS)]
    while tokens := _token_ids(engine, job_code):
        for token in tokens:
            _in_uow(engine, tenant, clock, sessions.start, token, operator)
            with engine.connect() as conn:
                kind = conn.execute(sa.text("SELECT n.kind FROM flow_token t JOIN routing_node n "
                                            "ON n.id = t.current_node_id WHERE t.id = :t"), {"t": token}).scalar()
            _in_uow(engine, tenant, clock, sessions.complete, token, operator,
                    None if kind == "end" else _first_branch(engine, token))


def _sqlite_files(settings: Settings) -> list[Path]:
    urls = [settings.core_url, settings.monitor_url] + [settings.tenant_url(code) for code, _, _ in TENANTS]
    files = []
    for url in urls:
        parsed = make_url(url)
        if parsed.get_backend_name() != "sqlite":
            raise ValidationError("demo --reset deletes only embedded SQLite stores",
                                  hint="unset the HATTHASILPA_*_URL settings, or drop the databases yourself")
        files.append(Path(parsed.database))
    return files


def reset(settings: Settings) -> None:
    files = _sqlite_files(settings)
    dispose_engines()
    for path in files:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)


def build(settings: Settings, reset_first: bool = False, progress=None) -> dict:
    progress = progress or (lambda message: print(message, file=sys.stderr))
    if reset_first:
        reset(settings)
    stores.upgrade_all(settings)
    if registry.list_tenants(settings):
        raise Conflict("the stores already hold tenants", hint="run `hatthasilpa demo --reset` for a fresh demo factory")
    for code, name, is_test in TENANTS:
        progress(f"demo: tenant {code}")
        clock = DemoClock()
        registry.add_tenant(settings, code, name=name, is_test=is_test, actor="demo")
        engine = get_engine(settings.tenant_url(code))
        tenant = registry.tenant_info(settings, code)
        with UnitOfWork(engine) as uow:
            for graph_code, document in GRAPHS.items():
                graphs.create_graph(uow, graph_code, graphs.parse_graph(document))
            uow.commit()
        number = 0
        for count, label, steps in SCENARIOS:
            for _ in range(count):
                number += 1
                job_code = f"{code[:3].upper()}-{number:03d}"
                graph_code = "wallet" if number % 3 == 0 else "tote"
                _in_uow(engine, tenant, clock, services.create_job, job_code,
                        "WALLET-BF" if graph_code == "wallet" else "TOTE-M", 2 + number % 4, graph_code)
                for step in steps:
                    if step == "plan":
                        _in_uow(engine, tenant, clock, assignments.plan, job_code, "cut", OPERATORS[number % len(OPERATORS)])
                    elif step == "work":
                        _work(engine, tenant, clock, job_code, number)
                    elif step == "finish":
                        _finish(engine, tenant, clock, job_code, number)
                    else:
                        _in_uow(engine, tenant, clock, *ACTIONS[step](job_code))
        progress(f"demo: {number} jobs on {code}")
    relayed = outbox.relay(settings)
    progress(f"demo: {relayed['published']} serial events relayed to core")
    for story in legacy_faults(settings):
        progress(f"demo: legacy ERP fault on {LEGACY}: {story}")
    return summary(settings)


def legacy_faults(settings: Settings) -> list[str]:
    """Write into the ``legacy`` tenant what the old ERP's code paths wrote (docs/risks.md §2), so the
    monitor has something to find. Its database lacks our guard trigger, as a legacy one would."""
    tenant = get_engine(settings.tenant_url(LEGACY))
    core = get_engine(settings.core_url)

    def jobs(status: str) -> list[str]:
        with tenant.connect() as conn:
            return list(conn.execute(sa.text("SELECT job_code FROM hatthasilpa_job WHERE status = :s "
                                             "ORDER BY job_code"), {"s": status}).scalars())

    in_progress, cancelled = jobs("in_progress"), jobs("cancelled")
    stories = []
    with tenant.begin() as conn:
        drop = "DROP TRIGGER flow_token_scrapped_is_final"
        conn.exec_driver_sql(drop + (" ON flow_token" if conn.dialect.name == "postgresql" else ""))
        conn.execute(sa.text("UPDATE hatthasilpa_job SET status = 'cancelled' WHERE job_code = :j"),
                     {"j": in_progress[0]})
        stories.append(f"job {in_progress[0]} cancelled without the hard reset (orphan tokens)")
        conn.execute(sa.text(
            "UPDATE flow_token SET status = 'ready', scrapped_at = NULL WHERE id = (SELECT min(t.id) FROM flow_token t "
            "JOIN hatthasilpa_job j ON j.id = t.job_id WHERE j.job_code = :j AND t.status = 'scrapped')"),
            {"j": cancelled[0]})
        stories.append(f"a scrapped token of {cancelled[0]} resurrected to ready")
        conn.execute(sa.text(
            "UPDATE token_assignment SET status = 'expired' WHERE id = (SELECT min(s.assignment_id) "
            "FROM token_work_session s WHERE s.status IN ('active', 'paused'))"))
        stories.append("an open session's assignment expired under it")
        lost = conn.execute(sa.text("SELECT min(serial_code) FROM serial_registry WHERE status = 'completed'")).scalar()
    with core.begin() as conn:
        conn.execute(sa.text("DELETE FROM serial_registry WHERE serial_code = :c"), {"c": lost})
    stories.append(f"core lost serial {lost}")
    return stories


def summary(settings: Settings) -> dict:
    tenants = []
    for row in registry.list_tenants(settings):
        engine = get_engine(settings.tenant_url(row["tenant_code"]))
        with engine.connect() as conn:
            def by_status(table: str) -> dict:
                return dict(conn.execute(sa.text(f"SELECT status, count(*) FROM {table} GROUP BY status")).all())

            jobs, instances, tokens = by_status("hatthasilpa_job"), by_status("job_graph_instance"), by_status("flow_token")
            work = by_status("token_work_session")
            serials = by_status("serial_registry")
        with UnitOfWork(engine) as uow:
            ready = queue.read_queue(uow, limit=queue.MAX_LIMIT)["count"]
        tenants.append({"tenant": row["tenant_code"], "is_test_tenant": bool(row["is_test_tenant"]),
                        "jobs": jobs, "instances": instances, "tokens": tokens, "sessions": work,
                        "serials": serials, "work_queue": ready})
    return {"tenants": tenants, "core_url": display_url(settings.core_url)}


def render(data: dict) -> str:
    lines = ["Hatthasilpa demo factory", ""]
    for t in data["tenants"]:
        lines.append(f"tenant {t['tenant']} ({'test' if t['is_test_tenant'] else 'production'} tenant), "
                     f"{t['work_queue']} tokens in the work queue")
        for label in ("jobs", "instances", "tokens", "sessions", "serials"):
            counts = ", ".join(f"{k} {v}" for k, v in sorted(t[label].items())) or "-"
            lines.append(f"  {label:<10} {counts}")
        lines.append("")
    lines.append(f"stores: {data['core_url']} (core) and the tenant files beside it")
    return "\n".join(lines)


NEXT_STEPS = """next:
  .venv/bin/hatthasilpa work-queue --tenant atelier --node cut      the sanitized work queue
  .venv/bin/hatthasilpa check run                                     the checks again, as a table
  .venv/bin/hatthasilpa incident show ID                              an incident: its keys since when, its events
  .venv/bin/hatthasilpa incident ack ID --by NAME                     own it (mute: --for 4h; docs/runbook.md, "On call")
  .venv/bin/hatthasilpa repair plan --tenant legacy                   a repair plan for the legacy tenant (docs/runbook.md)
  .venv/bin/hatthasilpa trends --tenant legacy --kind outbox_backlog  the stuck relay's hours against their band
  make ui                                                             dagster dev on the demo's instance: http://127.0.0.1:3000
  .venv/bin/hatthasilpa doctor                                        the prerequisites of every tenant
  .venv/bin/hatthasilpa metrics serve                                 Prometheus metrics on http://127.0.0.1:9464/metrics"""


VOLUME_WEEKS = 8
STUCK_HOURS = 3


def volume_history(settings: Settings, until: dt.datetime) -> list[str]:
    """Generated history of the demo tenants' hourly volumes (``checks/synthetic.py``): eight weeks
    of a workshop's rhythm up to ``until``, the last complete hour, so the baselines have history
    to judge by. On ``legacy`` the old ERP's relay is stuck for the last three hours: nothing
    published, the outbox backlog piling up."""
    stories = []
    start = pd.Timestamp(until) - pd.Timedelta(weeks=VOLUME_WEEKS) + pd.Timedelta(hours=1)
    for number, (code, _, _) in enumerate(TENANTS):
        frame = synthetic.generate(start, VOLUME_WEEKS, seed=100 + number)
        if code == LEGACY:
            stuck = frame.index[-STUCK_HOURS:]
            held = frame.loc[stuck, "serials_relayed"].cumsum() + 40.0  # rows parked before, never relayed
            frame.loc[stuck, "serials_relayed"] = 0.0
            frame.loc[stuck, "outbox_backlog"] += held
            stories.append(f"{code}: relay stuck for the last {STUCK_HOURS} hours, "
                           f"{int(frame['outbox_backlog'].iloc[-1])} outbox rows waiting")
        rows = [{"hour": hour.to_pydatetime(), "kind": kind, "value": value}
                for kind in frame.columns for hour, value in frame[kind].items()]
        with get_engine(settings.monitor_url).begin() as conn:
            volumes.write(conn, code, rows, source="generated")
    return stories


def judge_volumes(settings: Settings, until: dt.datetime) -> list[dict]:
    """Each demo tenant's volumes of the hour ``until`` judged against their baselines, as the hourly
    ``lifecycle_volumes`` asset judges them."""
    options = baselines.Options()
    rows = []
    for code, _, _ in TENANTS:
        for kind, v in volumes.judge_hour(settings, code, until, options).items():
            rows.append({"tenant": code, "kind": kind, "passed": v.status != baselines.ANOMALY, **v.to_dict()})
    return sorted(rows, key=lambda r: (r["tenant"], r["kind"]))


def render_volumes(rows: list[dict]) -> str:
    def number(value):
        return "-" if value is None else f"{value:.1f}"

    lines = [[r["tenant"], r["kind"], number(r["value"]), number(r["expected"]),
              "-" if r["low"] is None else f"{r['low']:.1f} – {r['high']:.1f}",
              "-" if r["score"] is None else f"{r['score']:.2f}", "ANOMALY" if not r["passed"] else r["status"]]
             for r in rows]
    hour = rows[0]["hour"][:16].replace("T", " ") if rows else "-"
    return (table(["TENANT", "KIND", "VALUE", "EXPECTED", "BAND", "SCORE", "STATUS"], lines) +
            f"\n\nlifecycle volumes of the hour {hour} UTC against {VOLUME_WEEKS} weeks of generated history: "
            f"{sum(1 for r in rows if not r['passed'])} anomalies")
