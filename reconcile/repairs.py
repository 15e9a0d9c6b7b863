"""The repair catalogue: for each check with a safe action, what the action touches and does.

A :class:`Repair` names the row a plan row stands for (``target``: the row that is
locked with ``SELECT … FOR UPDATE`` before anything is decided, and whose state is
the plan's "expected current state"), whether a finding of its check has a safe action
(``takes``), and the action itself (``act``), which goes through the lifecycle's own
functions and never commits. Checks without a safe action carry guidance only
(``GUIDANCE``); the runbook (``docs/runbook.md``) holds the manual procedures.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import sqlalchemy as sa

from checks.engine import jsonable
from lifecycle import assignments, serials, services, tokens
from lifecycle.lookup import get_job_by_id
from lifecycle.schema import (core_serial_registry, flow_token, hatthasilpa_job, job_graph_instance, serial_registry,
                              token_assignment, token_spawn, token_work_session)
from lifecycle.states import TokenStatus
from lifecycle.uow import UnitOfWork

CLOSE_REASON = "closed_by_repair"
SCRAP_REASON = "scrapped_by_repair"


@dataclass
class RowContext:
    """What an action may use: the tenant unit of work (its transaction holds the row
    lock), a read connection to core, and who acts."""

    uow: UnitOfWork
    core: sa.Connection
    actor: str


Snapshot = Callable[[sa.Connection, dict, bool], "dict | None"]


@dataclass(frozen=True)
class Repair:
    check: str
    action: str  # the metric label ``action``; short, stable
    description: str
    target: Snapshot  # (conn, key, lock) -> the target row's state, or None when it is gone
    act: Callable[[RowContext, dict, dict], dict]  # (ctx, key, finding) -> what it changed
    takes: Callable[[dict], bool] = lambda finding: True
    otherwise: str = ""  # guidance for the findings it does not take


def _snapshot(table: sa.Table, column: str, key_name: str) -> Snapshot:
    def read(conn: sa.Connection, key: dict, lock: bool) -> dict | None:
        query = sa.select(table).where(table.c[column] == key[key_name])
        if lock:
            query = query.with_for_update()
        row = conn.execute(query).first()
        return None if row is None else {k: jsonable(v) for k, v in row._mapping.items()}
    return read


TOKEN = _snapshot(flow_token, "id", "token_id")
JOB = _snapshot(hatthasilpa_job, "id", "job_id")
INSTANCE = _snapshot(job_graph_instance, "id", "instance_id")
ASSIGNMENT = _snapshot(token_assignment, "id", "assignment_id")
SESSION = _snapshot(token_work_session, "id", "session_id")
SERIAL = _snapshot(serial_registry, "serial_code", "serial_code")


# --------------------------------------------------------------------------- actions
def _retire(ctx: RowContext, rows: list[sa.Row], event: str = SCRAP_REASON) -> dict:
    """The hard reset's steps for these tokens (``lifecycle.services.retire_tokens``)."""
    return services.retire_tokens(ctx.uow, rows, ctx.actor, event=event, close_reason=CLOSE_REASON)


def scrap_token(ctx: RowContext, key: dict, finding: dict) -> dict:
    return _retire(ctx, tokens.lock(ctx.uow, flow_token.c.id == key["token_id"], flow_token.c.status.in_(tokens.LIVE)))


def rescrap_token(ctx: RowContext, key: dict, finding: dict) -> dict:
    """A token whose history says scrapped goes back to scrapped, whatever it was set to."""
    return _retire(ctx, tokens.lock(ctx.uow, flow_token.c.id == key["token_id"],
                                    flow_token.c.status != TokenStatus.SCRAPPED.value), event="rescrapped_by_repair")


def finish_hard_reset(ctx: RowContext, key: dict, finding: dict) -> dict:
    job = get_job_by_id(ctx.uow, key["job_id"], lock=True)
    return services.hard_reset(ctx.uow, job, ctx.actor)


