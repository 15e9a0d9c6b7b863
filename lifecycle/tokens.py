"""Tokens, spawn cycles and their lineage.

Invariant: every token status change — spawn aside, which creates tokens ``ready`` —
goes through :func:`move`, which refuses a move ``lifecycle.states.TOKEN_TRANSITIONS``
does not list (INVALID_TRANSITION, before anything is written), updates with a guard
(``WHERE status = <the status it was read in>``) so a token that moved meanwhile is not
overwritten, keeps the status timestamps consistent, and appends a ``token_event`` per
moved token in the same transaction. Guarded by ``tests/integration/test_token_moves.py``
and the lifecycle and session suites.
"""

from __future__ import annotations

import functools

import sqlalchemy as sa

from .db import is_postgres
from .schema import Timestamp, flow_token, job_graph_instance, node_instance, token_event, token_spawn
from .errors import TokenBusy
from .faults import fault_point
from .states import LIVE_TOKEN_STATUSES, InstanceStatus, TokenStatus, require_token_transition
from .uow import UnitOfWork

LIVE = [s.value for s in LIVE_TOKEN_STATUSES]


def record_events(uow: UnitOfWork, events: list[dict]) -> None:
    if events:
        now = uow.now()
        uow.conn.execute(token_event.insert(), [{"at": now, "created_at": now, "actor": "system", **e} for e in events])


def create_instance(uow: UnitOfWork, job_id: int, graph_id: int, node_ids: list[int]) -> int:
    now = uow.now()
    instance_id = uow.conn.execute(job_graph_instance.insert().values(
        job_id=job_id, graph_id=graph_id, status=InstanceStatus.ACTIVE.value, created_at=now, updated_at=now,
    ).returning(job_graph_instance.c.id)).scalar_one()
    uow.conn.execute(node_instance.insert(), [
        {"instance_id": instance_id, "node_id": n, "status": "open", "created_at": now, "updated_at": now}
        for n in node_ids])
    return instance_id


def archive_instances(uow: UnitOfWork, job_id: int) -> list[int]:
    """Archive every active or completed instance of a job; return their ids."""
    now = uow.now()
    archived = list(uow.conn.execute(
        job_graph_instance.update()
        .where(job_graph_instance.c.job_id == job_id,
               job_graph_instance.c.status.in_([InstanceStatus.ACTIVE.value, InstanceStatus.COMPLETED.value]))
        .values(status=InstanceStatus.ARCHIVED.value, archived_at=now, updated_at=now)
        .returning(job_graph_instance.c.id)).scalars())
    if archived:
        uow.conn.execute(node_instance.update().where(node_instance.c.instance_id.in_(archived))
                         .values(status="archived", updated_at=now))
    return sorted(archived)


def count_by_status(uow: UnitOfWork, instance_id: int, current_cycles: bool = False) -> dict[str, int]:
    """Token counts by status on an instance; ``current_cycles`` leaves out the tokens of
    spawn cycles a repair superseded."""
    query = sa.select(flow_token.c.status, sa.func.count()).where(flow_token.c.instance_id == instance_id)
    if current_cycles:
        query = query.join(token_spawn, token_spawn.c.id == flow_token.c.spawn_id) \
            .where(token_spawn.c.superseded_at.is_(None))
    return {status: n for status, n in uow.conn.execute(query.group_by(flow_token.c.status))}


def supersede_cycles(uow: UnitOfWork, spawn_ids: list[int]) -> list[int]:
    """Mark spawn cycles superseded (a repair retired them); return those it marked."""
    if not spawn_ids:
        return []
    return sorted(uow.conn.execute(
        token_spawn.update().where(token_spawn.c.id.in_(spawn_ids), token_spawn.c.superseded_at.is_(None))
        .values(superseded_at=uow.now()).returning(token_spawn.c.id)).scalars())


def token_ids(uow: UnitOfWork, instance_id: int, statuses: list[str] | None = None) -> list[int]:
    query = sa.select(flow_token.c.id).where(flow_token.c.instance_id == instance_id)
    if statuses is not None:
        query = query.where(flow_token.c.status.in_(statuses))
    return list(uow.conn.execute(query.order_by(flow_token.c.id)).scalars())


