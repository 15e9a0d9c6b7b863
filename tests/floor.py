"""A clean factory floor for the check tests, and the raw writes it still needs.

Jobs are created, started and cancelled through ``lifecycle.services``, which issue and
void their serials; completed tokens complete theirs through ``lifecycle.serials``, and
the real outbox relay publishes every change to core. Operator work (assignments,
sessions) is written with plain inserts so that each session can be placed in time.
Every serial change is backdated past the outbox grace period, as on a floor that has
been running for a while.

The clean floor (tenant ``atelier``, graph ``bag``: cut → stitch → edge → qc):

- ``J-RUN`` (piece, 4): r1 active session (op1), r2 paused session (op2), r3 ready on
  ``stitch`` after a finished session, r4 completed; all with serials.
- ``J-CAN`` (piece, 2): started, c1 worked on, cancelled (hard reset); serials voided.
- ``J-RESTART`` (piece, 3): started, cancelled, restored, started again; old set
  scrapped on an archived instance, new set ready with serials.
- ``J-BATCH`` (batch, 2): started, no serials.  ``J-PLAN`` (piece, 1): planned.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import sqlalchemy as sa

from lifecycle import outbox, serials, services
from lifecycle.db import get_engine
from lifecycle.schema import (flow_token, hatthasilpa_job, routing_node, serial_outbox, serial_registry,
                              token_assignment, token_event, token_work_session)
from lifecycle.uow import utcnow

TENANT = "atelier"
HOUR = dt.timedelta(hours=1)


@dataclass
class Floor:
    stores: object
    ids: dict = field(default_factory=dict)
    tenant_code: str = TENANT

    @property
    def tenant(self):
        return self.stores.tenant_engine(self.tenant_code)

    @property
    def core(self):
        return get_engine(self.stores.settings.core_url)

    @property
    def postgres(self) -> bool:
        return self.stores.is_postgres

    def tenant_sql(self, sql: str, **params):
        """Execute one statement in its own transaction; rows (if any) are fetched before the commit."""
        return _execute(self.tenant, sql, params)

    def core_sql(self, sql: str, **params):
        return _execute(self.core, sql, params)

    def node(self, code: str) -> int:
        with self.tenant.connect() as conn:
            return conn.execute(sa.select(routing_node.c.id).where(routing_node.c.node_code == code)).scalar_one()

    def serial_of(self, token_id: int) -> str:
        with self.tenant.connect() as conn:
            return conn.execute(sa.select(flow_token.c.serial_code).where(flow_token.c.id == token_id)).scalar_one()


def _execute(engine, sql: str, params: dict):
    with engine.begin() as conn:
        result = conn.execute(sa.text(sql), params)
        return result.freeze()() if result.returns_rows else None


def _new_job(stores, code: str, sku: str, quantity: int, mode: str = "piece", tenant: str = TENANT) -> None:
    with stores.uow(tenant) as uow:
        services.create_job(uow, code, sku, quantity, "bag", mode)
        uow.commit()


def _run(stores, action, code: str, tenant: str = TENANT) -> dict:
    with stores.uow(tenant) as uow:
        result = action(uow, code)
        uow.commit()
    return result


# --------------------------------------------------------------------------- operator work
def work_on(floor: Floor, token_id: int, operator: str, status: str = "active",
            started: dt.datetime | None = None) -> tuple[int, int]:
    """Open a session (with its self assignment) on a ready token; return (session, assignment)."""
    started = started or utcnow() - HOUR
    with floor.tenant.begin() as conn:
        assignment = conn.execute(token_assignment.insert().values(
            token_id=token_id, operator_id=operator, status="active", source="self",
            created_at=started, updated_at=started).returning(token_assignment.c.id)).scalar_one()
        session = conn.execute(token_work_session.insert().values(
            token_id=token_id, assignment_id=assignment, operator_id=operator, status=status, started_at=started,
            work_seconds=0 if status == "active" else 600, created_at=started, updated_at=started,
        ).returning(token_work_session.c.id)).scalar_one()
        conn.execute(flow_token.update().where(flow_token.c.id == token_id).values(status=status, updated_at=started))
        conn.execute(token_event.insert().values(token_id=token_id, event_type="session_started", from_status="ready",
                                                 to_status=status, actor=operator, at=started, created_at=started))
    return session, assignment


def finish(floor: Floor, token_id: int, operator: str, next_node: str | None) -> int:
    """Work a ready token through one session: ready on ``next_node``, or completed when None."""
    session, assignment = work_on(floor, token_id, operator, started=utcnow() - 3 * HOUR)
    ended = utcnow() - 2 * HOUR
    status = "completed" if next_node is None else "ready"
    values = {"status": status, "updated_at": ended}
    values.update({"completed_at": ended} if next_node is None else {"current_node_id": floor.node(next_node)})
    with floor.tenant.begin() as conn:
        conn.execute(token_work_session.update().where(token_work_session.c.id == session).values(
            status="closed", ended_at=ended, work_seconds=3600, close_reason="completed", updated_at=ended))
        conn.execute(token_assignment.update().where(token_assignment.c.id == assignment)
                     .values(status="done", updated_at=ended))
        conn.execute(flow_token.update().where(flow_token.c.id == token_id).values(**values))
        conn.execute(token_event.insert().values(token_id=token_id, event_type="session_completed",
                                                 from_status="active", to_status=status, actor=operator, at=ended,
                                                 created_at=ended))
    if next_node is None:
        complete_serial(floor, token_id, ended)
    return session


# --------------------------------------------------------------------------- serials
def settle_serials(floor: Floor, at: dt.datetime | None = None) -> None:
    """Backdate the tenant's unpublished serial changes past the outbox grace period, as on a
    floor that has been running for a while, and publish them to core with the real relay."""
    at = at or utcnow() - HOUR
    with floor.tenant.begin() as conn:
        pending = sa.select(serial_outbox.c.serial_code).where(serial_outbox.c.published_at.is_(None))
        conn.execute(serial_registry.update().where(serial_registry.c.serial_code.in_(pending),
                                                    serial_registry.c.created_at > at).values(created_at=at))
        conn.execute(serial_registry.update().where(serial_registry.c.serial_code.in_(pending),
                                                    serial_registry.c.updated_at > at).values(updated_at=at))
        conn.execute(serial_outbox.update().where(serial_outbox.c.published_at.is_(None)).values(created_at=at))
    outbox.relay(floor.stores.settings, [floor.tenant_code])


def issue_serials(floor: Floor, job_code: str) -> list[str]:
    """The serials the spawn issued to the job's live tokens, published to core."""
    settle_serials(floor)
    with floor.tenant.connect() as conn:
        return list(conn.execute(sa.select(flow_token.c.serial_code).join(
            hatthasilpa_job, hatthasilpa_job.c.id == flow_token.c.job_id).where(
            hatthasilpa_job.c.job_code == job_code, flow_token.c.serial_code.is_not(None),
            flow_token.c.status.in_(["ready", "active", "paused"])).order_by(flow_token.c.id)).scalars())


