"""Work sessions (docs/lifecycle.md §4): start, pause, resume, complete — none of which can race.

Lock order, the same in every lifecycle writer: the job row first, then token rows.
Session commands take the job row FOR SHARE (so a cancel, which takes it FOR UPDATE,
waits for them and they wait for it) and the token row FOR UPDATE, so two starts of one
token serialize and the second sees the first's session. ``complete`` takes the job row
FOR UPDATE instead, because finishing the last token completes the job. On SQLite,
``BEGIN IMMEDIATE`` serializes every writer anyway.

The database backs every rule: one open session per token, one running session per
operator, one active assignment per token (partial unique indexes). A unique-index
violation from a race the locks did not cover becomes, by the index's name
(``lifecycle.constraints``), the same refusal the checks give. Guarded by
``tests/integration/test_sessions.py``, ``tests/integration/test_session_races.py`` and, for
assignment and session written together, ``tests/e2e/test_fault_points.py``.
"""

from __future__ import annotations

from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from . import assignments, constraints, serials, tokens
from .errors import InvalidTransition, OperatorBusy, TokenBusy, ValidationError
from .faults import fault_point
from .lookup import get_job_by_id, get_token
from .schema import (
    flow_token,
    job_graph_instance,
    node_instance,
    routing_edge,
    routing_node,
    token_assignment,
    token_work_session,
)
from .services import move_job
from .states import AssignmentSource, AssignmentStatus, InstanceStatus, JobStatus, NodeKind, SessionStatus, TokenStatus
from .uow import UnitOfWork, iso

OPEN = assignments.OPEN


# --------------------------------------------------------------------------- helpers
def _lock(uow: UnitOfWork, token_id: object, job_lock: str) -> tuple[sa.Row, sa.Row]:
    """Lock the token's job (FOR SHARE or FOR UPDATE), then the token (FOR UPDATE)."""
    job_id = get_token(uow, token_id).job_id  # a token never changes job: safe to read unlocked
    job = get_job_by_id(uow, job_id, lock=job_lock == "update", share=job_lock == "share")
    return job, get_token(uow, token_id, lock=True)


def _open_session(uow: UnitOfWork, token_id: int) -> sa.Row | None:
    return uow.conn.execute(sa.select(token_work_session).where(
        token_work_session.c.token_id == token_id, token_work_session.c.status.in_(OPEN))).first()


def _running_session_of(uow: UnitOfWork, operator_id: str) -> sa.Row | None:
    return uow.conn.execute(sa.select(token_work_session).where(
        token_work_session.c.operator_id == operator_id,
        token_work_session.c.status == SessionStatus.ACTIVE.value)).first()


def _require_operator_free(uow: UnitOfWork, operator_id: str) -> None:
    """An operator holds at most one running session (the database's partial unique index agrees)."""
    running = _running_session_of(uow, operator_id)
    if running is not None:
        raise OperatorBusy(f"operator {operator_id} already has a running session "
                           f"(session {running.id} on token {running.token_id})",
                           hint="pause or complete the running session first")


def _require_workable(uow: UnitOfWork, job: sa.Row, token: sa.Row) -> None:
    instance_status = uow.conn.execute(sa.select(job_graph_instance.c.status)
                                       .where(job_graph_instance.c.id == token.instance_id)).scalar()
    if job.status != JobStatus.IN_PROGRESS.value or instance_status != InstanceStatus.ACTIVE.value:
        raise InvalidTransition(
            f"token {token.id} belongs to job {job.job_code} ({job.status}) on a {instance_status} instance",
            hint="only tokens of an in-progress job on its active instance can be worked")
    if token.status in (TokenStatus.SCRAPPED.value, TokenStatus.COMPLETED.value):
        raise InvalidTransition(f"token {token.id} is {token.status}", hint="take a ready token from the work queue")


@contextmanager
def _decided_by_indexes(uow: UnitOfWork):
    """A savepoint for the writes the partial unique indexes back: a violation (a race the
    locks did not cover) becomes the refusal of the index's rule."""
    try:
        with uow.conn.begin_nested():
            yield
    except IntegrityError as exc:
        raise constraints.refusal(exc) from exc