def expire_assignment(ctx: RowContext, key: dict, finding: dict) -> dict:
    return {"expired_assignment_ids": assignments.expire_assignments(ctx.uow, [key["assignment_id"]])}


def _release_if_idle(uow: UnitOfWork, token_id: int, actor: str) -> list[int]:
    """A live token left ``active``/``paused`` without an open session goes back to ``ready``
    at its node, so an operator can start it again."""
    open_left = sa.exists().where(token_work_session.c.token_id == flow_token.c.id,
                                  token_work_session.c.status.in_(assignments.OPEN))
    idle = tokens.lock(uow, flow_token.c.id == token_id, ~open_left,
                       flow_token.c.status.in_([TokenStatus.ACTIVE.value, TokenStatus.PAUSED.value]))
    return tokens.move(uow, idle, TokenStatus.READY, "released_by_repair", actor, strict=False)


def close_session(ctx: RowContext, key: dict, finding: dict) -> dict:
    closed = assignments.close_sessions(ctx.uow, [key["session_id"]], reason=CLOSE_REASON)
    released = _release_if_idle(ctx.uow, finding["token_id"], ctx.actor) if closed else []
    return {"closed_session_ids": closed, "released_token_ids": released}


def close_later_sessions(ctx: RowContext, key: dict, finding: dict) -> dict:
    """Keep the earliest open session of the token; close the others."""
    open_ids = list(ctx.uow.conn.execute(
        sa.select(token_work_session.c.id)
        .where(token_work_session.c.token_id == key["token_id"], token_work_session.c.status.in_(assignments.OPEN))
        .order_by(token_work_session.c.started_at, token_work_session.c.id).with_for_update()).scalars())
    return {"kept_session_id": open_ids[0] if open_ids else None,
            "closed_session_ids": assignments.close_sessions(ctx.uow, open_ids[1:], reason=CLOSE_REASON)}


def republish_serial(ctx: RowContext, key: dict, finding: dict) -> dict:
    core_version = ctx.core.execute(sa.select(core_serial_registry.c.version)
                                    .where(core_serial_registry.c.serial_code == key["serial_code"])).scalar()
    state = serials.republish(ctx.uow, key["serial_code"], core_version or 0)
    return {"core_version": core_version, "republished": state}


def retire_surplus_spawns(ctx: RowContext, key: dict, finding: dict) -> dict:
    """Keep the instance's first current spawn cycle; retire every later one: its live tokens
    scrapped (with the hard reset's steps) and the cycle marked superseded."""
    cycles = list(ctx.uow.conn.execute(
        sa.select(token_spawn.c.id).where(token_spawn.c.instance_id == key["instance_id"],
                                          token_spawn.c.superseded_at.is_(None))
        .order_by(token_spawn.c.id).with_for_update()).scalars())
    surplus = cycles[1:]
    rows = tokens.lock(ctx.uow, flow_token.c.spawn_id.in_(surplus), flow_token.c.status.in_(tokens.LIVE)) \
        if surplus else []
    retired = _retire(ctx, rows)
    return {"kept_spawn_id": cycles[0] if cycles else None, **retired,
            "superseded_spawn_ids": tokens.supersede_cycles(ctx.uow, surplus)}


# --------------------------------------------------------------------------- catalogue
_SESSION_CLOSED_GUIDANCE = ("a closed session pointing at a missing or foreign assignment is history: "
                            "correct the assignment_id by hand after reading the token's lineage")