def complete_serial(floor: Floor, token_id: int, at: dt.datetime | None = None) -> None:
    """Complete a completed token's serial through the lifecycle (tenant registry and outbox), then relay."""
    at = at or utcnow() - HOUR
    with floor.stores.uow(floor.tenant_code, clock=lambda: at) as uow:
        serials.complete_serial(uow, token_id)
        uow.commit()
    settle_serials(floor, at)


def set_serial_status(floor: Floor, code: str, status: str, at: dt.datetime | None = None) -> None:
    """A raw tenant-side change that writes no outbox event (a legacy path; used by the faults)."""
    at = at or utcnow() - HOUR
    with floor.tenant.begin() as conn:
        conn.execute(serial_registry.update().where(serial_registry.c.serial_code == code).values(
            status=status, version=serial_registry.c.version + 1, updated_at=at))


def void_scrapped_serials(floor: Floor, job_code: str) -> None:
    """The cancel voided the scrapped tokens' serials through the outbox: publish those changes."""
    settle_serials(floor)


# --------------------------------------------------------------------------- the floor
def build_clean_floor(stores, tenant: str = TENANT) -> Floor:
    """The clean floor described in the module docstring; ``stores`` already has tenant and graph."""
    floor = Floor(stores, tenant_code=tenant)
    ids = floor.ids

    _new_job(stores, "J-RUN", "TOTE", 4, tenant=tenant)
    run = _run(stores, services.start_job, "J-RUN", tenant=tenant)
    issue_serials(floor, "J-RUN")
    ids["run_instance"] = run["instance_id"]
    ids["r1"], ids["r2"], ids["r3"], ids["r4"] = run["token_ids"]
    ids["r3_closed_session"] = finish(floor, ids["r3"], "op3", next_node="stitch")
    finish(floor, ids["r4"], "op4", next_node="stitch")
    floor.tenant_sql("UPDATE flow_token SET current_node_id = :qc WHERE id = :t", qc=floor.node("qc"), t=ids["r4"])
    ids["r4_closed_session"] = finish(floor, ids["r4"], "op4", next_node=None)
    ids["s1"], ids["a1"] = work_on(floor, ids["r1"], "op1")
    ids["s2"], ids["a2"] = work_on(floor, ids["r2"], "op2", status="paused", started=utcnow() - 2 * HOUR)

    _new_job(stores, "J-CAN", "WALLET", 2, tenant=tenant)
    can = _run(stores, services.start_job, "J-CAN", tenant=tenant)
    issue_serials(floor, "J-CAN")
    ids["can_instance"] = can["instance_id"]
    ids["c1"], ids["c2"] = can["token_ids"]
    ids["c1_session"], ids["c1_assignment"] = work_on(floor, ids["c1"], "op5")
    _run(stores, services.cancel_job, "J-CAN", tenant=tenant)
    void_scrapped_serials(floor, "J-CAN")

    _new_job(stores, "J-RESTART", "TOTE", 3, tenant=tenant)
    first = _run(stores, services.start_job, "J-RESTART", tenant=tenant)
    issue_serials(floor, "J-RESTART")
    _run(stores, services.cancel_job, "J-RESTART", tenant=tenant)
    void_scrapped_serials(floor, "J-RESTART")
    _run(stores, services.restore_job, "J-RESTART", tenant=tenant)
    second = _run(stores, services.start_job, "J-RESTART", tenant=tenant)
    issue_serials(floor, "J-RESTART")
    ids["restart_old_instance"], ids["restart_instance"] = first["instance_id"], second["instance_id"]
    ids["restart_old_tokens"], ids["restart_tokens"] = first["token_ids"], second["token_ids"]

    _new_job(stores, "J-BATCH", "STRAP", 2, mode="batch", tenant=tenant)
    batch = _run(stores, services.start_job, "J-BATCH", tenant=tenant)
    ids["batch_instance"], ids["batch_tokens"] = batch["instance_id"], batch["token_ids"]

    _new_job(stores, "J-PLAN", "TOTE", 1, tenant=tenant)
    with floor.tenant.connect() as conn:
        ids.update({f"job:{code}": jid for code, jid in conn.execute(
            sa.select(hatthasilpa_job.c.job_code, hatthasilpa_job.c.id))})
    return floor


def checks_target_run(floor: Floor, check_ids=None, now=None, sample_size: int = 1000):
    """Run checks on the floor's tenant (not recorded) and return {check id: result}."""
    from checks import run_checks

    report = run_checks(floor.stores.settings, tenants=[floor.tenant_code], check_ids=check_ids, now=now,
                        sample_size=sample_size, record=False)
    return {r.check: r for r in report.results}


class open_target:
    """``with open_target(floor) as target:`` — a checks Target on fresh connections (read-only use)."""

    def __init__(self, floor: Floor, now=None) -> None:
        self.floor, self.now = floor, now

    def __enter__(self):
        from checks import Target, tenant_params

        # deferred transactions on SQLite: reading must not take the write lock
        self._tenant = self.floor.tenant.connect().execution_options(sqlite_begin="DEFERRED")
        self._core = self.floor.core.connect().execution_options(sqlite_begin="DEFERRED")
        code = self.floor.tenant_code
        return Target(code, self._tenant, self._core, tenant_params(self._core, code, self.now))

    def __exit__(self, *exc) -> None:
        self._tenant.close()
        self._core.close()
