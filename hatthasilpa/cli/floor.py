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


def register(sub) -> None:
    graph = group(sub, "graph", "routing graphs")
    p = graph.add_parser("create", help="create a routing graph (a new version if the code exists)")
    p.add_argument("--tenant", required=True)
    p.add_argument("--code", required=True)
    p.add_argument("--file", required=True, help="GRAPH.json")
    p.set_defaults(handler=graph_create)

    job = group(sub, "job", "production jobs")
    p = job.add_parser("create", help="create a planned job")
    p.add_argument("--tenant", required=True)
    p.add_argument("--code", required=True)
    p.add_argument("--sku", required=True)
    p.add_argument("--quantity", required=True, type=whole_number)
    p.add_argument("--graph", required=True)
    p.add_argument("--mode", default="piece", help="piece (default) or batch")
    p.set_defaults(handler=job_create)
    for action in ("start", "cancel", "restore", "archive", "show"):
        p = job.add_parser(action, help=f"{action} a job")
        p.add_argument("--tenant", required=True)
        p.add_argument("job")
        p.add_argument("--idempotency-key", help="a retry with the same key returns the first result "
                                                 "(accepted by show for symmetry: reading needs no key)")
        p.set_defaults(handler=job_action, action=action)
    p = job.add_parser("list", help="jobs of a tenant")
    p.add_argument("--tenant", required=True)
    p.add_argument("--status")
    p.set_defaults(handler=job_list)

    token = group(sub, "token", "tokens")
    p = token.add_parser("spawn", help="run the spawn guard on an in-progress job")
    p.add_argument("--tenant", required=True)
    p.add_argument("job")
    p.add_argument("--idempotency-key")
    p.set_defaults(handler=token_spawn)
    p = token.add_parser("show", help="a token with its events, sessions, assignments and serial")
    p.add_argument("--tenant", required=True)
    p.add_argument("token_id")
    p.set_defaults(handler=token_show)

    assign = group(sub, "assign", "manager assignments")
    p = assign.add_parser("plan", help="plan which operator works a node of a job")
    p.add_argument("--tenant", required=True)
    p.add_argument("job")
    p.add_argument("--node", required=True)
    p.add_argument("--operator", required=True)
    p.set_defaults(handler=assign_plan)

    verbs = group(sub, "session", "operator work sessions")
    for action in ("start", "pause", "resume", "complete"):
        p = verbs.add_parser(action, help=f"{action} a work session on a token")
        p.add_argument("--tenant", required=True)
        p.add_argument("token_id")
        p.add_argument("--operator", required=True)
        p.add_argument("--next", help="successor node code, when the node has several (complete only)")
        p.set_defaults(handler=session, action=action)

    p = sub.add_parser("work-queue", help="ready tokens operators can take")
    p.add_argument("--tenant", required=True)
    p.add_argument("--node")
    p.add_argument("--operator")
    p.add_argument("--limit", type=whole_number, default=1000)
    p.set_defaults(handler=work_queue)
