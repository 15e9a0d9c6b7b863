"""``hatthasilpa doctor``: the explicit prerequisites of the lifecycle's DAG operations (docs/risks.md §7.4).

Each check says what must hold, whether it does (``ok``), what was seen (``detail``)
and how to fix it (``hint``):

========================  =======  ==============================================================
name                      tenant   holds when
========================  =======  ==============================================================
core_reachable            —        the core DB answers
core_migrations           —        the core DB is at the head revision
monitor_migrations        —        the monitor store is at the head revision
tenants_registered        —        at least one tenant is registered (skipped with ``--tenant``)
tenant_migrations         T        T's DB answers and is at the head revision
serial_flag               T        ``FF_SERIAL_STD_HAT`` is on, or T is a test tenant (TEMP serials)
graphs_valid              T        every stored routing graph still passes ``graphs.parse_graph``
outbox_backlog            T        no unpublished outbox row is older than the grace period
outbox_parked             T        no outbox row is parked
========================  =======  ==============================================================

Doctor only reads; a SQLite file that does not exist is reported, never created.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from checks.model import OUTBOX_GRACE
from checks.schema import MONITOR
from lifecycle import graphs, migrate, outbox, registry
from lifecycle.db import Settings, get_engine, normalize_url
from lifecycle.errors import HatthasilpaError, Refused
from lifecycle.registry import FF_SERIAL_STD_HAT
from lifecycle.schema import routing_edge, routing_graph, routing_node
from lifecycle.uow import Clock, utcnow

OUTBOX_GRACE_SECONDS = int(OUTBOX_GRACE.default.total_seconds())  # the serial checks' grace period


class PrerequisitesFailed(Refused):
    """At least one prerequisite fails; the whole report rides in the envelope's ``data``."""

    code = "PREREQUISITES_FAILED"

    def __init__(self, message: str, hint: str | None = None, data: dict | None = None, **details: object) -> None:
        super().__init__(message, hint, **details)
        self.data = data


def _check(name: str, ok: bool, detail: str, hint: str | None = None, tenant: str | None = None) -> dict:
    return {"name": name, "tenant": tenant, "ok": ok, "detail": detail, "hint": None if ok else hint}


def _missing_sqlite_file(url: str) -> str | None:
    parsed = make_url(normalize_url(url))
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:") \
            and not Path(parsed.database).exists():
        return f"SQLite file {parsed.database} does not exist"
    return None


def _first_line(exc: Exception) -> str:
    return str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]


def _migrations(name: str, url: str, store: migrate.Store, hint: str, tenant: str | None = None) -> dict:
    missing = _missing_sqlite_file(url)
    if missing:
        return _check(name, False, missing, hint, tenant)
    try:
        current = migrate.current_revision(url)
    except DBAPIError as exc:
        return _check(name, False, f"cannot connect: {_first_line(exc)}", hint, tenant)
    head = migrate.head_revision(store)
    return _check(name, current == head, f"at revision {current or 'none'}, head is {head}", hint, tenant)


def _stored_graphs(conn: sa.Connection) -> list[tuple[str, int, dict]]:
    documents = []
    for graph in conn.execute(sa.select(routing_graph.c.id, routing_graph.c.code, routing_graph.c.version)
                              .order_by(routing_graph.c.code, routing_graph.c.version)):
        nodes = conn.execute(sa.select(routing_node.c.id, routing_node.c.node_code, routing_node.c.kind)
                             .where(routing_node.c.graph_id == graph.id).order_by(routing_node.c.id)).all()
        codes = {n.id: n.node_code for n in nodes}
        edges = conn.execute(sa.select(routing_edge.c.from_node_id, routing_edge.c.to_node_id)
                             .where(routing_edge.c.graph_id == graph.id)).all()
        documents.append((graph.code, graph.version, {
            "nodes": [{"code": n.node_code, "kind": n.kind} for n in nodes],
            "edges": [[codes.get(e.from_node_id, f"#{e.from_node_id}"), codes.get(e.to_node_id, f"#{e.to_node_id}")]
                      for e in edges]}))
    return documents


def _graphs_check(conn: sa.Connection, code: str) -> dict:
    broken = []
    stored = _stored_graphs(conn)
    for graph_code, version, document in stored:
        try:
            graphs.parse_graph(document)
        except HatthasilpaError as exc:
            broken.append(f"{graph_code} v{version}: {exc.message}")
    detail = f"{len(stored)} graph versions valid" if not broken else "; ".join(broken)
    return _check("graphs_valid", not broken, detail,
                  f"create a corrected version: hatthasilpa graph create --tenant {code} --code CODE --file GRAPH.json",
                  code)


