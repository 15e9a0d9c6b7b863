"""Lifecycle use cases (docs/lifecycle.md): jobs, start/spawn, cancel as a hard reset, restore.

WARNING — this module is the Hatthasilpa token lifecycle core. Changes here must keep
token idempotency, the graph-instance state machine and the no-reuse rule intact;
the integration suite (``tests/integration``) proves them on PostgreSQL and SQLite.

Every use case takes a :class:`~lifecycle.uow.UnitOfWork` and never commits. Each
one that changes a job first locks the job row (``SELECT … FOR UPDATE`` on
PostgreSQL; SQLite's transactions already hold the write lock from ``BEGIN
IMMEDIATE``), so concurrent starts, cancels and restores of one job serialize and
every decision below is made on rows no one else can change meanwhile.
"""

from __future__ import annotations

import sqlalchemy as sa

from . import assignments, graphs, idempotency, serials, tokens
from .assignments import close_open_sessions, expire_active_assignments
from .errors import Conflict, InvalidTransition, MixedTokenStates, ValidationError
from .faults import fault_point
from .lookup import active_instance, get_job
from .schema import flow_token, hatthasilpa_job, job_graph_instance, routing_graph, token_spawn
from .states import (JOB_TRANSITIONS, JobStatus, ProductionMode, TokenStatus, is_mixed, require_job_transition,
                     sources, values)
from .uow import UnitOfWork, iso

MAX_QUANTITY = 100_000


# --------------------------------------------------------------------------- helpers
def move_job(uow: UnitOfWork, job: sa.Row, target: JobStatus) -> None:
    """Guarded transition: UPDATE … WHERE status IN (the sources the table allows)."""
    require_job_transition(job.status, target, job.job_code)
    moved = uow.conn.execute(
        hatthasilpa_job.update()
        .where(hatthasilpa_job.c.id == job.id,
               hatthasilpa_job.c.status.in_([s.value for s in sources(JOB_TRANSITIONS, target)]))
        .values(status=target.value, updated_at=uow.now())
        .returning(hatthasilpa_job.c.id)).first()
    if moved is None:
        raise InvalidTransition(f"job {job.job_code} changed status concurrently", hint="read it again and retry")


def _start_result(job: sa.Row, instance_id: int, spawned: bool, spawn_id: int | None, token_ids: list[int],
                  archived: list[int], serial_codes: list[str]) -> dict:
    """``serials`` holds the token set's serials in ``token_ids`` order (empty in batch mode)."""
    return {"job_code": job.job_code, "job_id": job.id, "status": JobStatus.IN_PROGRESS.value,
            "instance_id": instance_id, "spawned": spawned, "spawn_id": spawn_id,
            "token_ids": token_ids, "token_count": len(token_ids), "archived_instance_ids": archived,
            "serials": serial_codes}


# --------------------------------------------------------------------------- use cases
def create_job(uow: UnitOfWork, job_code: str, sku: str, quantity: object, graph_code: str,
               mode: str = ProductionMode.PIECE.value) -> dict:
    graphs.validate_code(job_code, "job code")
    graphs.validate_code(sku, "SKU")
    if isinstance(quantity, bool) or not isinstance(quantity, int) or not 0 < quantity <= MAX_QUANTITY:
        raise ValidationError(f"quantity must be a whole number from 1 to {MAX_QUANTITY}, got {quantity!r}",
                              hint="pass --quantity N with N > 0")
    if mode not in values(ProductionMode):
        raise ValidationError(f"unknown production mode {mode!r}", hint="use --mode piece or --mode batch")
    graph = graphs.active_graph(uow.conn, graph_code)
    exists = uow.conn.execute(sa.select(hatthasilpa_job.c.id).where(hatthasilpa_job.c.job_code == job_code)).first()
    if exists is not None:
        raise Conflict(f"job {job_code} already exists", hint="job codes are unique; choose another code")
    now = uow.now()
    job_id = uow.conn.execute(hatthasilpa_job.insert().values(
        job_code=job_code, sku=sku, quantity=quantity, graph_id=graph.id, production_mode=mode,
        status=JobStatus.PLANNED.value, created_at=now, updated_at=now).returning(hatthasilpa_job.c.id)).scalar_one()
    return {"job_id": job_id, "job_code": job_code, "sku": sku, "quantity": quantity, "graph": graph.code,
            "graph_version": graph.version, "production_mode": mode, "status": JobStatus.PLANNED.value}


