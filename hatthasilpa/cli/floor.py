"""The shop floor: ``graph``, ``job``, ``token``, ``assign``, ``session``, ``work-queue``.

Each verb runs one lifecycle use case in one unit of work on the tenant's DB.
"""

from __future__ import annotations

from lifecycle import assignments, graphs, lineage, queue, services, sessions
from lifecycle.errors import ValidationError

from .base import Context, group, whole_number


def graph_create(ctx: Context) -> dict:
    a = ctx.args
    spec = graphs.parse_graph(graphs.load_graph_file(a.file))
    return ctx.in_tenant(a.tenant, graphs.create_graph, a.code, spec)


def job_create(ctx: Context) -> dict:
    a = ctx.args
    return ctx.in_tenant(a.tenant, services.create_job, a.code, a.sku, a.quantity, a.graph, a.mode)


def job_action(ctx: Context) -> dict:
    a = ctx.args
    if a.action == "show":
        return ctx.in_tenant(a.tenant, services.show_job, a.job, commit=False)
    if a.action in ("start", "cancel"):  # the two that write token events name who acted
        use_case = services.start_job if a.action == "start" else services.cancel_job
        return ctx.in_tenant(a.tenant, use_case, a.job, idempotency_key=a.idempotency_key, actor=ctx.actor)
    use_case = services.restore_job if a.action == "restore" else services.archive_job
    return ctx.in_tenant(a.tenant, use_case, a.job, idempotency_key=a.idempotency_key)


def job_list(ctx: Context) -> dict:
    a = ctx.args
    return {"jobs": ctx.in_tenant(a.tenant, services.list_jobs, a.status, commit=False)}


def token_spawn(ctx: Context) -> dict:
    a = ctx.args
    return ctx.in_tenant(a.tenant, services.spawn_tokens, a.job, idempotency_key=a.idempotency_key, actor=ctx.actor)


def token_show(ctx: Context) -> dict:
    a = ctx.args
    return ctx.in_tenant(a.tenant, lineage.show_token, a.token_id, commit=False)


def assign_plan(ctx: Context) -> dict:
    a = ctx.args
    return ctx.in_tenant(a.tenant, assignments.plan, a.job, a.node, a.operator)


SESSION_ACTIONS = {"start": sessions.start, "pause": sessions.pause, "resume": sessions.resume}


def session(ctx: Context) -> dict:
    a = ctx.args
    if a.action == "complete":
        return ctx.in_tenant(a.tenant, sessions.complete, a.token_id, a.operator, a.next)
    if a.next is not None:
        raise ValidationError("--next applies only to `session complete`", hint="leave out --next")
    return ctx.in_tenant(a.tenant, SESSION_ACTIONS[a.action], a.token_id, a.operator)


def work_queue(ctx: Context) -> dict:
    a = ctx.args
    return ctx.in_tenant(a.tenant, queue.read_queue, node=a.node, operator=a.operator, limit=a.limit, commit=False)


IDEMPOTENCY_HELP = "a retry with the same key returns the first result"


def _verb(parent, name: str, help_text: str, handler, *positionals: str, **defaults):
    """A verb acting on one tenant: ``--tenant T`` and its positional arguments."""
    p = parent.add_parser(name, help=help_text)
    p.add_argument("--tenant", required=True)
    for argument in positionals:
        p.add_argument(argument)
    p.set_defaults(handler=handler, **defaults)
    return p


def register(sub) -> None:
    graph = group(sub, "graph", "routing graphs")
    p = _verb(graph, "create", "create a routing graph (a new version if the code exists)", graph_create)
    p.add_argument("--code", required=True)
    p.add_argument("--file", required=True, help="GRAPH.json")

    job = group(sub, "job", "production jobs")
    p = _verb(job, "create", "create a planned job", job_create)
    p.add_argument("--code", required=True)
    p.add_argument("--sku", required=True)
    p.add_argument("--quantity", required=True, type=whole_number)
    p.add_argument("--graph", required=True)
    p.add_argument("--mode", default="piece", help="piece (default) or batch")
    for action in ("start", "cancel", "restore", "archive", "show"):
        p = _verb(job, action, f"{action} a job", job_action, "job", action=action)
        p.add_argument("--idempotency-key", help=IDEMPOTENCY_HELP + (" (accepted for symmetry: reading needs no key)"
                                                                     if action == "show" else ""))
    _verb(job, "list", "jobs of a tenant", job_list).add_argument("--status")

    token = group(sub, "token", "tokens")
    _verb(token, "spawn", "run the spawn guard on an in-progress job", token_spawn, "job") \
        .add_argument("--idempotency-key", help=IDEMPOTENCY_HELP)
    _verb(token, "show", "a token with its events, sessions, assignments and serial", token_show, "token_id")

    assign = group(sub, "assign", "manager assignments")
    p = _verb(assign, "plan", "plan which operator works a node of a job", assign_plan, "job")
    p.add_argument("--node", required=True)
    p.add_argument("--operator", required=True)

    verbs = group(sub, "session", "operator work sessions")
    for action in ("start", "pause", "resume", "complete"):
        p = _verb(verbs, action, f"{action} a work session on a token", session, "token_id", action=action)
        p.add_argument("--operator", required=True)
        p.add_argument("--next", help="successor node code, when the node has several (complete only)")

    p = sub.add_parser("work-queue", help="ready tokens operators can take")
    p.add_argument("--tenant", required=True)
    p.add_argument("--node")
    p.add_argument("--operator")
    p.add_argument("--limit", type=whole_number, default=1000)
    p.set_defaults(handler=work_queue)
