"""What people do with incidents: list, show, ack, mute, unmute (``hatthasilpa incident …``).

An action takes the audit chain's lock, then the incident row (the order a run takes them
in), writes down a mute that already ended, asks the state
machine (``checks.incidents.move``) whether the move is allowed — refusing with
``INVALID_TRANSITION`` before anything is written — then changes the incident, writes its
event and appends the action to the audit log, all in one transaction. Reads answer the
state as of now: a mute past its end no longer holds, whether or not a run wrote it down.
"""

from __future__ import annotations

import datetime as dt
import json
import re

import sqlalchemy as sa

from lifecycle.db import get_engine
from lifecycle.errors import NotFound, ValidationError
from lifecycle.uow import as_utc, iso, utcnow

from . import audit_log
from .incidents import (IncidentState, after_mute, change, effective_state, effective_state_sql, end_lapsed_mute,
                        lock)
from .schema import incident, incident_event, incident_key
from .store import require_migrated

MAX_MUTE = dt.timedelta(days=30)
DURATION_RE = re.compile(r"^\s*(\d+)\s*([mhd])\s*$")
UNITS = {"m": "minutes", "h": "hours", "d": "days"}
STATES = [s.value for s in IncidentState]


def parse_duration(text: str) -> dt.timedelta:
    """``30m``, ``4h``, ``2d``: more than nothing, at most 30 days."""
    match = DURATION_RE.match(text or "")
    if not match:
        raise ValidationError(f"bad duration {text!r}", hint="a whole number with m, h or d: 30m, 4h, 2d")
    value = dt.timedelta(**{UNITS[match.group(2)]: int(match.group(1))})
    if not dt.timedelta(0) < value <= MAX_MUTE:
        raise ValidationError(f"bad duration {text!r}: a mute lasts more than 0 and at most 30d",
                              hint="e.g. --for 4h; mute again before it ends to extend it")
    return value


def _name(by: str | None) -> str:
    if not isinstance(by, str) or not by.strip() or len(by.strip()) > 64:
        raise ValidationError("a name (1-64 characters) is required", hint="pass --by NAME")
    return by.strip()


def _note(note: str | None) -> str | None:
    if note is not None and len(note) > 2000:
        raise ValidationError("the note is longer than 2000 characters")
    return note


def _id(incident_id) -> int:
    try:
        value = int(incident_id)
    except (TypeError, ValueError):
        raise ValidationError(f"bad incident id {incident_id!r}", hint="an incident id is a whole number; "
                                                                       "see `hatthasilpa incident list`") from None
    if value < 1:
        raise ValidationError(f"bad incident id {incident_id!r}", hint="see `hatthasilpa incident list`")
    return value


def summary(row, now: dt.datetime) -> dict:
    state = effective_state(row, now)
    return {"id": row.id, "tenant": row.tenant_code, "check": row.check_id, "severity": row.severity,
            "state": state, "opened_at": iso(row.opened_at), "count": row.count,
            "acknowledged_by": row.acknowledged_by, "acknowledged_at": iso(row.acknowledged_at),
            "muted_until": iso(row.muted_until) if state == IncidentState.MUTED.value else None,
            "muted_by": row.muted_by if state == IncidentState.MUTED.value else None,
            "resolved_at": iso(row.resolved_at), "resolved_by_plan": row.resolved_by_plan,
            "last_seen_at": iso(row.last_seen_at), "last_run_id": row.last_run_id}


def list_incidents(monitor_url: str, tenant: str | None = None, check: str | None = None,
                   state: str | None = None, limit: int = 200, now: dt.datetime | None = None) -> dict:
    if state is not None and state not in STATES:
        raise ValidationError(f"unknown state {state!r}", hint=f"one of {', '.join(STATES)}")
    if not 0 < limit <= 10_000:
        raise ValidationError("--limit must be between 1 and 10000")
    require_migrated(monitor_url)
    now = now or utcnow()
    query = sa.select(incident).order_by(incident.c.id.desc()).limit(limit)
    if tenant:
        query = query.where(sa.func.lower(incident.c.tenant_code) == tenant.lower())
    if check:
        query = query.where(incident.c.check_id == check)
    if state:
        query = query.where(effective_state_sql(now) == state)
    with get_engine(monitor_url).connect() as conn:
        return {"incidents": [summary(r, now) for r in conn.execute(query)]}