def spawn(uow: UnitOfWork, job: sa.Row, instance_id: int, start_node_id: int,
          idempotency_key: str | None, actor: str, serial_codes: list[str] | None = None) -> tuple[int, list[int]]:
    """Record one spawn cycle and place ``job.quantity`` ready tokens on the start node,
    the i-th carrying ``serial_codes[i]`` when given (piece mode)."""
    now = uow.now()
    spawn_id = uow.conn.execute(token_spawn.insert().values(
        instance_id=instance_id, job_id=job.id, token_count=job.quantity,
        idempotency_key=idempotency_key, created_at=now,
    ).returning(token_spawn.c.id)).scalar_one()
    rows = [{"instance_id": instance_id, "job_id": job.id, "spawn_id": spawn_id, "piece_index": i,
             "current_node_id": start_node_id, "status": TokenStatus.READY.value,
             "serial_code": serial_codes[i - 1] if serial_codes else None,
             "created_at": now, "updated_at": now} for i in range(1, job.quantity + 1)]
    ids = list(uow.conn.execute(flow_token.insert().returning(flow_token.c.id, sort_by_parameter_order=True),
                                rows).scalars())
    fault_point("spawn.mid_tokens")
    record_events(uow, [{"token_id": t, "event_type": "spawned", "from_status": None,
                         "to_status": TokenStatus.READY.value, "node_id": start_node_id, "actor": actor}
                        for t in ids])
    return spawn_id, ids


def move(uow: UnitOfWork, tokens: list[sa.Row], to: TokenStatus, event: str, actor: str, *,
         node_id: int | None = None, strict: bool = True) -> list[int]:
    """Move tokens (rows with ``id``, ``status``, ``current_node_id``, as read under their
    row lock) to ``to``; return the ids that moved.

    Every move is checked against the token state machine before anything is written.
    ``node_id`` also moves them to that node (routing). A token whose status changed
    since it was read is TOKEN_BUSY when ``strict``, else left alone and left out.
    On PostgreSQL the guarded update and the events of the tokens it moved are one statement.
    """
    for token in tokens:
        require_token_transition(token.status, to, token.id)
    postgres = is_postgres(uow.conn)
    statement = _move_statement(postgres, to, node_id is not None)
    params = {"m_to": to.value, "m_now": uow.now(), "m_node": node_id, "m_event": event, "m_actor": actor}
    moved: set[int] = set()
    for status in sorted({t.status for t in tokens}):
        ids = [t.id for t in tokens if t.status == status]
        moved |= set(uow.conn.execute(statement, {**params, "m_ids": ids, "m_from": status}).scalars())
    if strict and len(moved) < len(tokens):
        stale = sorted(t.id for t in tokens if t.id not in moved)
        raise TokenBusy(f"token {stale[0]} changed meanwhile", hint="read it again and retry")
    if not postgres:
        record_events(uow, [{"token_id": t.id, "event_type": event, "from_status": t.status, "to_status": to.value,
                             "node_id": node_id or t.current_node_id, "actor": actor}
                            for t in tokens if t.id in moved])
    return sorted(moved)


@functools.cache
def _move_statement(postgres: bool, to: TokenStatus, routing: bool) -> sa.Executable:
    """The guarded update of :func:`move` (built once per kind of move); on PostgreSQL it also
    appends each moved token's event, its node the one the token is on after the move."""
    now = sa.bindparam("m_now", type_=Timestamp)
    values = {"status": sa.bindparam("m_to", type_=sa.String), "updated_at": now}
    if routing:
        values["current_node_id"] = sa.bindparam("m_node", type_=sa.Integer)
    if to is TokenStatus.SCRAPPED:
        values.update(scrapped_at=sa.func.coalesce(flow_token.c.scrapped_at, now), completed_at=sa.null())
    elif to is TokenStatus.COMPLETED:
        values["completed_at"] = now
    update = (flow_token.update()
              .where(flow_token.c.id.in_(sa.bindparam("m_ids", expanding=True)),
                     flow_token.c.status == sa.bindparam("m_from", type_=sa.String))
              .values(**values))
    if not postgres:
        return update.returning(flow_token.c.id)
    moved = update.returning(flow_token.c.id, flow_token.c.current_node_id).cte("moved")
    return (token_event.insert()
            .from_select(["token_id", "event_type", "from_status", "to_status", "node_id", "actor", "at", "created_at"],
                         sa.select(moved.c.id, sa.bindparam("m_event", type_=sa.String),
                                   sa.bindparam("m_from", type_=sa.String), sa.bindparam("m_to", type_=sa.String),
                                   moved.c.current_node_id, sa.bindparam("m_actor", type_=sa.String), now, now)
                         .order_by(moved.c.id))
            .returning(token_event.c.token_id))


def lock(uow: UnitOfWork, *where) -> list[sa.Row]:
    """The tokens matching ``where``, locked for update, in id order (the lock order)."""
    return list(uow.conn.execute(sa.select(flow_token.c.id, flow_token.c.status, flow_token.c.current_node_id)
                                 .where(*where).order_by(flow_token.c.id).with_for_update()))
