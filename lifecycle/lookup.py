"""Row lookups shared by the use cases, with the locks they need."""

from __future__ import annotations

import sqlalchemy as sa

from .errors import NotFound, ValidationError
from .schema import flow_token, hatthasilpa_job, job_graph_instance
from .uow import UnitOfWork


def _job(uow: UnitOfWork, where, what: str, lock: bool, share: bool) -> sa.Row:
    query = sa.select(hatthasilpa_job).where(where)
    if lock or share:
        query = query.with_for_update(read=share and not lock)
    row = uow.conn.execute(query).first()
    if row is None:
        raise NotFound(f"job {what} not found", hint="list jobs with `hatthasilpa job list --tenant T`")
    return row


def get_job(uow: UnitOfWork, job_code: str, lock: bool = False, share: bool = False) -> sa.Row:
    """The job row; ``lock`` takes FOR UPDATE, ``share`` FOR SHARE (no-ops on SQLite)."""
    return _job(uow, hatthasilpa_job.c.job_code == job_code, job_code, lock, share)


def get_job_by_id(uow: UnitOfWork, job_id: int, lock: bool = False, share: bool = False) -> sa.Row:
    return _job(uow, hatthasilpa_job.c.id == job_id, f"#{job_id}", lock, share)


MAX_ID = 2**63 - 1  # the largest BIGINT


def token_id_arg(value: object) -> int:
    """A token id: a positive int, or its ASCII digits (no sign, underscore, blank or other script)."""
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:
        token_id = int(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        token_id = value
    else:
        token_id = 0
    if not 0 < token_id <= MAX_ID:
        raise ValidationError(f"invalid token id {str(value)[:40]!r}",
                              hint=f"a token id is a whole number from 1 to {MAX_ID}")
    return token_id


def get_token(uow: UnitOfWork, token_id: object, lock: bool = False) -> sa.Row:
    token_id = token_id_arg(token_id)
    query = sa.select(flow_token).where(flow_token.c.id == token_id)
    if lock:
        query = query.with_for_update()
    row = uow.conn.execute(query).first()
    if row is None:
        raise NotFound(f"token {token_id} not found", hint="find ready tokens with `hatthasilpa work-queue --tenant T`")
    return row


def active_instance(uow: UnitOfWork, job_id: int) -> sa.Row | None:
    return uow.conn.execute(sa.select(job_graph_instance).where(
        job_graph_instance.c.job_id == job_id, job_graph_instance.c.status == "active")).first()