def _load(conn: sa.Connection, incident_id: int, for_update: bool = False):
    row = lock(conn, incident_id) if for_update else \
        conn.execute(sa.select(incident).where(incident.c.id == incident_id)).first()
    if row is None:
        raise NotFound(f"incident {incident_id} not found", hint="see `hatthasilpa incident list`")
    return row


def show(monitor_url: str, incident_id, now: dt.datetime | None = None, key_limit: int = 1000) -> dict:
    incident_id = _id(incident_id)
    require_migrated(monitor_url)
    now = now or utcnow()
    with get_engine(monitor_url).connect() as conn:
        row = _load(conn, incident_id)
        keys = conn.execute(sa.select(incident_key).where(incident_key.c.incident_id == incident_id)
                            .order_by(incident_key.c.first_seen, incident_key.c.row_key).limit(key_limit)).all()
        events = conn.execute(sa.select(incident_event).where(incident_event.c.incident_id == incident_id)
                              .order_by(incident_event.c.id)).all()
    body = summary(row, now)
    body.update(
        keys_tracked=row.keys_tracked,
        keys=[{"key": json.loads(k.row_key), "first_seen": iso(k.first_seen), "last_seen": iso(k.last_seen),
               "returns": k.returns, "in_last_run": as_utc(k.last_seen) == as_utc(row.last_seen_at)} for k in keys],
        events=[{"at": iso(e.at), "actor": e.actor, "action": e.action, "from": e.from_state, "to": e.to_state,
                 "note": e.note, "run_id": e.run_id, "plan_id": e.plan_id, "detail": e.detail} for e in events])
    return body


def _act(monitor_url: str, incident_id, action: str, now: dt.datetime | None, decide) -> dict:
    """Lock, settle a lapsed mute, let ``decide`` move the incident; one transaction."""
    incident_id = _id(incident_id)
    require_migrated(monitor_url)
    now = now or utcnow()
    with get_engine(monitor_url).begin() as conn:
        audit_log.lock_chain(conn)  # the chain before the row, as a run takes them (``incidents.record``)
        row = end_lapsed_mute(conn, _load(conn, incident_id, for_update=True), now)
        decide(conn, row, now)
        after = _load(conn, incident_id)
    return summary(after, now)


def ack(monitor_url: str, incident_id, by: str, note: str | None = None, now: dt.datetime | None = None) -> dict:
    by, note = _name(by), _note(note)

    def decide(conn, row, at):
        muted = row.state == IncidentState.MUTED.value
        values = {} if row.acknowledged_at is not None and muted else \
            {"acknowledged_by": by, "acknowledged_at": at, "ack_seconds": (at - as_utc(row.opened_at)).total_seconds()}
        change(conn, row, IncidentState.MUTED if muted else IncidentState.ACKNOWLEDGED, "acknowledged", by, at,
               note=note, **values)
    return _act(monitor_url, incident_id, "ack", now, decide)


def mute(monitor_url: str, incident_id, by: str, duration: str, note: str | None = None,
         now: dt.datetime | None = None) -> dict:
    by, note, length = _name(by), _note(note), parse_duration(duration)

    def decide(conn, row, at):
        until = at + length
        change(conn, row, IncidentState.MUTED, "muted", by, at, note=note,
               detail={"muted_until": iso(until), "for": duration.strip(), "rows_at_mute": row.count},
               muted_by=by, muted_at=at, muted_until=until, muted_count=row.count)
    return _act(monitor_url, incident_id, "mute", now, decide)


def unmute(monitor_url: str, incident_id, by: str, note: str | None = None, now: dt.datetime | None = None) -> dict:
    by, note = _name(by), _note(note)

    def decide(conn, row, at):
        target = after_mute(row) if row.state == IncidentState.MUTED.value else IncidentState(row.state)
        change(conn, row, target, "unmuted", by, at, note=note, muted_until=None, muted_count=None)
    return _act(monitor_url, incident_id, "unmute", now, decide)