def _outbox_checks(conn: sa.Connection, code: str, now: dt.datetime) -> list[dict]:
    counts = outbox.backlog(conn, now)
    age = counts["oldest_pending_age_seconds"]
    lagging = age is not None and age > OUTBOX_GRACE_SECONDS
    detail = f"{counts['pending']} pending ({counts['retrying']} retrying)" + \
        (f", oldest {age:.0f} s old (grace {OUTBOX_GRACE_SECONDS} s)" if age is not None else "")
    return [
        _check("outbox_backlog", not lagging, detail,
               f"run the relay: hatthasilpa outbox relay --tenant {code} (or keep `outbox relay --follow` running)",
               code),
        _check("outbox_parked", counts["parked"] == 0, f"{counts['parked']} parked",
               f"see why: hatthasilpa outbox relay --status --tenant {code}; fix the cause, then "
               f"hatthasilpa outbox relay --tenant {code} --retry-parked", code),
    ]


def _tenant_checks(settings: Settings, tenant: dict, now: dt.datetime) -> list[dict]:
    code = tenant["tenant_code"]
    enabled = bool(tenant["flags"].get(FF_SERIAL_STD_HAT, False))
    if enabled:
        flag = _check("serial_flag", True, f"{FF_SERIAL_STD_HAT} on: standard serials", tenant=code)
    elif tenant["is_test_tenant"]:
        flag = _check("serial_flag", True, f"{FF_SERIAL_STD_HAT} off on a test tenant: TEMP serials", tenant=code)
    else:
        flag = _check("serial_flag", False,
                      f"{FF_SERIAL_STD_HAT} off on a production tenant: piece-mode starts are refused",
                      f"hatthasilpa flag set {code} {FF_SERIAL_STD_HAT} on", code)
    url = settings.tenant_url(code)
    migrations = _migrations("tenant_migrations", url, migrate.TENANT, "hatthasilpa db upgrade", code)
    checks = [migrations, flag]
    if not migrations["ok"]:
        reason = "not checked: the tenant database is not reachable or not migrated"
        return checks + [_check(name, False, reason, "fix tenant_migrations first", code)
                         for name in ("graphs_valid", "outbox_backlog", "outbox_parked")]
    with get_engine(url).connect() as conn:
        checks.append(_graphs_check(conn, code))
        checks += _outbox_checks(conn, code, now)
    return checks


def diagnose(settings: Settings, tenant_code: str | None = None, clock: Clock = utcnow) -> dict:
    """Run every check; return ``{"ok", "failed", "checks"}`` without raising for failures."""
    missing = _missing_sqlite_file(settings.core_url)
    try:
        if missing:
            raise LookupError(missing)
        with get_engine(settings.core_url).connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        core = _check("core_reachable", True, "core DB answers")
    except (DBAPIError, LookupError) as exc:
        core = _check("core_reachable", False, f"cannot reach the core DB: {_first_line(exc)}",
                      "check HATTHASILPA_CORE_URL and that the server is up; a new deployment starts with "
                      "`hatthasilpa db upgrade`")
    checks = [core]
    if core["ok"]:
        checks.append(_migrations("core_migrations", settings.core_url, migrate.CORE, "hatthasilpa db upgrade"))
    checks.append(_migrations("monitor_migrations", settings.monitor_url, MONITOR, "hatthasilpa db upgrade"))
    if core["ok"] and checks[1]["ok"]:
        if tenant_code is not None:
            tenants = [registry.get_tenant(settings, tenant_code)]  # NOT_FOUND for an unknown tenant
        else:
            tenants = [registry.get_tenant(settings, t["tenant_code"]) for t in registry.list_tenants(settings)]
            checks.append(_check("tenants_registered", bool(tenants), f"{len(tenants)} tenants registered",
                                 "register one: hatthasilpa tenant add CODE [--test]"))
        now = clock()
        for tenant in tenants:
            checks += _tenant_checks(settings, tenant, now)
    failed = sum(not c["ok"] for c in checks)
    return {"ok": failed == 0, "failed": failed, "checks": checks}


def doctor(settings: Settings, tenant_code: str | None = None, clock: Clock = utcnow) -> dict:
    """``diagnose``, raising PREREQUISITES_FAILED (exit 3, checks in ``data``) when any check fails."""
    report = diagnose(settings, tenant_code, clock)
    if not report["ok"]:
        first = next(c for c in report["checks"] if not c["ok"])
        where = f" on tenant {first['tenant']}" if first["tenant"] else ""
        raise PrerequisitesFailed(f"{report['failed']} of {len(report['checks'])} prerequisites fail; "
                                  f"first: {first['name']}{where}: {first['detail']}",
                                  hint=first["hint"], data=report)
    return report
