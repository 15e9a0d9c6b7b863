"""Work sessions (docs/lifecycle.md §4): start, pause, resume, complete — none of which can race.

Lock order, the same in every lifecycle writer: the job row first, then token rows.
Session commands take the job row FOR SHARE (so a cancel, which takes it FOR UPDATE,
waits for them and they wait for it) and the token row FOR UPDATE, so two starts of one
token serialize and the second sees the first's session. ``complete`` takes the job row
FOR UPDATE instead, because finishing the last token completes the job. On SQLite,
``BEGIN IMMEDIATE`` serializes every writer anyway.

A command reads in two statements (``_hold``): one takes both locks and returns the job and
the token; the next, run once the locks are held, reads everything else it decides on — the
instance's status, the token's node and its successors, the token's open session and active
assignment, the operator's running session. It has to be a statement of its own: under READ
COMMITTED a statement sees the rows committed before it began, and only the second begins
after any wait for the locks, so it sees the session or the assignment the holder of those
locks committed. Writes return what the result shows (``RETURNING``) instead of reading it again.

The database backs every rule: one open session per token, one running session per
operator, one active assignment per token (partial unique indexes). A unique-index
violation from a race the locks did not cover becomes, by the index's name
(``lifecycle.constraints``), the same refusal the checks give. Guarded by
``tests/integration/test_sessions.py``, ``tests/integration/test_session_races.py`` and, for
assignment and session written together, ``tests/e2e/test_fault_points.py``.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from . import assignments, constraints, serials, tokens
from .errors import InvalidTransition, NotFound, OperatorBusy, TokenBusy, ValidationError
from .faults import fault_point
from .lookup import get_job_by_id, get_token, token_id_arg
from .schema import (
    flow_token,
    hatthasilpa_job,
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


# --------------------------------------------------------------------------- what a command holds
class Job(NamedTuple):
    id: int
    job_code: str
    status: str


class Token(NamedTuple):
    id: int
    job_id: int
    instance_id: int
    current_node_id: int
    status: str


class Session(NamedTuple):
    """An open session, with what ``assignments.worked_seconds`` needs."""

    id: int
    token_id: int
    operator_id: str
    assignment_id: int | None
    status: str
    work_seconds: float
    started_at: object
    resumed_at: object


class Assignment(NamedTuple):
    id: int
    operator_id: str


@dataclass(frozen=True)
class Held:
    """A token and its job, locked, and what a session command decides on, read under those locks."""

    job: Job
    token: Token
    instance_status: str | None
    node: str  # the code of the token's node
    node_kind: str
    session: Session | None  # the token's open session
    assignment: Assignment | None  # the token's active assignment
    running: tuple[int, int] | None  # (session id, token id) of the operator's running session
    successors: dict[str, int]  # the node's successors, code -> id, by code


def _is(column: sa.ColumnElement, *statuses) -> sa.ColumnElement:
    """``column IN (statuses)`` with the values written into the SQL, not bound: PostgreSQL's generic
    plans of prepared statements then use the partial indexes whose predicates name those values."""
    return column.in_([sa.literal_column(repr(s.value)) for s in statuses])


def _locking(job_lock: str) -> sa.Select:
    """The token and its job, both locked in one statement: the job FOR SHARE or FOR UPDATE, then the
    token FOR UPDATE (PostgreSQL takes a row's locks in the order of the clauses: the lock order)."""
    query = (sa.select(hatthasilpa_job.c.id, hatthasilpa_job.c.job_code, hatthasilpa_job.c.status,
                       flow_token.c.id, flow_token.c.job_id, flow_token.c.instance_id, flow_token.c.current_node_id,
                       flow_token.c.status)
             .join_from(flow_token, hatthasilpa_job, hatthasilpa_job.c.id == flow_token.c.job_id)
             .where(flow_token.c.id == sa.bindparam("token_id")))
    if job_lock == "update":
        return query.with_for_update(of=[hatthasilpa_job, flow_token])
    return query.with_for_update(read=True, of=hatthasilpa_job).suffix_with("FOR UPDATE OF flow_token",
                                                                           dialect="postgresql")


_LOCK = {"share": _locking("share"), "update": _locking("update")}


def _reading() -> sa.Select:
    """Everything else a session command decides on, in one statement run once the locks are held
    (a statement of its own, so it sees what committed while it waited for them)."""
    t, n, i = flow_token, routing_node.alias("n"), job_graph_instance
    s, a, r = token_work_session.alias("s"), token_assignment.alias("a"), token_work_session.alias("r")
    e, nxt = routing_edge.alias("e"), routing_node.alias("nxt")
    return (sa.select(i.c.status, n.c.node_code, n.c.kind,
                      s.c.id, s.c.token_id, s.c.operator_id, s.c.assignment_id, s.c.status, s.c.work_seconds,
                      s.c.started_at, s.c.resumed_at,
                      a.c.id, a.c.operator_id, r.c.id, r.c.token_id, nxt.c.node_code, nxt.c.id)
            .select_from(t)
            .outerjoin(n, n.c.id == t.c.current_node_id)
            .outerjoin(i, i.c.id == t.c.instance_id)
            .outerjoin(s, sa.and_(s.c.token_id == t.c.id, _is(s.c.status, SessionStatus.ACTIVE, SessionStatus.PAUSED)))
            .outerjoin(a, sa.and_(a.c.token_id == t.c.id, _is(a.c.status, AssignmentStatus.ACTIVE)))
            .outerjoin(r, sa.and_(r.c.operator_id == sa.bindparam("operator_id"), _is(r.c.status, SessionStatus.ACTIVE)))
            .outerjoin(e, sa.and_(e.c.graph_id == n.c.graph_id, e.c.from_node_id == n.c.id))
            .outerjoin(nxt, nxt.c.id == e.c.to_node_id)
            .where(t.c.id == sa.bindparam("token_id"))
            .order_by(nxt.c.node_code))


_READ = _reading()


def _hold(uow: UnitOfWork, token_id: object, operator_id: str, job_lock: str) -> Held:
    """Lock the token's job (FOR SHARE or FOR UPDATE) and the token (FOR UPDATE), then read the rest."""
    token_id = token_id_arg(token_id)
    locked = uow.conn.execute(_LOCK[job_lock], {"token_id": token_id}).first()
    if locked is None:
        job_id = get_token(uow, token_id).job_id  # NOT_FOUND for a missing token
        get_job_by_id(uow, job_id)  # and for a missing job
        raise NotFound(f"token {token_id} not found", hint="find ready tokens with `hatthasilpa work-queue --tenant T`")
    rows = uow.conn.execute(_READ, {"token_id": token_id, "operator_id": operator_id}).all()
    first = rows[0]
    return Held(job=Job(*locked[:3]), token=Token(*locked[3:]), instance_status=first[0], node=first[1],
                node_kind=first[2], session=Session(*first[3:11]) if first[3] is not None else None,
                assignment=Assignment(*first[11:13]) if first[11] is not None else None,
                running=tuple(first[13:15]) if first[13] is not None else None,
                successors={row[15]: row[16] for row in rows if row[15] is not None})


def _require_operator_free(held: Held, operator_id: str) -> None:
    """An operator holds at most one running session (the database's partial unique index agrees)."""
    if held.running is not None:
        session_id, token_id = held.running
        raise OperatorBusy(f"operator {operator_id} already has a running session "
                           f"(session {session_id} on token {token_id})",
                           hint="pause or complete the running session first")


def _require_workable(held: Held) -> None:
    job, token = held.job, held.token
    if job.status != JobStatus.IN_PROGRESS.value or held.instance_status != InstanceStatus.ACTIVE.value:
        raise InvalidTransition(
            f"token {token.id} belongs to job {job.job_code} ({job.status}) on a {held.instance_status} instance",
            hint="only tokens of an in-progress job on its active instance can be worked")
    if token.status in (TokenStatus.SCRAPPED.value, TokenStatus.COMPLETED.value):
        raise InvalidTransition(f"token {token.id} is {token.status}", hint="take a ready token from the work queue")


@contextmanager
def _decided_by_indexes():
    """The writes the partial unique indexes back: a violation (a race the locks did not cover)
    becomes the refusal of the index's rule. No savepoint: the refusal ends the unit of work,
    which rolls the whole transaction back."""
    try:
        yield
    except IntegrityError as exc:
        raise constraints.refusal(exc) from exc


_SESSION_ID = token_work_session.c.id == sa.bindparam("session_id")
_INSERT_SESSION = token_work_session.insert().returning(*token_work_session.c)
_UPDATE_SESSION = token_work_session.update().where(_SESSION_ID).returning(*token_work_session.c)
_FINISH_ASSIGNMENT = token_assignment.update().where(
    token_assignment.c.id == sa.bindparam("assignment_id"),
    _is(token_assignment.c.status, AssignmentStatus.ACTIVE))


def _session_result(session: sa.Row, token_status: TokenStatus, node: str, **extra) -> dict:
    """A session as written (``RETURNING``), with its token's status and node after the command."""
    return {"session_id": session.id, "token_id": session.token_id, "operator_id": session.operator_id,
            "assignment_id": session.assignment_id, "status": session.status, "started_at": iso(session.started_at),
            "ended_at": iso(session.ended_at), "work_seconds": round(float(session.work_seconds), 3),
            "token_status": token_status.value, "node": node, **extra}


def _owned_open_session(held: Held, operator_id: str, verb: str) -> Session:
    session, token = held.session, held.token
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
    held = _hold(uow, token_id, operator_id, "share")
    _require_workable(held)
    token, session = held.token, held.session
    if token.status == TokenStatus.PAUSED.value and session is not None and session.operator_id == operator_id:
        return _resume(uow, held, operator_id)
    if token.status != TokenStatus.READY.value:
        raise TokenBusy(f"token {token.id} is {token.status}" +
                        (f" in session {session.id} (assignment {session.assignment_id})" if session else ""),
                        hint="take another ready token from the work queue")
    assignment = held.assignment
    if assignment is not None and assignment.operator_id != operator_id:
        raise TokenBusy(f"token {token.id} is assigned elsewhere (assignment {assignment.id})",
                        hint="take a token assigned to you or an unassigned one from the work queue")
    _require_operator_free(held, operator_id)
    now = uow.now()
    with _decided_by_indexes():
        assignment_id = assignment.id if assignment else assignments.create_assignment(
            uow, token.id, operator_id, AssignmentSource.SELF)
        fault_point("session_start.after_assignment")
        opened = uow.conn.execute(_INSERT_SESSION, {
            "token_id": token.id, "assignment_id": assignment_id, "operator_id": operator_id,
            "status": SessionStatus.ACTIVE.value, "started_at": now, "work_seconds": 0, "created_at": now,
            "updated_at": now}).one()
    tokens.move(uow, [token], TokenStatus.ACTIVE, "session_started", operator_id)
    return _session_result(opened, TokenStatus.ACTIVE, held.node)


# verb -> the session status it needs, and what to do when the session is in the other one
NEEDS = {"pause": (SessionStatus.ACTIVE, "it is paused already; resume it first"),
         "resume": (SessionStatus.PAUSED, "only a paused session can be resumed"),
         "complete": (SessionStatus.ACTIVE, "resume it before completing")}


def _session_for(held: Held, operator_id: str, verb: str) -> Session:
    """Check the held token can be worked and return its open session — the operator's own, in
    the status ``verb`` needs."""
    _require_workable(held)
    session = _owned_open_session(held, operator_id, verb)
    needed, hint = NEEDS[verb]
    if session.status != needed.value:
        raise InvalidTransition(f"session {session.id} is {session.status}; {verb} needs it {needed.value}",
                                hint=hint)
    return session


def _held_for(uow: UnitOfWork, token_id: object, operator_id: str, job_lock: str = "share") -> Held:
    assignments.validate_operator(operator_id)
    return _hold(uow, token_id, operator_id, job_lock)


def pause(uow: UnitOfWork, token_id: object, operator_id: str) -> dict:
    held = _held_for(uow, token_id, operator_id)
    session = _session_for(held, operator_id, "pause")
    now = uow.now()
    paused = uow.conn.execute(_UPDATE_SESSION, {
        "session_id": session.id, "status": SessionStatus.PAUSED.value,
        "work_seconds": assignments.worked_seconds(session, now), "updated_at": now}).one()
    tokens.move(uow, [held.token], TokenStatus.PAUSED, "session_paused", operator_id)
    return _session_result(paused, TokenStatus.PAUSED, held.node)


def resume(uow: UnitOfWork, token_id: object, operator_id: str) -> dict:
    return _resume(uow, _held_for(uow, token_id, operator_id), operator_id)


def _resume(uow: UnitOfWork, held: Held, operator_id: str) -> dict:
    session = _session_for(held, operator_id, "resume")
    _require_operator_free(held, operator_id)
    now = uow.now()
    with _decided_by_indexes():
        resumed = uow.conn.execute(_UPDATE_SESSION, {
            "session_id": session.id, "status": SessionStatus.ACTIVE.value, "resumed_at": now,
            "updated_at": now}).one()
    tokens.move(uow, [held.token], TokenStatus.ACTIVE, "session_resumed", operator_id)
    return _session_result(resumed, TokenStatus.ACTIVE, held.node)


def successors(uow: UnitOfWork, node_id: int) -> dict[str, int]:
    rows = uow.conn.execute(sa.select(routing_node.c.node_code, routing_node.c.id)
                            .join(routing_edge, routing_edge.c.to_node_id == routing_node.c.id)
                            .where(routing_edge.c.from_node_id == node_id).order_by(routing_node.c.node_code))
    return dict(rows.all())


def complete(uow: UnitOfWork, token_id: object, operator_id: str, next_node: str | None = None) -> dict:
    """Close the session, finish the assignment and route the token on (or out)."""
    held = _held_for(uow, token_id, operator_id, job_lock="update")
    session = _session_for(held, operator_id, "complete")
    job, token, options = held.job, held.token, held.successors
    target = None
    if held.node_kind == NodeKind.END.value:
        if next_node is not None:
            raise ValidationError(f"node {held.node} is an end node; --next does not apply",
                                  hint="leave out --next to finish the piece")
    elif next_node is None:
        if len(options) != 1:
            raise ValidationError(f"node {held.node} has several successors: {', '.join(options)}",
                                  hint="pick one with --next CODE")
        target = next(iter(options))
    else:
        if next_node not in options:
            raise ValidationError(f"{next_node} is not a successor of {held.node}",
                                  hint=f"successors: {', '.join(options) or 'none'}")
        target = next_node

    now = uow.now()
    closed = uow.conn.execute(_UPDATE_SESSION, {
        "session_id": session.id, "status": SessionStatus.CLOSED.value, "ended_at": now,
        "work_seconds": assignments.worked_seconds(session, now), "close_reason": "completed",
        "updated_at": now}).one()
    if session.assignment_id is not None:
        uow.conn.execute(_FINISH_ASSIGNMENT, {"assignment_id": session.assignment_id,
                                              "status": AssignmentStatus.DONE.value, "updated_at": now})
    job_completed = False
    if target is None:
        tokens.move(uow, [token], TokenStatus.COMPLETED, "completed", operator_id)
        serials.complete_serial(uow, token.id)
        job_completed = _complete_job_when_done(uow, job, token.instance_id)
        status, node = TokenStatus.COMPLETED, held.node
    else:
        tokens.move(uow, [token], TokenStatus.READY, "routed", operator_id, node_id=options[target])
        assignments.propagate(uow, job.id, [token.id])
        status, node = TokenStatus.READY, target
    fault_point("session_complete.after_routing")
    return _session_result(closed, status, node, job_completed=job_completed)


def _complete_job_when_done(uow: UnitOfWork, job: Job, instance_id: int) -> bool:
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
