"""The sanitized work queue (docs/lifecycle.md §5).

Reads only the ``work_queue`` view, which already admits nothing but ready tokens on
an active instance of an in-progress job. Filtering by operator shows that operator's
assigned tokens first, then unassigned ones, and never a token assigned to someone else.

Invariant: the work queue holds only ready tokens of active instances of jobs in progress.
Guarded by tests/integration/test_lifecycle.py, tests/integration/test_sessions.py.
"""

from __future__ import annotations

import sqlalchemy as sa

from .errors import ValidationError
from .uow import UnitOfWork, iso

work_queue = sa.table(
    "work_queue",
    *(sa.column(c) for c in ("token_id", "job_id", "job_code", "sku", "instance_id", "piece_index", "node_id",
                             "node", "status", "serial_code", "assignment_id", "assigned_operator", "ready_since")),
)

MAX_LIMIT = 10_000


def read_queue(uow: UnitOfWork, node: str | None = None, operator: str | None = None, limit: int = 1000) -> dict:
    if not isinstance(limit, int) or not 0 < limit <= MAX_LIMIT:
        raise ValidationError(f"limit must be between 1 and {MAX_LIMIT}", hint="pass --limit N")
    query = sa.select(work_queue)
    if node is not None:
        query = query.where(work_queue.c.node == node)
    order = [work_queue.c.job_code, work_queue.c.piece_index, work_queue.c.token_id]
    if operator is not None:
        query = query.where(sa.or_(work_queue.c.assigned_operator == operator,
                                   work_queue.c.assigned_operator.is_(None)))
        order.insert(0, sa.case((work_queue.c.assigned_operator == operator, 0), else_=1))
    rows = uow.conn.execute(query.order_by(*order).limit(limit + 1)).all()
    tokens = [{**r._mapping, "ready_since": iso(r.ready_since)} for r in rows[:limit]]
    return {"tokens": tokens, "count": len(tokens), "truncated": len(rows) > limit}
