"""The ``hatthasilpa`` command line (SPEC §5.1).

Every lifecycle command prints exactly one JSON envelope on stdout and logs only to
stderr; exit codes are 0 (success), 2 (bad input), 3 (refused transition or
conflict) and 1 (internal error). This is the only module that turns errors into
envelopes and exit codes.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import traceback
import uuid
from typing import Callable

from sqlalchemy.exc import DBAPIError, IntegrityError

from . import assignments, doctor, graphs, lineage, outbox, queue, registry, services, sessions
from .db import Settings, get_engine
from .errors import Conflict, HatthasilpaError, InternalError, ValidationError
from .uow import TenantInfo, UnitOfWork

log = logging.getLogger("hatthasilpa")


class ArgumentError(ValidationError):
    pass


class Parser(argparse.ArgumentParser):
    """An argparse parser whose usage errors become VALIDATION_ERROR envelopes."""

    def error(self, message: str):  # noqa: D401 - argparse API
        raise ArgumentError(f"{self.prog}: {message}", hint=f"see `{self.prog} --help`")


def whole_number(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    return value


# --------------------------------------------------------------------------- context
class Context:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.settings = Settings.from_env()
        self.actor = args.actor or os.environ.get("HATTHASILPA_ACTOR") or "cli"
        self.text: str | None = None  # a readable rendering that replaces the envelope on stdout

    def tenant_uow(self, code: str) -> UnitOfWork:
        tenant = TenantInfo.from_registry(registry.get_tenant(self.settings, code))
        return UnitOfWork(get_engine(self.settings.tenant_url(code)), tenant_code=code, tenant=tenant)

    def in_tenant(self, code: str, use_case: Callable, *args, commit: bool = True, **kwargs) -> dict:
        with self.tenant_uow(code) as uow:
            result = use_case(uow, *args, **kwargs)
            if commit:
                uow.commit()
            return result


# --------------------------------------------------------------------------- handlers
def cmd_db_upgrade(ctx: Context) -> dict:
    return registry.upgrade_all(ctx.settings)


def cmd_tenant_add(ctx: Context) -> dict:
    a = ctx.args
    return registry.add_tenant(ctx.settings, a.code, name=a.name, is_test=a.test, actor=ctx.actor)


def cmd_tenant_list(ctx: Context) -> dict:
    return {"tenants": registry.list_tenants(ctx.settings)}


def cmd_flag_set(ctx: Context) -> dict:
    a = ctx.args
    return registry.set_flag(ctx.settings, a.tenant, a.flag, a.value, actor=ctx.actor)


def cmd_graph_create(ctx: Context) -> dict:
    a = ctx.args
    spec = graphs.parse_graph(graphs.load_graph_file(a.file))
    return ctx.in_tenant(a.tenant, graphs.create_graph, a.code, spec)


def cmd_job_create(ctx: Context) -> dict:
    a = ctx.args
    return ctx.in_tenant(a.tenant, services.create_job, a.code, a.sku, a.quantity, a.graph, a.mode)


JOB_ACTIONS = {
    "start": services.start_job,
    "cancel": services.cancel_job,
    "restore": services.restore_job,
    "archive": services.archive_job,
}


def cmd_job_action(ctx: Context) -> dict:
    a = ctx.args
    if a.action == "show":
        return ctx.in_tenant(a.tenant, services.show_job, a.job, commit=False)
    return ctx.in_tenant(a.tenant, JOB_ACTIONS[a.action], a.job, idempotency_key=a.idempotency_key, actor=ctx.actor)


def cmd_job_list(ctx: Context) -> dict:
    a = ctx.args
    return {"jobs": ctx.in_tenant(a.tenant, services.list_jobs, a.status, commit=False)}


def cmd_token_spawn(ctx: Context) -> dict:
    a = ctx.args
    return ctx.in_tenant(a.tenant, services.spawn_tokens, a.job, idempotency_key=a.idempotency_key, actor=ctx.actor)


def cmd_token_show(ctx: Context) -> dict:
    a = ctx.args
    return ctx.in_tenant(a.tenant, lineage.show_token, a.token_id, commit=False)


def cmd_assign_plan(ctx: Context) -> dict:
    a = ctx.args
    return ctx.in_tenant(a.tenant, assignments.plan, a.job, a.node, a.operator)


SESSION_ACTIONS = {"start": sessions.start, "pause": sessions.pause, "resume": sessions.resume}


def cmd_session(ctx: Context) -> dict:
    a = ctx.args
    if a.action == "complete":
        return ctx.in_tenant(a.tenant, sessions.complete, a.token_id, a.operator, a.next)
    if a.next is not None:
        raise ValidationError("--next applies only to `session complete`", hint="leave out --next")
    return ctx.in_tenant(a.tenant, SESSION_ACTIONS[a.action], a.token_id, a.operator)


def cmd_work_queue(ctx: Context) -> dict:
    a = ctx.args
    return ctx.in_tenant(a.tenant, queue.read_queue, node=a.node, operator=a.operator, limit=a.limit, commit=False)


def cmd_outbox_relay(ctx: Context) -> dict:
    a = ctx.args
    tenants = [a.tenant] if a.tenant else None
    if a.status:
        return outbox.status(ctx.settings, tenants)
    options = outbox.RelayOptions(batch_size=a.batch_size, max_attempts=a.max_attempts)
    requeued = outbox.retry_parked(ctx.settings, tenants) if a.retry_parked else {}
    progress = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    if a.follow:
        with outbox.stop_on_signals() as stop:
            result = outbox.follow(ctx.settings, tenants, options, progress=progress, stop=stop, interval=a.interval)
    else:
        result = outbox.relay(ctx.settings, tenants, options, progress=progress)
    return {**result, "requeued": requeued}


def cmd_doctor(ctx: Context) -> dict:
    return doctor.doctor(ctx.settings, ctx.args.tenant)


def cmd_metrics_serve(ctx: Context) -> dict:
    from checks import metrics

    a = ctx.args
    try:
        metrics.serve(ctx.settings, a.host, a.port)
    except OSError as exc:
        raise ValidationError(f"cannot listen on {a.host}:{a.port}: {exc.strerror}",
                              hint="pick a free port with --port, or stop whatever holds it") from exc
    ctx.text = "metrics server stopped"
    return {"host": a.host, "port": a.port, "stopped": True}


def cmd_check_list(ctx: Context) -> dict:
    from checks import commands

    data = commands.list_checks()
    ctx.text = None if ctx.args.json else commands.render_list(data)
    return data


def cmd_check_run(ctx: Context) -> dict:
    from checks import commands

    a = ctx.args
    data = commands.run(a.tenant, a.check, fast_only=a.fast, sample_size=a.sample, timeout_seconds=a.timeout,
                        fail_on=a.fail_on, gx=a.gx, progress=None if a.json else commands.StderrProgress())
    ctx.text = None if a.json else commands.render_run(data)
    return data


def cmd_repair_plan(ctx: Context) -> dict:
    import reconcile
    from reconcile import commands

    a = ctx.args
    data = reconcile.plan(ctx.settings, a.tenant, a.check, row_cap=a.row_cap, actor=ctx.actor)
    ctx.text = commands.render_plan(data)
    return data


def cmd_repair_approve(ctx: Context) -> dict:
    import reconcile
    from reconcile import commands

    a = ctx.args
    data = reconcile.approve(ctx.settings, a.plan, by=a.by, plan_hash_seen=a.hash, tenant_code=a.tenant)
    ctx.text = commands.render_approval(data)
    return data


def cmd_repair_apply(ctx: Context) -> dict:
    import reconcile
    from reconcile import commands

    a = ctx.args
    data = reconcile.apply(ctx.settings, a.plan, execute=a.execute, max_rows=a.max_rows, tenant_code=a.tenant,
                           actor=ctx.actor, batch_size=a.batch_size)
    ctx.text = commands.render_apply(data)
    return data


def cmd_repair_show(ctx: Context) -> dict:
    import reconcile
    from reconcile import commands

    data = reconcile.show(ctx.settings, ctx.args.plan)
    ctx.text = commands.render_show(data)
    return data


def cmd_demo(ctx: Context) -> dict:
    from . import demo

    from pipelines import local

    data = demo.build(ctx.settings, reset_first=ctx.args.reset)
    data["findings"] = local.run_monitoring_plan(ctx.settings, progress=lambda m: print(m, file=sys.stderr))
    if ctx.args.summary:
        ctx.text = "\n\n".join([demo.render(data), local.render(data["findings"]), demo.NEXT_STEPS])
    return data


# --------------------------------------------------------------------------- parser
def build_parser() -> Parser:
    parser = Parser(prog="hatthasilpa", description="Hatthasilpa Integrity: lifecycle core and integrity monitor.")
    parser.add_argument("--actor", help="who is acting (recorded in token events and audits); default $HATTHASILPA_ACTOR or 'cli'")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug output to stderr")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    db = sub.add_parser("db", help="database schema").add_subparsers(dest="db_command", required=True, parser_class=Parser)
    db.add_parser("upgrade", help="migrate core, monitor and every tenant DB").set_defaults(handler=cmd_db_upgrade)

    tenant = sub.add_parser("tenant", help="tenants").add_subparsers(dest="tenant_command", required=True, parser_class=Parser)
    p = tenant.add_parser("add", help="register a tenant in core and migrate its DB")
    p.add_argument("code")
    p.add_argument("--name")
    p.add_argument("--test", action="store_true", help="a test tenant (TEMP serials allowed)")
    p.set_defaults(handler=cmd_tenant_add)
    tenant.add_parser("list", help="registered tenants").set_defaults(handler=cmd_tenant_list)

    flag = sub.add_parser("flag", help="feature flags").add_subparsers(dest="flag_command", required=True, parser_class=Parser)
    p = flag.add_parser("set", help="turn a tenant's flag on or off")
    p.add_argument("tenant")
    p.add_argument("flag")
    p.add_argument("value", help="on or off")
    p.set_defaults(handler=cmd_flag_set)

    graph = sub.add_parser("graph", help="routing graphs").add_subparsers(dest="graph_command", required=True, parser_class=Parser)
    p = graph.add_parser("create", help="create a routing graph (a new version if the code exists)")
    p.add_argument("--tenant", required=True)
    p.add_argument("--code", required=True)
    p.add_argument("--file", required=True, help="GRAPH.json")
    p.set_defaults(handler=cmd_graph_create)

    job = sub.add_parser("job", help="production jobs").add_subparsers(dest="job_command", required=True, parser_class=Parser)
    p = job.add_parser("create", help="create a planned job")
    p.add_argument("--tenant", required=True)
    p.add_argument("--code", required=True)
    p.add_argument("--sku", required=True)
    p.add_argument("--quantity", required=True, type=whole_number)
    p.add_argument("--graph", required=True)
    p.add_argument("--mode", default="piece", help="piece (default) or batch")
    p.set_defaults(handler=cmd_job_create)
    for action in ("start", "cancel", "restore", "archive", "show"):
        p = job.add_parser(action, help=f"{action} a job")
        p.add_argument("--tenant", required=True)
        p.add_argument("job")
        p.add_argument("--idempotency-key", help="a retry with the same key returns the first result "
                                                 "(accepted by show for symmetry: reading needs no key)")
        p.set_defaults(handler=cmd_job_action, action=action)
    p = job.add_parser("list", help="jobs of a tenant")
    p.add_argument("--tenant", required=True)
    p.add_argument("--status")
    p.set_defaults(handler=cmd_job_list)

    token = sub.add_parser("token", help="tokens").add_subparsers(dest="token_command", required=True, parser_class=Parser)
    p = token.add_parser("spawn", help="run the spawn guard on an in-progress job")
    p.add_argument("--tenant", required=True)
    p.add_argument("job")
    p.add_argument("--idempotency-key")
    p.set_defaults(handler=cmd_token_spawn)

    p = token.add_parser("show", help="a token with its events, sessions, assignments and serial")
    p.add_argument("--tenant", required=True)
    p.add_argument("token_id")
    p.set_defaults(handler=cmd_token_show)

    assign = sub.add_parser("assign", help="manager assignments").add_subparsers(dest="assign_command", required=True, parser_class=Parser)
    p = assign.add_parser("plan", help="plan which operator works a node of a job")
    p.add_argument("--tenant", required=True)
    p.add_argument("job")
    p.add_argument("--node", required=True)
    p.add_argument("--operator", required=True)
    p.set_defaults(handler=cmd_assign_plan)

    session = sub.add_parser("session", help="operator work sessions").add_subparsers(dest="session_command", required=True, parser_class=Parser)
    for action in ("start", "pause", "resume", "complete"):
        p = session.add_parser(action, help=f"{action} a work session on a token")
        p.add_argument("--tenant", required=True)
        p.add_argument("token_id")
        p.add_argument("--operator", required=True)
        p.add_argument("--next", help="successor node code, when the node has several (complete only)")
        p.set_defaults(handler=cmd_session, action=action)

    p = sub.add_parser("work-queue", help="ready tokens operators can take")
    p.add_argument("--tenant", required=True)
    p.add_argument("--node")
    p.add_argument("--operator")
    p.add_argument("--limit", type=whole_number, default=1000)
    p.set_defaults(handler=cmd_work_queue)

    box = sub.add_parser("outbox", help="serial outbox").add_subparsers(dest="outbox_command", required=True,
                                                                        parser_class=Parser)
    p = box.add_parser("relay", help="publish tenant serial events to the core registry")
    p.add_argument("--tenant", help="one tenant; default every registered tenant")
    p.add_argument("--follow", action="store_true", help="keep relaying until SIGTERM or SIGINT, then report")
    p.add_argument("--batch-size", type=whole_number, default=500, help="rows claimed per batch (default 500)")
    p.add_argument("--max-attempts", type=whole_number, default=8, help="park a failing row after N attempts")
    p.add_argument("--interval", type=float, default=2.0, help="with --follow: seconds to wait after an idle pass")
    p.add_argument("--status", action="store_true", help="report pending, retrying and parked rows; relay nothing")
    p.add_argument("--retry-parked", action="store_true", help="put parked rows back in the queue, then relay")
    p.set_defaults(handler=cmd_outbox_relay)

    p = sub.add_parser("doctor", help="check every prerequisite of the lifecycle operations (exit 3 when one fails)")
    p.add_argument("--tenant", help="one tenant; default every registered tenant")
    p.set_defaults(handler=cmd_doctor)

    metrics = sub.add_parser("metrics", help="Prometheus metrics").add_subparsers(dest="metrics_command", required=True, parser_class=Parser)
    p = metrics.add_parser("serve", help="serve /metrics from the monitor store until SIGTERM")
    p.add_argument("--port", type=whole_number, default=9464)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0 for every interface)")
    p.add_argument("--json", action="store_true", help="print the JSON envelope when stopped")
    p.set_defaults(handler=cmd_metrics_serve)


    check = sub.add_parser("check", help="integrity checks").add_subparsers(dest="check_command", required=True,
                                                                          parser_class=Parser)
    p = check.add_parser("list", help="the check catalogue")
    p.add_argument("--json", action="store_true", help="print the JSON envelope instead of a table")
    p.set_defaults(handler=cmd_check_list)
    p = check.add_parser("run", help="run checks (exit 0 when they ran, findings or not; see --fail-on)")
    p.add_argument("--tenant", action="append", help="a tenant (repeatable); default every registered tenant")
    p.add_argument("--check", nargs="+", action="extend", help="check ids; default the whole catalogue")
    p.add_argument("--fast", action="store_true", help="only the checks that touch live rows")
    p.add_argument("--gx", action="store_true", help="also run the Great Expectations suites")
    p.add_argument("--sample", type=whole_number, default=20, help="rows kept per check (default 20)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per check (default 60)")
    p.add_argument("--fail-on", choices=["critical", "error", "warning"],
                   help="exit 3 (CHECKS_FAILED) on a finding at or above this severity, or a check error")
    p.add_argument("--json", action="store_true", help="print the JSON envelope instead of a table")
    p.set_defaults(handler=cmd_check_run)

    repair = sub.add_parser("repair", help="guarded repairs: plan, approve, apply").add_subparsers(
        dest="repair_command", required=True, parser_class=Parser)
    p = repair.add_parser("plan", help="turn a tenant's current findings into a plan (read-only)")
    p.add_argument("--tenant", required=True)
    p.add_argument("--check", nargs="+", action="extend", help="check ids; default the whole catalogue")
    p.add_argument("--row-cap", type=whole_number, default=1000, help="rows planned per check (default 1000)")
    p.add_argument("--json", action="store_true", help="print the JSON envelope instead of a table")
    p.set_defaults(handler=cmd_repair_plan)
    p = repair.add_parser("approve", help="record who approved the plan's hash")
    p.add_argument("plan")
    p.add_argument("--by", required=True, help="the approver's name")
    p.add_argument("--hash", help="the hash you reviewed; refused when it is not the plan's")
    p.add_argument("--tenant", help="refuse when the plan is not this tenant's")
    p.add_argument("--json", action="store_true", help="print the JSON envelope instead of text")
    p.set_defaults(handler=cmd_repair_approve)
    p = repair.add_parser("apply", help="apply an approved plan (a dry run unless --execute)")
    p.add_argument("plan")
    p.add_argument("--execute", action="store_true", help="write the changes; without it nothing is written")
    p.add_argument("--max-rows", type=whole_number, help="apply at most N rows in this run")
    p.add_argument("--batch-size", type=whole_number, default=100, help="rows per transaction (default 100)")
    p.add_argument("--tenant", help="refuse when the plan is not this tenant's")
    p.add_argument("--json", action="store_true", help="print the JSON envelope instead of a table")
    p.set_defaults(handler=cmd_repair_apply)
    p = repair.add_parser("show", help="a plan, its approvals and its audit trail")
    p.add_argument("plan")
    p.add_argument("--json", action="store_true", help="print the JSON envelope instead of text")
    p.set_defaults(handler=cmd_repair_show)

    p = sub.add_parser("demo", help="build a demo factory on the configured stores")
    p.add_argument("--reset", action="store_true", help="delete the embedded SQLite demo files first")
    p.add_argument("--summary", action="store_true", help="print a readable summary instead of the JSON envelope")
    p.set_defaults(handler=cmd_demo)
    return parser


# --------------------------------------------------------------------------- edge
def envelope(ok: bool, data=None, error: dict | None = None, started: float | None = None,
             request_id: str | None = None) -> dict:
    took = int((time.perf_counter() - started) * 1000) if started else 0
    return {"ok": ok, "data": data, "error": None if ok else error,
            "meta": {"request_id": request_id or str(uuid.uuid4()), "took_ms": took}}


def run(argv: list[str] | None = None) -> tuple[int, dict | None, str | None]:
    """Execute one command; return (exit code, envelope, readable text). Never raises."""
    started = time.perf_counter()
    request_id = str(uuid.uuid4())
    try:
        try:
            args = build_parser().parse_args(argv)
        except SystemExit as exc:  # --help printed by argparse
            return int(exc.code or 0), None, None
        logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, stream=sys.stderr,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        ctx = Context(args)
        data = ctx.args.handler(ctx)
        if getattr(args, "json", False):
            ctx.text = None
        log.debug("request %s: %s succeeded", request_id, args.command)
        return 0, envelope(True, data, started=started, request_id=request_id), ctx.text
    except HatthasilpaError as exc:
        err = exc
    except IntegrityError as exc:
        err = Conflict(f"the database refused the change: {str(exc.orig).strip().splitlines()[0]}",
                       hint="another command changed the same rows; read the current state and retry")
    except DBAPIError as exc:
        log.error("database error: %s", exc)
        err = InternalError(f"database error: {str(exc.orig).strip().splitlines()[0]}",
                            hint="check that the database is reachable and migrated (hatthasilpa db upgrade)")
    except Exception as exc:  # the envelope must hold even for bugs
        log.error("internal error\n%s", traceback.format_exc())
        err = InternalError(f"internal error: {type(exc).__name__}: {exc}", hint="see stderr for the traceback")
    return err.exit_code, envelope(False, data=err.data, error=err.to_dict(), started=started,
                                   request_id=request_id), None


def main(argv: list[str] | None = None) -> int:
    code, body, text = run(argv)
    if text is not None:
        sys.stdout.write(text + "\n")
    elif body is not None:
        sys.stdout.write(json.dumps(body, default=str) + "\n")
    sys.stdout.flush()
    return code


if __name__ == "__main__":
    sys.exit(main())