REPAIRS: dict[str, Repair] = {r.check: r for r in (
    Repair("orphan_token", "scrap_token", "scrap the orphan token (with its event), close its open sessions, "
           "expire its active assignments, void its serial", TOKEN, scrap_token),
    Repair("scrapped_token_resurrected", "rescrap_token", "set the token back to scrapped (with an event), close "
           "its open sessions, expire its active assignments", TOKEN, rescrap_token),
    Repair("cancelled_job_not_clean", "finish_hard_reset", "finish the cancel's hard reset under the job lock "
           "(lifecycle.services.hard_reset)", JOB, finish_hard_reset),
    Repair("assignment_without_token", "expire_assignment", "expire the assignment", ASSIGNMENT, expire_assignment),
    Repair("session_on_dead_token", "close_session", "close the session with a reason", SESSION, close_session),
    Repair("session_without_assignment", "close_session", "close the open session with a reason and release its "
           "token to ready", SESSION, close_session,
           takes=lambda f: f.get("session_status") in ("active", "paused"), otherwise=_SESSION_CLOSED_GUIDANCE),
    Repair("duplicate_open_session", "close_later_sessions", "close every open session of the token but the "
           "earliest", TOKEN, close_later_sessions),
    Repair("serial_missing_in_core", "republish_serial", "republish the tenant's serial to core through the outbox",
           SERIAL, republish_serial),
    Repair("serial_field_mismatch", "republish_serial", "republish the tenant's serial to core through the outbox "
           "(the tenant registry is the truth)", SERIAL, republish_serial),
    Repair("multi_spawn_instance", "retire_surplus_spawns", "retire every spawn cycle after the first: scrap its "
           "live tokens (with events, closing their sessions and expiring their assignments) and mark the cycle "
           "superseded", INSTANCE, retire_surplus_spawns,
           takes=lambda f: int(f.get("spawn_cycles") or 0) > 1,
           otherwise="one spawn cycle but more live tokens than the quantity: find out whether the job quantity "
                     "or the tokens are wrong, then cancel (hard reset) and restart the job"),
)}

# The order a plan applies its rows in: the widest action first. A cancel's hard reset
# settles its job's orphan tokens, sessions and assignments, so their own rows are then
# skipped as no longer qualifying instead of leaving the job half reset.
APPLY_ORDER = ("cancelled_job_not_clean", "multi_spawn_instance", "orphan_token", "scrapped_token_resurrected",
               "duplicate_open_session", "session_on_dead_token", "session_without_assignment",
               "assignment_without_token", "serial_missing_in_core", "serial_field_mismatch")
assert sorted(APPLY_ORDER) == sorted(REPAIRS), "every repair has its place in APPLY_ORDER"

GUIDANCE: dict[str, str] = {
    "mixed_token_states": "no automatic action: hard-reset the job (hatthasilpa job cancel), restore and start it "
                          "again",
    "token_count_mismatch": "no automatic action: compare the job quantity with its token set; if the quantity "
                            "changed after spawn, cancel (hard reset), restore and start again",
    "work_queue_pollution": "no automatic action: the work_queue view is wrong; recreate it from the tenant "
                            "migration (hatthasilpa db upgrade on a fresh schema) and review the tokens it listed",
    "multiple_active_instances": "no automatic action: decide which instance holds the real work, archive the "
                                 "other by hand (or cancel the job), then restore the unique index",
    "stale_open_session": "no automatic action: ask the operator; pause or complete the session through the "
                          "session commands",
    "serial_missing_in_tenant": "no automatic action: core holds a serial the tenant never issued; find its "
                                "origin before voiding it in core by hand",
    "serial_outbox_lag": "no automatic action: run `hatthasilpa outbox relay --tenant T` (with --retry-parked "
                         "for parked rows) and read last_error",
    "temp_serial_on_production_tenant": "no automatic action: turn FF_SERIAL_STD_HAT on; TEMP serials already "
                                        "issued need re-serialization by hand",
    "duplicate_serial": "no automatic action: decide which token owns the serial; re-serialize the other by hand",
    "token_without_serial": "no automatic action: a piece needs a serial that only spawn issues; cancel and "
                            "restart the job, or issue one by hand",
}


def guidance_for(check_id: str, finding: dict) -> str | None:
    """Why a finding gets no action, or None when its repair takes it."""
    repair = REPAIRS.get(check_id)
    if repair is None:
        return GUIDANCE.get(check_id, "no automatic action: see the runbook")
    return None if repair.takes(finding) else repair.otherwise