def _ensure_token_set(uow: UnitOfWork, job: sa.Row, idempotency_key: str | None, actor: str) -> dict:
    """The spawn guard of docs/lifecycle.md §2, on the job's active instance (created when missing)."""
    node_ids = graphs.node_ids(uow.conn, job.graph_id)
    archived: list[int] = []
    instance = active_instance(uow, job.id)
    instance_id = instance.id if instance else tokens.create_instance(uow, job.id, job.graph_id, node_ids)
    fault_point("spawn.after_instance")
    counts = tokens.count_by_status(uow, instance_id, current_cycles=True)
    live = sum(counts.get(s, 0) for s in tokens.LIVE)
    completed = counts.get(TokenStatus.COMPLETED.value, 0)
    scrapped = counts.get(TokenStatus.SCRAPPED.value, 0)
    if is_mixed(counts):
        raise MixedTokenStates(
            f"instance {instance_id} of job {job.job_code} holds {scrapped} scrapped and {live + completed} "
            "live or completed tokens",
            hint=f"cancel the job (hard reset), restore it and start again: hatthasilpa job cancel --tenant T {job.job_code}",
            instance_id=instance_id, counts=counts)
    if live or completed:
        existing = tokens.token_ids(uow, instance_id, tokens.LIVE + [TokenStatus.COMPLETED.value])
        return _start_result(job, instance_id, False, None, existing, archived, serials.serials_of(uow, existing))
    # Piece mode: the serial policy may refuse here (SERIAL_POLICY_VIOLATION); the
    # caller's transaction then rolls back and nothing of this start remains.
    mode, serial_codes = serials.allocate(uow, job)
    if scrapped:  # only scrapped tokens: retire this instance, spawn a clean set on a new one
        archived = tokens.archive_instances(uow, job.id)
        instance_id = tokens.create_instance(uow, job.id, job.graph_id, node_ids)
    spawn_id, ids = tokens.spawn(uow, job, instance_id, graphs.start_node_id(uow.conn, job.graph_id),
                                 idempotency_key, actor, serial_codes)
    if serial_codes:
        serials.register(uow, job, mode, ids, serial_codes)
    fault_point("spawn.after_serials")
    assignments.propagate(uow, job.id, ids)
    return _start_result(job, instance_id, True, spawn_id, ids, archived, serial_codes or [])


def start_job(uow: UnitOfWork, job_code: str, idempotency_key: str | None = None, actor: str = "system") -> dict:
    """planned → in_progress with a token set; on an in-progress job, re-run the spawn guard."""
    idempotency.check_key(idempotency_key)
    job = get_job(uow, job_code, lock=True)

    def action() -> dict:
        if job.status != JobStatus.IN_PROGRESS.value:
            require_job_transition(job.status, JobStatus.IN_PROGRESS, job.job_code)
        result = _ensure_token_set(uow, job, idempotency_key, actor)
        if job.status != JobStatus.IN_PROGRESS.value:
            move_job(uow, job, JobStatus.IN_PROGRESS)
        return result

    return idempotency.run(uow, idempotency_key, "job.start", {"job_code": job_code}, action)


def spawn_tokens(uow: UnitOfWork, job_code: str, idempotency_key: str | None = None, actor: str = "system") -> dict:
    """Run the spawn guard on an in-progress job (``token spawn``)."""
    idempotency.check_key(idempotency_key)
    job = get_job(uow, job_code, lock=True)

    def action() -> dict:
        if job.status != JobStatus.IN_PROGRESS.value:
            raise InvalidTransition(f"job {job_code} is {job.status}; tokens are spawned only for a job in progress",
                                    hint=f"start it: hatthasilpa job start --tenant T {job_code}")
        return _ensure_token_set(uow, job, idempotency_key, actor)

    return idempotency.run(uow, idempotency_key, "token.spawn", {"job_code": job_code}, action)


def cancel_job(uow: UnitOfWork, job_code: str, idempotency_key: str | None = None, actor: str = "system") -> dict:
    """Cancel = hard reset (docs/lifecycle.md §3), in the caller's one transaction."""
    idempotency.check_key(idempotency_key)
    job = get_job(uow, job_code, lock=True)

    def action() -> dict:
        if job.status == JobStatus.CANCELLED.value:
            return {"job_code": job_code, "job_id": job.id, "status": job.status, "cancelled": False,
                    "scrapped_token_ids": [], "closed_session_ids": [], "expired_assignment_ids": [],
                    "archived_instance_ids": [], "voided_serials": []}
        require_job_transition(job.status, JobStatus.CANCELLED, job.job_code)
        result = hard_reset(uow, job, actor)
        move_job(uow, job, JobStatus.CANCELLED)
        return {"job_code": job_code, "job_id": job.id, "status": JobStatus.CANCELLED.value, "cancelled": True,
                **result}

    return idempotency.run(uow, idempotency_key, "job.cancel", {"job_code": job_code}, action)


