"""A clean factory floor for the check tests, and the raw writes it still needs.

Jobs are created, started and cancelled through ``lifecycle.services``. Operator work
(assignments, sessions) and serials (tenant registry, outbox, core registry) are
written here with plain inserts because their lifecycle flows are built elsewhere;
when those flows land, ``work_on``, ``finish`` and ``issue_serials`` are the only
functions to swap for them. Every serial write is backdated past the outbox grace
period, as on a floor that has been running for a while.

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
import uuid
from dataclasses import dataclass, field

import sqlalchemy as sa

from lifecycle import services
from lifecycle.db import get_engine
from lifecycle.schema import (core_serial_registry, flow_token, hatthasilpa_job, routing_node, serial_outbox,
                              serial_registry, serial_sequence, token_assignment, token_event, token_work_session)
from lifecycle.uow import utcnow

TENANT = "atelier"
HOUR = dt.timedelta(hours=1)


@dataclass
class Floor:
    stores: object
    ids: dict = field(default_factory=dict)

    @property
    def tenant(self):
        return self.stores.tenant_engine(TENANT)

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


def _job(stores, code: str, sku: str, quantity: int, mode: str = "piece") -> None:
    with stores.uow(TENANT) as uow:
        services.create_job(uow, code, sku, quantity, "bag", mode)
        uow.commit()


def _act(stores, action, code: str) -> dict:
    with stores.uow(TENANT) as uow:
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
        set_serial_status(floor, floor.serial_of(token_id), "completed")
    return session


# --------------------------------------------------------------------------- serials
def _publish(floor: Floor, conn: sa.Connection, row: dict, at: dt.datetime) -> None:
    payload = {k: row[k] for k in ("serial_code", "tenant_code", "sku", "job_id", "token_id", "mode", "status")}
    conn.execute(serial_outbox.insert().values(event_id=str(uuid.uuid4()), serial_code=row["serial_code"],
                                               version=row["version"], payload=payload, published_at=at,
                                               attempts=1, created_at=at))
    core = {"tenant_code": row["tenant_code"], "sku": row["sku"], "job_ref": str(row["job_id"]),
            "token_ref": str(row["token_id"]), "mode": row["mode"], "status": row["status"],
            "version": row["version"], "updated_at": at}
    with floor.core.begin() as cconn:
        updated = cconn.execute(core_serial_registry.update()
                                .where(core_serial_registry.c.serial_code == row["serial_code"]).values(**core))
        if updated.rowcount == 0:
            cconn.execute(core_serial_registry.insert().values(serial_code=row["serial_code"], created_at=at, **core))


def issue_serials(floor: Floor, job_code: str, mode: str = "STD") -> list[str]:
    """Issue a serial to every token of the job's live set that has none, published to core."""
    at = utcnow() - HOUR
    codes = []
    with floor.tenant.begin() as conn:
        job = conn.execute(sa.select(hatthasilpa_job).where(hatthasilpa_job.c.job_code == job_code)).one()
        tokens = conn.execute(sa.select(flow_token.c.id).where(
            flow_token.c.job_id == job.id, flow_token.c.serial_code.is_(None),
            flow_token.c.status.in_(["ready", "active", "paused"])).order_by(flow_token.c.id)).scalars().all()
        for token_id in tokens:
            seq = conn.execute(sa.select(serial_sequence.c.last_value).where(
                serial_sequence.c.tenant_code == TENANT, serial_sequence.c.sku == job.sku)).scalar()
            if seq is None:
                conn.execute(serial_sequence.insert().values(tenant_code=TENANT, sku=job.sku, last_value=0))
                seq = 0
            seq += 1
            conn.execute(serial_sequence.update().where(serial_sequence.c.tenant_code == TENANT,
                                                        serial_sequence.c.sku == job.sku).values(last_value=seq))
            code = f"{TENANT.upper()}-{job.sku}-{seq:06d}" if mode == "STD" else f"TEMP-{uuid.uuid4().hex[:12]}"
            row = {"serial_code": code, "tenant_code": TENANT, "sku": job.sku, "job_id": job.id,
                   "token_id": token_id, "mode": mode, "status": "issued", "version": 1}
            conn.execute(serial_registry.insert().values(**row, created_at=at, updated_at=at))
            conn.execute(flow_token.update().where(flow_token.c.id == token_id).values(serial_code=code))
            _publish(floor, conn, row, at)
            codes.append(code)
    return codes


