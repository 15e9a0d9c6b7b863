"""Operator assignments: manager plans, their propagation, and closing work on reset.

A manager plans who works a node of a job (``manager_assignment``). The plan becomes
``token_assignment`` rows (source ``manager``) for the ready tokens on that node: when
the plan is made, when tokens are spawned onto the node, and when a token is routed
onto it. The database allows one active assignment per token; every writer here runs
under the job's row lock, so two managers planning at once serialize.

Invariant: one active assignment per token. Guarded by
tests/integration/test_session_races.py, tests/integration/test_sessions.py.
"""

from __future__ import annotations

import sqlalchemy as sa

from . import graphs
from .errors import InvalidTransition, NotFound, ValidationError
from .lookup import get_job
from .schema import flow_token, manager_assignment, routing_node, token_assignment, token_work_session
from .states import AssignmentSource, AssignmentStatus, JobStatus, SessionStatus, TokenStatus
from .uow import UnitOfWork, as_utc

OPEN = [SessionStatus.ACTIVE.value, SessionStatus.PAUSED.value]


def worked_seconds(session: sa.Row, now) -> float:
    """Seconds worked so far: banked time plus the running stretch of an active session."""
    total = float(session.work_seconds or 0)
    if session.status == SessionStatus.ACTIVE.value:
        since = as_utc(session.resumed_at or session.started_at)
        total += max(0.0, (now - since).total_seconds())
    return total


def close_open_sessions(uow: UnitOfWork, token_ids: list[int], reason: str) -> list[int]:
    """Close every open session of the tokens; return the closed session ids."""
    if not token_ids:
        return []
    return _close(uow, token_work_session.c.token_id.in_(token_ids), reason)


def close_sessions(uow: UnitOfWork, session_ids: list[int], reason: str) -> list[int]:
    """Close exactly these sessions, those still open; return the closed ids."""
    if not session_ids:
        return []
    return _close(uow, token_work_session.c.id.in_(session_ids), reason)


def _close(uow: UnitOfWork, which, reason: str) -> list[int]:
    now = uow.now()
    sessions = uow.conn.execute(
        sa.select(token_work_session).where(which, token_work_session.c.status.in_(OPEN))
        .order_by(token_work_session.c.id).with_for_update()).all()
    for session in sessions:
        uow.conn.execute(token_work_session.update().where(token_work_session.c.id == session.id)
                         .values(status=SessionStatus.CLOSED.value, ended_at=max(now, as_utc(session.started_at)),
                                 work_seconds=worked_seconds(session, now), close_reason=reason, updated_at=now))
    return [s.id for s in sessions]


def expire_active_assignments(uow: UnitOfWork, token_ids: list[int]) -> list[int]:
    """Expire every active assignment of the tokens; return the expired ids."""
    if not token_ids:
        return []
    return _expire(uow, token_assignment.c.token_id.in_(token_ids))


def expire_assignments(uow: UnitOfWork, assignment_ids: list[int]) -> list[int]:
    """Expire exactly these assignments, those still active; return the expired ids."""
    if not assignment_ids:
        return []
    return _expire(uow, token_assignment.c.id.in_(assignment_ids))


def _expire(uow: UnitOfWork, which) -> list[int]:
    return sorted(uow.conn.execute(
        token_assignment.update()
        .where(which, token_assignment.c.status == AssignmentStatus.ACTIVE.value)
        .values(status=AssignmentStatus.EXPIRED.value, updated_at=uow.now())
        .returning(token_assignment.c.id)).scalars())


def active_assignment(uow: UnitOfWork, token_id: int) -> sa.Row | None:
    return uow.conn.execute(sa.select(token_assignment).where(
        token_assignment.c.token_id == token_id, token_assignment.c.status == AssignmentStatus.ACTIVE.value)).first()


_INSERT_ASSIGNMENT = token_assignment.insert().returning(token_assignment.c.id)


def create_assignment(uow: UnitOfWork, token_id: int, operator_id: str, source: AssignmentSource) -> int:
    now = uow.now()
    return uow.conn.execute(_INSERT_ASSIGNMENT, {
        "token_id": token_id, "operator_id": operator_id, "status": AssignmentStatus.ACTIVE.value,
        "source": source.value, "created_at": now, "updated_at": now}).scalar_one()


