"""A token's timeline: the row, its events, sessions, assignments and serial.

What an engineer reads when a check flags a token (``hatthasilpa token show``).
"""

from __future__ import annotations

import sqlalchemy as sa

from .lookup import get_token
from .schema import (
    hatthasilpa_job,
    job_graph_instance,
    routing_node,
    serial_registry,
    token_assignment,
    token_event,
    token_work_session,
)
from .uow import UnitOfWork, iso


def _rows(uow: UnitOfWork, query) -> list[dict]:
    out = []
    for row in uow.conn.execute(query):
        out.append({k: iso(v) if k.endswith("_at") or k == "at" else v for k, v in row._mapping.items()})
    return out


def show_token(uow: UnitOfWork, token_id: object) -> dict:
    token = get_token(uow, token_id)
    job = uow.conn.execute(sa.select(hatthasilpa_job.c.job_code, hatthasilpa_job.c.status)
                           .where(hatthasilpa_job.c.id == token.job_id)).one()
    instance_status = uow.conn.execute(sa.select(job_graph_instance.c.status)
                                       .where(job_graph_instance.c.id == token.instance_id)).scalar_one()
    node = uow.conn.execute(sa.select(routing_node.c.node_code).where(routing_node.c.id == token.current_node_id)).scalar()
    events = _rows(uow, sa.select(token_event.c.id, token_event.c.event_type, token_event.c.from_status,
                                  token_event.c.to_status, routing_node.c.node_code.label("node"),
                                  token_event.c.actor, token_event.c.at)
                   .outerjoin(routing_node, routing_node.c.id == token_event.c.node_id)
                   .where(token_event.c.token_id == token.id).order_by(token_event.c.id))
    sessions = _rows(uow, sa.select(token_work_session.c.id, token_work_session.c.operator_id,
                                    token_work_session.c.assignment_id, token_work_session.c.status,
                                    token_work_session.c.started_at, token_work_session.c.ended_at,
                                    token_work_session.c.work_seconds, token_work_session.c.close_reason)
                     .where(token_work_session.c.token_id == token.id).order_by(token_work_session.c.id))
    assigned = _rows(uow, sa.select(token_assignment.c.id, token_assignment.c.operator_id, token_assignment.c.status,
                                    token_assignment.c.source, token_assignment.c.created_at)
                     .where(token_assignment.c.token_id == token.id).order_by(token_assignment.c.id))
    serial = _rows(uow, sa.select(serial_registry.c.serial_code, serial_registry.c.mode, serial_registry.c.status,
                                  serial_registry.c.version, serial_registry.c.updated_at)
                   .where(serial_registry.c.token_id == token.id))
    return {"token_id": token.id, "job_code": job.job_code, "job_status": job.status,
            "instance_id": token.instance_id, "instance_status": instance_status, "spawn_id": token.spawn_id,
            "piece_index": token.piece_index, "node": node, "status": token.status,
            "serial_code": token.serial_code, "scrapped_at": iso(token.scrapped_at),
            "completed_at": iso(token.completed_at), "events": events, "sessions": sessions,
            "assignments": assigned, "serial": serial[0] if serial else None}