def set_serial_status(floor: Floor, code: str, status: str, publish: bool = True,
                      at: dt.datetime | None = None) -> None:
    at = at or utcnow() - HOUR
    with floor.tenant.begin() as conn:
        conn.execute(serial_registry.update().where(serial_registry.c.serial_code == code).values(
            status=status, version=serial_registry.c.version + 1, updated_at=at))
        row = dict(conn.execute(sa.select(serial_registry).where(serial_registry.c.serial_code == code)).one()._mapping)
        if publish:
            _publish(floor, conn, row, at)


def void_scrapped_serials(floor: Floor, job_code: str) -> None:
    with floor.tenant.connect() as conn:
        codes = conn.execute(sa.select(flow_token.c.serial_code).join(
            hatthasilpa_job, hatthasilpa_job.c.id == flow_token.c.job_id).where(
            hatthasilpa_job.c.job_code == job_code, flow_token.c.status == "scrapped",
            flow_token.c.serial_code.is_not(None))).scalars().all()
    for code in codes:
        set_serial_status(floor, code, "voided")


# --------------------------------------------------------------------------- the floor
def build_clean_floor(stores) -> Floor:
    """The clean floor described in the module docstring; ``stores`` already has tenant and graph."""
    floor = Floor(stores)
    ids = floor.ids
    _job(stores, "J-RUN", "TOTE", 4)
    run = _act(stores, services.start_job, "J-RUN")
    issue_serials(floor, "J-RUN")
    ids["run_instance"] = run["instance_id"]
    ids["r1"], ids["r2"], ids["r3"], ids["r4"] = run["token_ids"]
    ids["r3_closed_session"] = finish(floor, ids["r3"], "op3", next_node="stitch")
    finish(floor, ids["r4"], "op4", next_node="stitch")
    floor.tenant_sql("UPDATE flow_token SET current_node_id = :qc WHERE id = :t", qc=floor.node("qc"), t=ids["r4"])
    ids["r4_closed_session"] = finish(floor, ids["r4"], "op4", next_node=None)
    ids["s1"], ids["a1"] = work_on(floor, ids["r1"], "op1")
    ids["s2"], ids["a2"] = work_on(floor, ids["r2"], "op2", status="paused", started=utcnow() - 2 * HOUR)

    _job(stores, "J-CAN", "WALLET", 2)
    can = _act(stores, services.start_job, "J-CAN")
    issue_serials(floor, "J-CAN")
    ids["can_instance"] = can["instance_id"]
    ids["c1"], ids["c2"] = can["token_ids"]
    ids["c1_session"], ids["c1_assignment"] = work_on(floor, ids["c1"], "op5")
    _act(stores, services.cancel_job, "J-CAN")
    void_scrapped_serials(floor, "J-CAN")

    _job(stores, "J-RESTART", "TOTE", 3)
    first = _act(stores, services.start_job, "J-RESTART")
    issue_serials(floor, "J-RESTART")
    _act(stores, services.cancel_job, "J-RESTART")
    void_scrapped_serials(floor, "J-RESTART")
    _act(stores, services.restore_job, "J-RESTART")
    second = _act(stores, services.start_job, "J-RESTART")
    issue_serials(floor, "J-RESTART")
    ids["restart_old_instance"], ids["restart_instance"] = first["instance_id"], second["instance_id"]
    ids["restart_old_tokens"], ids["restart_tokens"] = first["token_ids"], second["token_ids"]

    _job(stores, "J-BATCH", "STRAP", 2, mode="batch")
    batch = _act(stores, services.start_job, "J-BATCH")
    ids["batch_instance"], ids["batch_tokens"] = batch["instance_id"], batch["token_ids"]

    _job(stores, "J-PLAN", "TOTE", 1)
    with floor.tenant.connect() as conn:
        ids.update({f"job:{code}": jid for code, jid in conn.execute(
            sa.select(hatthasilpa_job.c.job_code, hatthasilpa_job.c.id))})
    return floor


def checks_target_run(floor: Floor, check_ids=None, now=None, sample_size: int = 1000):
    """Run checks on the floor's tenant (not recorded) and return {check id: result}."""
    from checks import run_checks

    report = run_checks(floor.stores.settings, tenants=[TENANT], check_ids=check_ids, now=now,
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
        return Target(TENANT, self._tenant, self._core, tenant_params(self._core, TENANT, self.now))

    def __exit__(self, *exc) -> None:
        self._tenant.close()
        self._core.close()