def _session_result(uow: UnitOfWork, session_id: int, **extra) -> dict:
    s = uow.conn.execute(sa.select(token_work_session).where(token_work_session.c.id == session_id)).one()
    token = uow.conn.execute(sa.select(flow_token.c.status, routing_node.c.node_code)
                             .join(routing_node, routing_node.c.id == flow_token.c.current_node_id)
                             .where(flow_token.c.id == s.token_id)).one()
    return {"session_id": s.id, "token_id": s.token_id, "operator_id": s.operator_id,
            "assignment_id": s.assignment_id, "status": s.status, "started_at": iso(s.started_at),
            "ended_at": iso(s.ended_at), "work_seconds": round(float(s.work_seconds), 3),
            "token_status": token.status, "node": token.node_code, **extra}


def _owned_open_session(uow: UnitOfWork, token: sa.Row, operator_id: str, verb: str) -> sa.Row:
    session = _open_session(uow, token.id)
    if session is None:
        raise InvalidTransition(f"token {token.id} has no open session to {verb}",
                                hint=f"start one: hatthasilpa session start --tenant T {token.id} --operator OP")
    if session.operator_id != operator_id:
        raise TokenBusy(f"session {session.id} on token {token.id} belongs to another operator",
                        hint=f"only the operator of assignment {session.assignment_id} can {verb} it")
    return session


# --------------------------------------------------------------------------- use cases
def start(uow: UnitOfWork, token_id: object, operator_id: str) -> dict:
    """Open a session: lock, check, find or create the assignment, open — one transaction."""
    assignments.validate_operator(operator_id)
    job, token = _lock(uow, token_id, "share")
    _require_workable(uow, job, token)
    if token.status == TokenStatus.PAUSED.value:
        session = _open_session(uow, token.id)
        if session is not None and session.operator_id == operator_id:
            return resume(uow, token.id, operator_id, locked=(job, token))
    if token.status != TokenStatus.READY.value:
        session = _open_session(uow, token.id)
        raise TokenBusy(f"token {token.id} is {token.status}" +
                        (f" in session {session.id} (assignment {session.assignment_id})" if session else ""),
                        hint="take another ready token from the work queue")
    assignment = assignments.active_assignment(uow, token.id)
    if assignment is not None and assignment.operator_id != operator_id:
        raise TokenBusy(f"token {token.id} is assigned elsewhere (assignment {assignment.id})",
                        hint="take a token assigned to you or an unassigned one from the work queue")
    _require_operator_free(uow, operator_id)
    now = uow.now()
    with _decided_by_indexes(uow):
        assignment_id = assignment.id if assignment else assignments.create_assignment(
            uow, token.id, operator_id, AssignmentSource.SELF)
        fault_point("session_start.after_assignment")
        session_id = uow.conn.execute(token_work_session.insert().values(
            token_id=token.id, assignment_id=assignment_id, operator_id=operator_id,
            status=SessionStatus.ACTIVE.value, started_at=now, work_seconds=0, created_at=now, updated_at=now,
        ).returning(token_work_session.c.id)).scalar_one()
    tokens.move(uow, [token], TokenStatus.ACTIVE, "session_started", operator_id)
    return _session_result(uow, session_id)


# verb -> the session status it needs, and what to do when the session is in the other one
NEEDS = {"pause": (SessionStatus.ACTIVE, "it is paused already; resume it first"),
         "resume": (SessionStatus.PAUSED, "only a paused session can be resumed"),
         "complete": (SessionStatus.ACTIVE, "resume it before completing")}


def _session_for(uow: UnitOfWork, token_id: object, operator_id: str, verb: str, job_lock: str = "share",
                 locked: tuple | None = None) -> tuple[sa.Row, sa.Row, sa.Row]:
    """Lock the token (and its job), check it can be worked, and return its open session —
    the operator's own, in the status ``verb`` needs."""
    assignments.validate_operator(operator_id)
    job, token = locked or _lock(uow, token_id, job_lock)
    _require_workable(uow, job, token)
    session = _owned_open_session(uow, token, operator_id, verb)
    needed, hint = NEEDS[verb]
    if session.status != needed.value:
        raise InvalidTransition(f"session {session.id} is {session.status}; {verb} needs it {needed.value}",
                                hint=hint)
    return job, token, session


