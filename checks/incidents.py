"""Incidents: the life of one (tenant, check) finding, kept in the transaction that records a run.

An incident opens at the first recorded run that finds rows where no incident of the
pair is unresolved, follows every later run (rows found, the offending keys with their
``first_seen`` and ``last_seen``), and resolves at the first run that finds zero — a
repair's re-check naming its plan. ``record`` does this inside ``store.record_run``'s
transaction, so a run is never recorded without its incident update. Results in error
leave the incident alone: an error says nothing about the rows.

The states and their moves are declared once, in ``INCIDENT_TRANSITIONS`` (drawn in
``docs/state-machines.md``); every change goes through ``move``, which refuses a move
the table does not hold (``INVALID_TRANSITION``) before anything is written. A mute
ends by itself at ``muted_until`` (``effective_state``; the next run also writes it
down) and early when a run finds more rows than at muting. The database keeps one
unresolved incident per (tenant, check) (``ux_incident_one_unresolved``): two monitors
racing to open one meet at that index, and the loser updates the winner's incident.
Opening, resolving and a first acknowledgement also count in the pair's counters
(``checks.incident_tally``), in the same transaction.
"""

from __future__ import annotations

import datetime as dt
import enum
import json

import sqlalchemy as sa

from lifecycle.db import dialect_insert, is_postgres
from lifecycle.faults import fault_point
from lifecycle.schema import Timestamp
from lifecycle.states import require_transition, transition_table
from lifecycle.uow import as_utc, iso

from . import audit_log, incident_tally
from .schema import UNRESOLVED, incident, incident_event, incident_key

KEY_CAP = 1000  # offending keys tracked per incident; the incident's count stays exact
MONITOR_ACTOR = "monitor"


class IncidentState(str, enum.Enum):
    OPEN = "open"  # a run found rows; nobody owns it yet
    ACKNOWLEDGED = "acknowledged"  # someone owns it (acknowledged_by)
    MUTED = "muted"  # alerts held until muted_until, or until a run finds more rows than at muting
    RESOLVED = "resolved"  # final: a run found zero rows


INCIDENT_TRANSITIONS: dict[tuple[IncidentState, IncidentState], str] = transition_table(IncidentState, """
    open         -> acknowledged : ack
    open         -> muted        : mute
    acknowledged -> muted        : mute
    muted        -> muted        : mute again (new end) / ack under the mute
    muted        -> open         : unmute / mute ends / more rows (not acknowledged)
    muted        -> acknowledged : unmute / mute ends / more rows (acknowledged)
    open         -> resolved     : a run finds zero rows
    acknowledged -> resolved     : a run finds zero rows
    muted        -> resolved     : a run finds zero rows
""")

UNMUTED_STATE = "unmuted"  # an event's name for "the state the mute held back"


def move(row, target: IncidentState) -> None:
    """Refuse (INVALID_TRANSITION, nothing written) unless the table allows the move."""
    require_transition(INCIDENT_TRANSITIONS, f"incident {row.id}", IncidentState(row.state), target)


def after_mute(row) -> IncidentState:
    """The state an incident returns to when its mute ends."""
    return IncidentState.ACKNOWLEDGED if row.acknowledged_at is not None else IncidentState.OPEN


def mute_over(row, now: dt.datetime) -> bool:
    return row.state == IncidentState.MUTED.value and as_utc(row.muted_until) <= now


def effective_state(row, now: dt.datetime) -> str:
    """The state as of ``now``: a mute past its end no longer holds, written down or not."""
    return after_mute(row).value if mute_over(row, now) else row.state


def effective_state_sql(now: dt.datetime):
    """``effective_state`` as an SQL expression, for filtering in the store."""
    return sa.case(
        (sa.and_(incident.c.state == IncidentState.MUTED.value, incident.c.muted_until <= now),
         sa.case((incident.c.acknowledged_at.is_not(None), IncidentState.ACKNOWLEDGED.value),
                 else_=IncidentState.OPEN.value)),
        else_=incident.c.state)


def key_text(key: dict) -> str:
    return json.dumps(key, sort_keys=True, separators=(",", ":"), default=str)


def lock(conn: sa.Connection, incident_id: int):
    return conn.execute(sa.select(incident).where(incident.c.id == incident_id).with_for_update()).first()


