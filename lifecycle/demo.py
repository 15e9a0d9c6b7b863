"""A demo factory: two tenants, two graphs, jobs in every state.

Built through the same use cases the CLI calls, so the demo is also a smoke test of
the whole lifecycle. ``reset`` deletes only the embedded SQLite files of the stores;
it refuses on any other database.
"""

from __future__ import annotations

import sys
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from . import graphs, outbox, queue, registry, services
from .db import Settings, dispose_engines, get_engine
from .errors import Conflict, ValidationError
from .uow import TenantInfo, UnitOfWork

TENANTS = [("atelier", "Atelier Bangkok", False), ("sandbox", "QA sandbox", True)]

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

# (how many, what happens to each job after create)
SCENARIOS = [
    (4, "planned", []),
    (8, "in_progress", ["start"]),
    (3, "cancelled", ["start", "cancel"]),
    (4, "restarted", ["start", "cancel", "restore", "start"]),
    (2, "restored", ["start", "cancel", "restore"]),
    (2, "archived", ["start", "cancel", "archive"]),
]

ACTIONS = {"start": services.start_job, "cancel": services.cancel_job, "restore": services.restore_job,
           "archive": services.archive_job}


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
    registry.upgrade_all(settings)
    if registry.list_tenants(settings):
        raise Conflict("the stores already hold tenants", hint="run `hatthasilpa demo --reset` for a fresh demo factory")
    for code, name, is_test in TENANTS:
        progress(f"demo: tenant {code}")
        registry.add_tenant(settings, code, name=name, is_test=is_test, actor="demo")
        engine = get_engine(settings.tenant_url(code))
        tenant = TenantInfo.from_registry(registry.get_tenant(settings, code))
        with UnitOfWork(engine, tenant=tenant) as uow:
            for graph_code, document in GRAPHS.items():
                graphs.create_graph(uow, graph_code, graphs.parse_graph(document))
            uow.commit()
        number = 0
        for count, label, steps in SCENARIOS:
            for _ in range(count):
                number += 1
                job_code = f"{code[:3].upper()}-{number:03d}"
                graph_code = "wallet" if number % 3 == 0 else "tote"
                with UnitOfWork(engine, tenant=tenant) as uow:
                    services.create_job(uow, job_code, "WALLET-BF" if graph_code == "wallet" else "TOTE-M",
                                        2 + number % 4, graph_code)
                    uow.commit()
                for step in steps:
                    with UnitOfWork(engine, tenant=tenant) as uow:
                        ACTIONS[step](uow, job_code, actor="demo")
                        uow.commit()
        progress(f"demo: {number} jobs on {code}")
    relayed = outbox.relay(settings)
    progress(f"demo: {relayed['published']} serial events relayed to core")
    return summary(settings)


def summary(settings: Settings) -> dict:
    tenants = []
    for row in registry.list_tenants(settings):
        engine = get_engine(settings.tenant_url(row["tenant_code"]))
        with engine.connect() as conn:
            def by_status(table: str) -> dict:
                return dict(conn.execute(sa.text(f"SELECT status, count(*) FROM {table} GROUP BY status")).all())

            jobs, instances, tokens = by_status("hatthasilpa_job"), by_status("job_graph_instance"), by_status("flow_token")
            serials = by_status("serial_registry")
        with UnitOfWork(engine) as uow:
            ready = queue.read_queue(uow, limit=queue.MAX_LIMIT)["count"]
        tenants.append({"tenant": row["tenant_code"], "is_test_tenant": bool(row["is_test_tenant"]),
                        "jobs": jobs, "instances": instances, "tokens": tokens, "serials": serials,
                        "work_queue": ready})
    return {"tenants": tenants, "core_url": settings.core_url}


def _counts(by_status: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(by_status.items())) or "-"


def render(data: dict) -> str:
    fmt = _counts
    lines = ["Hatthasilpa demo factory", ""]
    header = f"{'tenant':<10} {'kind':<6} {'jobs by status':<58} {'instances':<26} {'tokens':<34} queue"
    lines.append(header)
    lines.append("-" * len(header))
    for t in data["tenants"]:
        lines.append(f"{t['tenant']:<10} {'test' if t['is_test_tenant'] else 'prod':<6} {fmt(t['jobs']):<58} "
                     f"{fmt(t['instances']):<26} {fmt(t['tokens']):<34} {t['work_queue']}")
    lines += [""] + [f"serials on {t['tenant']}: {fmt(t['serials'])}" for t in data["tenants"]]
    lines += ["", f"stores: {data['core_url']} (core) and the tenant files beside it",
              "try:    .venv/bin/hatthasilpa work-queue --tenant atelier --node cut",
              "        .venv/bin/hatthasilpa doctor"]
    return "\n".join(lines)