def pause(uow: UnitOfWork, token_id: object, operator_id: str) -> dict:
    _, token, session = _session_for(uow, token_id, operator_id, "pause")
    now = uow.now()
    uow.conn.execute(token_work_session.update().where(token_work_session.c.id == session.id).values(
        status=SessionStatus.PAUSED.value, work_seconds=assignments.worked_seconds(session, now), updated_at=now))
    tokens.move(uow, [token], TokenStatus.PAUSED, "session_paused", operator_id)
    return _session_result(uow, session.id)


def resume(uow: UnitOfWork, token_id: object, operator_id: str, locked: tuple | None = None) -> dict:
    _, token, session = _session_for(uow, token_id, operator_id, "resume", locked=locked)
    _require_operator_free(uow, operator_id)
    now = uow.now()
    with _decided_by_indexes(uow):
        uow.conn.execute(token_work_session.update().where(token_work_session.c.id == session.id).values(
            status=SessionStatus.ACTIVE.value, resumed_at=now, updated_at=now))
    tokens.move(uow, [token], TokenStatus.ACTIVE, "session_resumed", operator_id)
    return _session_result(uow, session.id)


def successors(uow: UnitOfWork, node_id: int) -> dict[str, int]:
    rows = uow.conn.execute(sa.select(routing_node.c.node_code, routing_node.c.id)
                            .join(routing_edge, routing_edge.c.to_node_id == routing_node.c.id)
                            .where(routing_edge.c.from_node_id == node_id).order_by(routing_node.c.node_code))
    return dict(rows.all())


def complete(uow: UnitOfWork, token_id: object, operator_id: str, next_node: str | None = None) -> dict:
    """Close the session, finish the assignment and route the token on (or out)."""
    job, token, session = _session_for(uow, token_id, operator_id, "complete", job_lock="update")
    node = uow.conn.execute(sa.select(routing_node).where(routing_node.c.id == token.current_node_id)).one()
    options = successors(uow, node.id)
    target_id = None
    if node.kind == NodeKind.END.value:
        if next_node is not None:
            raise ValidationError(f"node {node.node_code} is an end node; --next does not apply",
                                  hint="leave out --next to finish the piece")
    elif next_node is None:
        if len(options) != 1:
            raise ValidationError(f"node {node.node_code} has several successors: {', '.join(options)}",
                                  hint="pick one with --next CODE")
        target_id = next(iter(options.values()))
    else:
        if next_node not in options:
            raise ValidationError(f"{next_node} is not a successor of {node.node_code}",
                                  hint=f"successors: {', '.join(options) or 'none'}")
        target_id = options[next_node]

    now = uow.now()
    uow.conn.execute(token_work_session.update().where(token_work_session.c.id == session.id).values(
        status=SessionStatus.CLOSED.value, ended_at=now, work_seconds=assignments.worked_seconds(session, now),
        close_reason="completed", updated_at=now))
    if session.assignment_id is not None:
        uow.conn.execute(token_assignment.update().where(token_assignment.c.id == session.assignment_id,
                                                         token_assignment.c.status == AssignmentStatus.ACTIVE.value)
                         .values(status=AssignmentStatus.DONE.value, updated_at=now))
    job_completed = False
    if target_id is None:
        tokens.move(uow, [token], TokenStatus.COMPLETED, "completed", operator_id)
        serials.complete_serial(uow, token.id)
        job_completed = _complete_job_when_done(uow, job, token.instance_id)
    else:
        tokens.move(uow, [token], TokenStatus.READY, "routed", operator_id, node_id=target_id)
        assignments.propagate(uow, job.id, [token.id])
    fault_point("session_complete.after_routing")
    return _session_result(uow, session.id, job_completed=job_completed)


def _complete_job_when_done(uow: UnitOfWork, job: sa.Row, instance_id: int) -> bool:
    counts = tokens.count_by_status(uow, instance_id)
    if any(counts.get(s, 0) for s in tokens.LIVE) or not counts.get(TokenStatus.COMPLETED.value):
        return False
    now = uow.now()
    uow.conn.execute(job_graph_instance.update().where(job_graph_instance.c.id == instance_id,
                                                       job_graph_instance.c.status == InstanceStatus.ACTIVE.value)
                     .values(status=InstanceStatus.COMPLETED.value, updated_at=now))
    uow.conn.execute(node_instance.update().where(node_instance.c.instance_id == instance_id)
                     .values(status="closed", updated_at=now))
    move_job(uow, job, JobStatus.COMPLETED)
    return True
