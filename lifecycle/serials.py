"""Serial numbers of finished pieces (docs/lifecycle.md §6) and the tenant side of their outbox.

WARNING — part of the token lifecycle core: serial registry integrity depends on
everything here happening in the caller's one transaction.

Policy, read from the tenant's core record carried by the unit of work
(:class:`~lifecycle.uow.TenantInfo`):

- ``FF_SERIAL_STD_HAT`` on → standard serials ``{TENANT}-{SKU}-{SEQ:06d}``. ``TENANT`` is
  the tenant code upper-cased (tenant codes are case-insensitive: their databases are
  named in lower case), ``SKU`` is the job's SKU as written, ``SEQ`` comes from the
  per-(tenant, SKU) ``serial_sequence`` row, taken under a row lock (``SELECT … FOR
  UPDATE`` on PostgreSQL; SQLite transactions already hold the write lock from
  ``BEGIN IMMEDIATE``) and only ever moved forward, so a number is never reused, not
  even after a void. (A spawn that rolls back takes its numbers back with it: none of
  its serials was ever written anywhere.)
- flag off on a test tenant → ``TEMP-{TENANT}-{SKU}-{12 hex}`` serials.
- flag off on any other tenant → a piece-mode spawn is refused with
  ``SERIAL_POLICY_VIOLATION``; the caller's transaction rolls back, nothing is written.

Batch-mode jobs carry no per-piece serial. A serial is ``issued`` at spawn,
``completed`` when its token completes (:func:`complete_serial`) and ``voided`` when
a cancel scraps its token (:func:`void_for_tokens`). Every write to the tenant
``serial_registry`` bumps the serial's ``version`` and adds a ``serial_outbox`` row
(a fresh event id and the serial's full new state) in the same transaction;
``lifecycle.outbox`` relays those rows to the core registry.

Invariant: one deterministic serial per piece token, never reused, every write with its
outbox row. Guarded by tests/integration/test_serials.py.
"""

from __future__ import annotations

import uuid
from typing import Mapping

import sqlalchemy as sa

from .db import dialect_insert
from .errors import InternalError, InvalidTransition, NotFound, SerialPolicyViolation, ValidationError
from .registry import FF_SERIAL_STD_HAT
from .schema import flow_token, hatthasilpa_job, serial_outbox, serial_registry, serial_sequence
from .states import SERIAL_TRANSITIONS, SerialMode, SerialStatus, TokenStatus, sources
from .uow import TenantInfo, UnitOfWork, iso

MAX_SERIAL_LENGTH = serial_registry.c.serial_code.type.length


# --------------------------------------------------------------------------- policy
def serial_mode(tenant: TenantInfo | None) -> SerialMode:
    """The serial mode a piece-mode spawn gets on this tenant, or SERIAL_POLICY_VIOLATION."""
    if tenant is None:
        raise InternalError("the unit of work carries no tenant information; serials cannot be issued",
                            hint="open tenant units of work with UnitOfWork(..., tenant=TenantInfo(...))")
    if tenant.flag(FF_SERIAL_STD_HAT):
        return SerialMode.STD
    if tenant.is_test_tenant:
        return SerialMode.TEMP
    raise SerialPolicyViolation(
        f"tenant {tenant.code} is a production tenant with {FF_SERIAL_STD_HAT} off: piece-mode jobs need "
        "standard serials, and TEMP serials are allowed only on test tenants",
        hint=f"hatthasilpa flag set {tenant.code} {FF_SERIAL_STD_HAT} on", tenant=tenant.code)


def standard_serial(tenant_code: str, sku: str, seq: int) -> str:
    return f"{tenant_code.upper()}-{sku}-{seq:06d}"


def temp_serial(tenant_code: str, sku: str) -> str:
    return f"TEMP-{tenant_code.upper()}-{sku}-{uuid.uuid4().hex[:12].upper()}"