def lock_unresolved(conn: sa.Connection, tenant: str, check: str):
    """The pair's unresolved incident, locked for the transaction (None when there is none)."""
    return conn.execute(sa.select(incident).where(
        incident.c.tenant_code == tenant, incident.c.check_id == check,
        incident.c.resolved_at.is_(None)).with_for_update()).first()


def change(conn: sa.Connection, row, target: IncidentState, action: str, actor: str, now: dt.datetime, *,
           note: str | None = None, run_id: int | None = None, plan_id: str | None = None,
           detail: dict | None = None, audit: bool = True, **values) -> None:
    """Move an incident (guarded by the table), write its event, count it in the pair's counters
    (``checks.incident_tally``) and, for actions, write the audit entry."""
    move(row, target)
    conn.execute(incident.update().where(incident.c.id == row.id)
                 .values(state=target.value, updated_at=now, **values))
    incident_tally.count_change(conn, row, target == IncidentState.RESOLVED, values, now)
    conn.execute(incident_event.insert().values(
        incident_id=row.id, at=now, actor=actor, action=action, from_state=row.state, to_state=target.value,
        note=note, run_id=run_id, plan_id=plan_id, detail=detail, created_at=now))
    if audit:
        audit_log.append(conn, f"incident.{action}", actor, f"incident:{row.id}",
                         {"incident": row.id, "tenant": row.tenant_code, "check": row.check_id,
                          "from": row.state, "to": target.value, "note": note, "run_id": run_id,
                          "plan_id": plan_id, **(detail or {})}, now)


def end_lapsed_mute(conn: sa.Connection, row, now: dt.datetime, actor: str = MONITOR_ACTOR):
    """Write down a mute that ended at ``muted_until``; return the incident as it is now."""
    if not mute_over(row, now):
        return row
    change(conn, row, after_mute(row), "mute_ended", actor, now, detail={"muted_until": iso(row.muted_until)},
           muted_until=None, muted_count=None)
    return lock(conn, row.id)


def record(conn: sa.Connection, run_id: int, results, now: dt.datetime, plan_id: str | None = None) -> None:
    """Open, update or resolve the incident of every result, in the caller's transaction.

    Sets ``result.incident`` ({id, state} or None) and ``first_seen`` on the sample rows. One
    statement finds the pairs with an unresolved incident, so a pair that finds nothing and has
    none costs nothing more; the others are locked one by one in (tenant, check) order — the
    order every run takes them in, so two runs never wait on each other in a cycle.

    Moving an existing incident appends to the audit chain, so a run that will lock one takes
    the chain first, as the actions do (``incident_actions``): chain, then incident rows, in
    every transaction; otherwise a run holding the chain for one pair and an ``incident ack``
    holding the next pair's row would each wait for the other."""
    results = sorted((r for r in results if not r.error), key=lambda r: (r.tenant, r.check))
    if not results:
        return
    unresolved = set(conn.execute(sa.select(incident.c.tenant_code, incident.c.check_id).where(
        incident.c.tenant_code.in_(sorted({r.tenant for r in results})), incident.c.resolved_at.is_(None))).all())
    if any((r.tenant, r.check) in unresolved for r in results):
        audit_log.lock_chain(conn)
    for result in results:
        if not result.count and (result.tenant, result.check) not in unresolved:
            continue
        row = lock_unresolved(conn, result.tenant, result.check)
        if row is None and result.count:
            row = _open(conn, result, run_id, now)
        if row is None:
            continue
        row = end_lapsed_mute(conn, row, now)
        if result.count == 0:
            opened = as_utc(row.opened_at)
            change(conn, row, IncidentState.RESOLVED, "resolved", MONITOR_ACTOR, now, run_id=run_id,
                   plan_id=plan_id, detail={"by_plan": plan_id} if plan_id else None,
                   count=0, resolved_at=now, resolved_run_id=run_id, resolved_by_plan=plan_id,
                   resolve_seconds=(now - opened).total_seconds(), muted_until=None, muted_count=None)
            result.incident = {"id": row.id, "state": IncidentState.RESOLVED.value}
            fault_point("incident.after_update")
            continue
        if row.state == IncidentState.MUTED.value and result.count > (row.muted_count or 0):
            change(conn, row, after_mute(row), "mute_broken", MONITOR_ACTOR, now, run_id=run_id,
                   detail={"rows_at_mute": row.muted_count, "rows_now": result.count},
                   muted_until=None, muted_count=None)
            row = lock(conn, row.id)
        sample_keys = [key_text(k) for k in result.keys[:len(result.sample)]]
        first_seen = _track_keys(conn, row, result.keys, now, sample_keys)
        conn.execute(incident.update().where(incident.c.id == row.id).values(
            count=result.count, last_run_id=run_id, last_seen_at=now, updated_at=now,
            keys_tracked=row.keys_tracked + first_seen.pop(None, 0)))
        for sample_row, key in zip(result.sample, result.keys):
            seen = first_seen.get(key_text(key))
            if seen is not None:
                sample_row["first_seen"] = iso(seen)
        result.incident = {"id": row.id, "state": row.state}


