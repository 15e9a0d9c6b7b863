"""Closing operator work when tokens leave the floor.

A cancel (and later a repair) closes every open work session of the tokens it
scraps, counting the seconds worked up to now, and expires their active assignments,
inside the caller's transaction.
"""

from __future__ import annotations

import sqlalchemy as sa

from .schema import token_assignment, token_work_session
from .states import AssignmentStatus, SessionStatus
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
    if not token_ids:
        return []
    now = uow.now()
    sessions = uow.conn.execute(
        sa.select(token_work_session).where(token_work_session.c.token_id.in_(token_ids),
                                            token_work_session.c.status.in_(OPEN))
        .with_for_update()).all()
    for session in sessions:
        uow.conn.execute(token_work_session.update().where(token_work_session.c.id == session.id)
                         .values(status=SessionStatus.CLOSED.value, ended_at=max(now, as_utc(session.started_at)),
                                 work_seconds=worked_seconds(session, now), close_reason=reason, updated_at=now))
    return sorted(s.id for s in sessions)


def expire_active_assignments(uow: UnitOfWork, token_ids: list[int]) -> list[int]:
    if not token_ids:
        return []
    return sorted(uow.conn.execute(
        token_assignment.update()
        .where(token_assignment.c.token_id.in_(token_ids), token_assignment.c.status == AssignmentStatus.ACTIVE.value)
        .values(status=AssignmentStatus.EXPIRED.value, updated_at=uow.now())
        .returning(token_assignment.c.id)).scalars())