def reserve_numbers(uow: UnitOfWork, tenant_code: str, sku: str, count: int) -> list[int]:
    """Take the next ``count`` numbers of the (tenant, SKU) sequence under its row lock."""
    now = uow.now()
    uow.conn.execute(dialect_insert(uow.conn, serial_sequence)
                     .values(tenant_code=tenant_code, sku=sku, last_value=0, created_at=now, updated_at=now)
                     .on_conflict_do_nothing(index_elements=["tenant_code", "sku"]))
    key = (serial_sequence.c.tenant_code == tenant_code, serial_sequence.c.sku == sku)
    last = uow.conn.execute(sa.select(serial_sequence.c.last_value).where(*key).with_for_update()).scalar_one()
    uow.conn.execute(serial_sequence.update().where(*key).values(last_value=last + count, updated_at=now))
    return list(range(last + 1, last + count + 1))


def allocate(uow: UnitOfWork, job: sa.Row) -> tuple[SerialMode | None, list[str] | None]:
    """The serials a spawn of ``job`` will carry, one per piece; (None, None) in batch mode.

    Call it before anything is written so a policy refusal leaves no trace even
    within the transaction.
    """
    if job.production_mode != "piece":
        return None, None
    mode = serial_mode(uow.tenant)
    code = uow.tenant.code
    if mode is SerialMode.STD:
        codes = [standard_serial(code, job.sku, n) for n in reserve_numbers(uow, code, job.sku, job.quantity)]
    else:
        codes = [temp_serial(code, job.sku) for _ in range(job.quantity)]
    longest = max(len(c) for c in codes)
    if longest > MAX_SERIAL_LENGTH:
        raise ValidationError(f"serials of tenant {code} and SKU {job.sku} would be {longest} characters long, "
                              f"over the limit of {MAX_SERIAL_LENGTH}",
                              hint="use a shorter SKU for piece-mode jobs")
    return mode, codes


# --------------------------------------------------------------------------- writes
def _outbox_rows(uow: UnitOfWork, states: list[dict]) -> list[dict]:
    now = uow.now()
    return [{"event_id": str(uuid.uuid4()), "serial_code": s["serial_code"], "version": s["version"],
             "payload": s, "attempts": 0, "created_at": now} for s in states]


def _state(row: Mapping, job_code: str) -> dict:
    """The full state of one serial (a ``serial_registry`` row), as the outbox carries it to core."""
    return {"serial_code": row["serial_code"], "tenant_code": row["tenant_code"], "sku": row["sku"],
            "job_id": row["job_id"], "job_code": job_code, "token_id": row["token_id"], "mode": row["mode"],
            "status": row["status"], "version": row["version"], "changed_at": iso(row["updated_at"])}


def register(uow: UnitOfWork, job: sa.Row, mode: SerialMode, token_ids: list[int], codes: list[str]) -> None:
    """Record freshly spawned tokens' serials as ``issued``, each with its outbox event."""
    now = uow.now()
    rows = [{"serial_code": c, "tenant_code": uow.tenant.code, "sku": job.sku, "job_id": job.id, "token_id": t,
             "mode": mode.value, "status": SerialStatus.ISSUED.value, "version": 1, "created_at": now,
             "updated_at": now} for t, c in zip(token_ids, codes, strict=True)]
    uow.conn.execute(serial_registry.insert(), rows)
    uow.conn.execute(serial_outbox.insert(), _outbox_rows(uow, [_state(r, job.job_code) for r in rows]))


def _transition(uow: UnitOfWork, token_ids: list[int], target: SerialStatus) -> list[dict]:
    """Guarded move of the serials of ``token_ids`` to ``target``; returns their new states."""
    if not token_ids:
        return []
    now = uow.now()
    moved = uow.conn.execute(
        serial_registry.update()
        .where(serial_registry.c.token_id.in_(token_ids),
               serial_registry.c.status.in_([s.value for s in sources(SERIAL_TRANSITIONS, target)]))
        .values(status=target.value, version=serial_registry.c.version + 1, updated_at=now)
        .returning(*serial_registry.c)).all()
    if not moved:
        return []
    jobs = dict(uow.conn.execute(sa.select(hatthasilpa_job.c.id, hatthasilpa_job.c.job_code)
                                 .where(hatthasilpa_job.c.id.in_({r.job_id for r in moved}))).all())
    states = sorted((_state(r._mapping, jobs[r.job_id]) for r in moved), key=lambda s: s["token_id"])
    uow.conn.execute(serial_outbox.insert(), _outbox_rows(uow, states))
    return states