def _open(conn: sa.Connection, result, run_id: int, now: dt.datetime):
    """Insert the pair's incident; when a racing run inserted it first, lock and return that one."""
    inserted = conn.execute(dialect_insert(conn, incident).values(
        tenant_code=result.tenant, check_id=result.check, severity=result.severity,
        state=IncidentState.OPEN.value, count=result.count, opened_at=now, opened_run_id=run_id,
        last_run_id=run_id, last_seen_at=now, keys_tracked=0, created_at=now, updated_at=now,
    ).on_conflict_do_nothing(index_elements=["tenant_code", "check_id"], index_where=UNRESOLVED)
        .returning(incident.c.id)).scalar()
    if inserted is not None:
        incident_tally.count_opened(conn, result.tenant, result.check, now)
        conn.execute(incident_event.insert().values(
            incident_id=inserted, at=now, actor=MONITOR_ACTOR, action="opened", from_state=None,
            to_state=IncidentState.OPEN.value, run_id=run_id, detail={"rows": result.count}, created_at=now))
        return lock(conn, inserted)
    return lock_unresolved(conn, result.tenant, result.check)


def _stamped(sql: str) -> sa.TextClause:
    """A statement whose ``:now`` and ``:previous`` are bound as the store's timestamps (the same
    text on SQLite as every other write of these columns)."""
    return sa.text(sql).bindparams(*(sa.bindparam(name, type_=Timestamp) for name in ("now", "previous")
                                     if f":{name}" in sql))


def _key_set(conn: sa.Connection) -> str:
    """The offending keys as rows ``k(value, n)`` from one JSON array parameter ``:keys``: one bound
    value, however many keys (no thousand-parameter IN lists)."""
    if is_postgres(conn):
        return "json_array_elements_text(CAST(:keys AS json)) WITH ORDINALITY AS k(value, n)"
    return "(SELECT value, key AS n FROM json_each(:keys)) AS k"


def _track_keys(conn: sa.Connection, row, keys: list[dict], now: dt.datetime, sample_keys: list[str]) -> dict:
    """Refresh ``last_seen`` of the keys already tracked (counting the ones back after a gap), add
    new ones up to ``KEY_CAP``, in two set statements; return {key text: first_seen} of the
    sample's keys, and under None how many keys were added."""
    texts = list(dict.fromkeys(key_text(k) for k in keys[:KEY_CAP]))
    if not texts:
        return {None: 0}
    keyset, params = _key_set(conn), {"keys": json.dumps(texts), "incident": row.id, "now": now,
                                      "previous": row.last_seen_at, "room": max(0, KEY_CAP - row.keys_tracked)}
    conn.execute(_stamped(
        "UPDATE incident_key SET last_seen = :now, "
        "returns = returns + CASE WHEN last_seen < :previous THEN 1 ELSE 0 END "
        f"WHERE incident_id = :incident AND row_key IN (SELECT k.value FROM {keyset})"), params)
    added = 0
    if params["room"]:
        added = conn.execute(_stamped(
            "INSERT INTO incident_key (incident_id, row_key, first_seen, last_seen, returns, created_at) "
            f"SELECT :incident, k.value, :now, :now, 0, :now FROM {keyset} "
            "WHERE NOT EXISTS (SELECT 1 FROM incident_key i WHERE i.incident_id = :incident AND i.row_key = k.value) "
            "ORDER BY k.n LIMIT :room"), params).rowcount
    tracked = set(texts)
    wanted = [t for t in sample_keys if t in tracked]
    seen = dict(conn.execute(sa.select(incident_key.c.row_key, incident_key.c.first_seen).where(
        incident_key.c.incident_id == row.id, incident_key.c.row_key.in_(wanted))).all()) if wanted else {}
    return {**seen, None: max(0, added or 0)}