def hard_reset(uow: UnitOfWork, job: sa.Row, actor: str) -> dict:
    """Retire every live token of the job (``retire_tokens``) and archive its instances.
    The job row must already be locked."""
    live = tokens.lock(uow, flow_token.c.job_id == job.id, flow_token.c.status.in_(tokens.LIVE))
    retired = retire_tokens(uow, live, actor, event="scrapped_by_cancel", close_reason="job_cancelled")
    fault_point("cancel.after_scrap")
    return {**retired, "archived_instance_ids": tokens.archive_instances(uow, job.id)}


def retire_tokens(uow: UnitOfWork, rows: list[sa.Row], actor: str, event: str, close_reason: str) -> dict:
    """The hard reset's steps for the given tokens (rows read under their row lock): close
    their open sessions, expire their active assignments, scrap them (each with its event)
    and void their issued serials through the outbox. Cancel and the repairs both use it."""
    ids = [t.id for t in rows]
    closed = close_open_sessions(uow, ids, reason=close_reason)
    expired = expire_active_assignments(uow, ids)
    scrapped = tokens.move(uow, rows, TokenStatus.SCRAPPED, event, actor, strict=False)
    voided = serials.void_for_tokens(uow, scrapped)
    return {"scrapped_token_ids": scrapped, "closed_session_ids": closed, "expired_assignment_ids": expired,
            "voided_serials": voided}


def restore_job(uow: UnitOfWork, job_code: str, idempotency_key: str | None = None) -> dict:
    idempotency.check_key(idempotency_key)
    job = get_job(uow, job_code, lock=True)

    def action() -> dict:
        move_job(uow, job, JobStatus.PLANNED)
        return {"job_code": job_code, "job_id": job.id, "status": JobStatus.PLANNED.value}

    return idempotency.run(uow, idempotency_key, "job.restore", {"job_code": job_code}, action)


def archive_job(uow: UnitOfWork, job_code: str, idempotency_key: str | None = None) -> dict:
    idempotency.check_key(idempotency_key)
    job = get_job(uow, job_code, lock=True)

    def action() -> dict:
        move_job(uow, job, JobStatus.ARCHIVED)
        archived = tokens.archive_instances(uow, job.id)
        return {"job_code": job_code, "job_id": job.id, "status": JobStatus.ARCHIVED.value,
                "archived_instance_ids": archived}

    return idempotency.run(uow, idempotency_key, "job.archive", {"job_code": job_code}, action)


def show_job(uow: UnitOfWork, job_code: str) -> dict:
    job = get_job(uow, job_code)
    graph = uow.conn.execute(sa.select(routing_graph.c.code, routing_graph.c.version)
                             .where(routing_graph.c.id == job.graph_id)).one()
    instances = []
    active_id = None
    for inst in uow.conn.execute(sa.select(job_graph_instance).where(job_graph_instance.c.job_id == job.id)
                                 .order_by(job_graph_instance.c.id)):
        spawns = uow.conn.execute(sa.select(sa.func.count()).select_from(token_spawn)
                                  .where(token_spawn.c.instance_id == inst.id)).scalar_one()
        instances.append({"instance_id": inst.id, "status": inst.status, "created_at": iso(inst.created_at),
                          "archived_at": iso(inst.archived_at), "spawn_cycles": spawns,
                          "tokens": tokens.count_by_status(uow, inst.id)})
        if inst.status == "active":
            active_id = inst.id
    return {"job_id": job.id, "job_code": job.job_code, "sku": job.sku, "quantity": job.quantity,
            "graph": graph.code, "graph_version": graph.version, "production_mode": job.production_mode,
            "status": job.status, "created_at": iso(job.created_at), "updated_at": iso(job.updated_at),
            "active_instance_id": active_id,
            "token_ids": tokens.token_ids(uow, active_id) if active_id else [],
            "instances": instances}


def list_jobs(uow: UnitOfWork, status: str | None = None) -> list[dict]:
    query = sa.select(hatthasilpa_job.c.job_code, hatthasilpa_job.c.sku, hatthasilpa_job.c.quantity,
                      hatthasilpa_job.c.status, hatthasilpa_job.c.production_mode).order_by(hatthasilpa_job.c.job_code)
    if status is not None:
        if status not in values(JobStatus):
            raise ValidationError(f"unknown job status {status!r}", hint=f"one of: {', '.join(values(JobStatus))}")
        query = query.where(hatthasilpa_job.c.status == status)
    return [dict(r._mapping) for r in uow.conn.execute(query)]