def void_for_tokens(uow: UnitOfWork, token_ids: list[int]) -> list[str]:
    """Void the issued serials of tokens a cancel just scrapped; return the voided serials."""
    return [s["serial_code"] for s in _transition(uow, token_ids, SerialStatus.VOIDED)]


def complete_serial(uow: UnitOfWork, token_id: int) -> dict | None:
    """Mark the serial of a completed token ``completed`` (through the outbox).

    Call it in the same unit of work that moved the token to ``completed``. Returns
    the serial's state, or None when the token carries no serial (batch mode). A
    serial already completed is returned unchanged; a token that is not completed, or
    whose serial was voided, is INVALID_TRANSITION.
    """
    token = uow.conn.execute(sa.select(flow_token.c.id, flow_token.c.status)
                             .where(flow_token.c.id == token_id)).first()
    if token is None:
        raise NotFound(f"token {token_id} not found", hint="pass the id of an existing token")
    serial = uow.conn.execute(sa.select(serial_registry).where(serial_registry.c.token_id == token_id)
                              .with_for_update()).first()
    if serial is None:
        return None
    if serial.status == SerialStatus.COMPLETED.value:
        job_code = uow.conn.execute(sa.select(hatthasilpa_job.c.job_code)
                                    .where(hatthasilpa_job.c.id == serial.job_id)).scalar_one()
        return _state(serial._mapping, job_code)
    if token.status != TokenStatus.COMPLETED.value:
        raise InvalidTransition(f"token {token_id} is {token.status}; its serial {serial.serial_code} completes "
                                "only when the token completes",
                                hint="complete the token's session on an end node first")
    moved = _transition(uow, [token_id], SerialStatus.COMPLETED)
    if not moved:
        raise InvalidTransition(f"serial {serial.serial_code} is {serial.status} and cannot become completed",
                                hint="a voided serial stays voided; its token was scrapped")
    return moved[0]


def republish(uow: UnitOfWork, serial_code: str, above_version: int) -> dict | None:
    """Send the tenant's current state of a serial to core again (a guarded repair).

    The relay upserts core only when core's version is below the event's, so the
    serial's version moves past ``above_version`` (core's current version, 0 when core
    lacks the serial) and a fresh outbox event carries the full state, all in the
    caller's transaction. Returns the new state, or None when the tenant has no such serial.
    """
    row = uow.conn.execute(sa.select(serial_registry).where(serial_registry.c.serial_code == serial_code)
                           .with_for_update()).first()
    if row is None:
        return None
    moved = uow.conn.execute(
        serial_registry.update().where(serial_registry.c.serial_code == serial_code)
        .values(version=max(row.version, above_version) + 1, updated_at=uow.now())
        .returning(*serial_registry.c)).one()
    job_code = uow.conn.execute(sa.select(hatthasilpa_job.c.job_code)
                                .where(hatthasilpa_job.c.id == moved.job_id)).scalar_one()
    state = _state(moved._mapping, job_code)
    uow.conn.execute(serial_outbox.insert(), _outbox_rows(uow, [state]))
    return state


# --------------------------------------------------------------------------- reads
def serials_of(uow: UnitOfWork, token_ids: list[int]) -> list[str]:
    """The serials of ``token_ids`` in that order (tokens without one are left out)."""
    if not token_ids:
        return []
    by_token = dict(uow.conn.execute(sa.select(flow_token.c.id, flow_token.c.serial_code)
                                     .where(flow_token.c.id.in_(token_ids))).all())
    return [by_token[t] for t in token_ids if by_token.get(t)]