def _planned() -> sa.Select:
    """The job's unassigned ready tokens on a node its manager planned, with the planned operator
    (built once; ``token_ids`` of :func:`propagate` narrows it)."""
    has_active = sa.exists().where(token_assignment.c.token_id == flow_token.c.id,
                                   token_assignment.c.status == AssignmentStatus.ACTIVE.value)
    return (sa.select(flow_token.c.id, manager_assignment.c.operator_id)
            .join(manager_assignment, sa.and_(manager_assignment.c.job_id == flow_token.c.job_id,
                                              manager_assignment.c.node_id == flow_token.c.current_node_id))
            .where(flow_token.c.job_id == sa.bindparam("job_id"), flow_token.c.status == TokenStatus.READY.value,
                   ~has_active)
            .order_by(flow_token.c.id))


_PLANNED = _planned()
_PLANNED_AMONG = _PLANNED.where(flow_token.c.id.in_(sa.bindparam("token_ids", expanding=True)))


def propagate(uow: UnitOfWork, job_id: int, token_ids: list[int] | None = None) -> list[int]:
    """Turn the job's manager plans into assignments for its unassigned ready tokens.

    ``token_ids`` limits it to those tokens (just spawned or just routed)."""
    if token_ids is not None and not token_ids:
        return []
    query, params = (_PLANNED, {"job_id": job_id}) if token_ids is None else \
        (_PLANNED_AMONG, {"job_id": job_id, "token_ids": list(token_ids)})
    return [create_assignment(uow, token_id, operator, AssignmentSource.MANAGER)
            for token_id, operator in uow.conn.execute(query, params).all()]


def plan(uow: UnitOfWork, job_code: str, node_code: str, operator_id: str) -> dict:
    """Record (or change) the manager's plan for one node of a job and propagate it."""
    validate_operator(operator_id)
    job = get_job(uow, job_code, lock=True)
    if job.status not in (JobStatus.PLANNED.value, JobStatus.IN_PROGRESS.value):
        raise InvalidTransition(f"job {job_code} is {job.status}; only planned or in-progress jobs take plans",
                                hint="plan a job before or while it runs")
    node = uow.conn.execute(sa.select(routing_node.c.id).where(routing_node.c.graph_id == job.graph_id,
                                                              routing_node.c.node_code == node_code)).first()
    if node is None:
        raise NotFound(f"node {node_code} is not on the graph of job {job_code}",
                       hint="use a node code of the job's routing graph")
    now = uow.now()
    existing = uow.conn.execute(sa.select(manager_assignment).where(
        manager_assignment.c.job_id == job.id, manager_assignment.c.node_id == node.id)).first()
    replaced: list[int] = []
    if existing is None:
        uow.conn.execute(manager_assignment.insert().values(job_id=job.id, node_id=node.id, operator_id=operator_id,
                                                            created_at=now, updated_at=now))
    elif existing.operator_id != operator_id:
        uow.conn.execute(manager_assignment.update().where(manager_assignment.c.id == existing.id)
                         .values(operator_id=operator_id, updated_at=now))
        # Hand the node's untouched manager assignments over to the new operator.
        no_open_session = ~sa.exists().where(token_work_session.c.assignment_id == token_assignment.c.id,
                                             token_work_session.c.status.in_(OPEN))
        on_node = sa.select(flow_token.c.id).where(flow_token.c.job_id == job.id,
                                                   flow_token.c.current_node_id == node.id,
                                                   flow_token.c.status == TokenStatus.READY.value)
        replaced = sorted(uow.conn.execute(
            token_assignment.update()
            .where(token_assignment.c.token_id.in_(on_node), token_assignment.c.status == AssignmentStatus.ACTIVE.value,
                   token_assignment.c.source == AssignmentSource.MANAGER.value, no_open_session)
            .values(status=AssignmentStatus.EXPIRED.value, updated_at=now)
            .returning(token_assignment.c.id)).scalars())
    created = propagate(uow, job.id)
    return {"job_code": job_code, "node": node_code, "operator_id": operator_id,
            "assignment_ids": created, "expired_assignment_ids": replaced}


def validate_operator(operator_id: object) -> str:
    if not isinstance(operator_id, str) or not graphs.CODE_RE.fullmatch(operator_id):
        raise ValidationError(f"invalid operator id {operator_id!r}",
                              hint="an operator id is 1-64 letters, digits, '_', '-' or '.'")
    return operator_id
