"""Tokens, spawn cycles and their lineage.

Every token status change goes through this module and appends a ``token_event``
row in the same transaction. Updates are guarded (``WHERE status IN …``) so a token
that moved meanwhile is left alone rather than overwritten.
"""

from __future__ import annotations

import sqlalchemy as sa

from .schema import flow_token, job_graph_instance, node_instance, token_event, token_spawn
from .states import LIVE_TOKEN_STATUSES, InstanceStatus, TokenStatus
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


def count_by_status(uow: UnitOfWork, instance_id: int) -> dict[str, int]:
    rows = uow.conn.execute(sa.select(flow_token.c.status, sa.func.count())
                            .where(flow_token.c.instance_id == instance_id).group_by(flow_token.c.status))
    return {status: n for status, n in rows}


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
    record_events(uow, [{"token_id": t, "event_type": "spawned", "from_status": None,
                         "to_status": TokenStatus.READY.value, "node_id": start_node_id, "actor": actor}
                        for t in ids])
    return spawn_id, ids


def lock_live_tokens(uow: UnitOfWork, job_id: int) -> list[sa.Row]:
    """Every live token of a job, on any instance, locked for update."""
    return list(uow.conn.execute(
        sa.select(flow_token.c.id, flow_token.c.status, flow_token.c.current_node_id)
        .where(flow_token.c.job_id == job_id, flow_token.c.status.in_(LIVE))
        .order_by(flow_token.c.id).with_for_update()))


def scrap(uow: UnitOfWork, tokens: list[sa.Row], actor: str, reason: str) -> list[int]:
    """Scrap the given live tokens (rows with id, status, current_node_id)."""
    if not tokens:
        return []
    now = uow.now()
    ids = [t.id for t in tokens]
    scrapped = set(uow.conn.execute(
        flow_token.update().where(flow_token.c.id.in_(ids), flow_token.c.status.in_(LIVE))
        .values(status=TokenStatus.SCRAPPED.value, scrapped_at=now, updated_at=now)
        .returning(flow_token.c.id)).scalars())
    record_events(uow, [{"token_id": t.id, "event_type": reason, "from_status": t.status,
                         "to_status": TokenStatus.SCRAPPED.value, "node_id": t.current_node_id, "actor": actor}
                        for t in tokens if t.id in scrapped])
    return sorted(scrapped)
