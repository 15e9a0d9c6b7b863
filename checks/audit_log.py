"""The append-only, hash-chained audit log of the monitor store (``audit_log``).

Repair audit entries, approvals and incident actions are appended here, each in the
transaction of the change it records. An entry's ``entry_hash`` is the sha256 of its
canonical content — ``seq``, ``created_at``, ``kind``, ``actor``, ``subject``, ``body``
and ``prev_hash``, the hash of the entry before it (``GENESIS`` for the first) — so an
edited field, a deleted entry or a swapped pair breaks the chain at the first entry
touched, and ``verify`` names it.

Appends serialize: on PostgreSQL behind a transaction-scoped advisory lock, on SQLite
behind the write lock its ``BEGIN IMMEDIATE`` already holds. No code path updates or
deletes an entry, and the store's triggers refuse both (``checks/migrations`` 0004).
``verify`` reads the log in ``seq`` order, a page at a time; its result is recorded in
``audit_verification``, from which the ``hatthasilpa_audit_chain_ok`` gauge is read.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import sqlalchemy as sa

from lifecycle.db import get_engine, is_postgres
from lifecycle.uow import as_utc, iso, utcnow

from .errors import AuditTampered
from .schema import audit_log, audit_verification

GENESIS = "0" * 64
ADVISORY_LOCK = 0x48415455  # one chain per monitor store
PAGE = 1000


def _stamp(value) -> str:
    return as_utc(value).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical(entry: dict) -> str:
    return json.dumps({"seq": entry["seq"], "created_at": _stamp(entry["created_at"]), "kind": entry["kind"],
                       "actor": entry["actor"], "subject": entry["subject"], "body": entry["body"],
                       "prev_hash": entry["prev_hash"]},
                      sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def hash_of(entry: dict) -> str:
    return hashlib.sha256(canonical(entry).encode("utf-8")).hexdigest()


def lock_chain(conn: sa.Connection) -> None:
    """Hold the chain until the caller's transaction ends (SQLite's write lock already does)."""
    if is_postgres(conn):
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK})


def append(conn: sa.Connection, kind: str, actor: str, subject: str, body: dict,
           now: dt.datetime | None = None) -> dict:
    """Append one entry in the caller's transaction; return it."""
    lock_chain(conn)
    last = conn.execute(sa.select(audit_log.c.seq, audit_log.c.entry_hash)
                        .order_by(audit_log.c.seq.desc()).limit(1)).first()
    entry = {"seq": (last.seq + 1) if last else 1, "created_at": as_utc(now or utcnow()), "kind": kind,
             "actor": (actor or "unknown")[:64], "subject": subject[:128],
             "body": json.loads(json.dumps(body, default=str)),  # exactly what the store will hand back
             "prev_hash": last.entry_hash if last else GENESIS}
    entry["entry_hash"] = hash_of(entry)
    conn.execute(audit_log.insert().values(**entry))
    return entry


def walk(conn: sa.Connection) -> dict:
    """Check the whole chain; ``{"ok", "entries", "first_broken", "message"}``."""
    checked, expected_seq, prev_hash, after = 0, 1, GENESIS, 0
    while True:
        page = conn.execute(sa.select(audit_log).where(audit_log.c.seq > after)
                            .order_by(audit_log.c.seq).limit(PAGE)).all()
        for row in page:
            entry = dict(row._mapping)
            problem = None
            if entry["seq"] != expected_seq:
                problem = (f"audit entry {entry['seq']} follows entry {expected_seq - 1}: "
                           f"entry {expected_seq} was deleted or moved")
            elif entry["prev_hash"] != prev_hash:
                problem = (f"audit entry {entry['seq']} does not follow entry {expected_seq - 1}: "
                           "an entry before it was deleted, edited or reordered")
            elif hash_of(entry) != entry["entry_hash"]:
                problem = f"audit entry {entry['seq']} ({entry['kind']}, {entry['subject']}) was edited"
            if problem:
                return {"ok": False, "entries": checked, "first_broken": entry["seq"], "message": problem}
            checked, expected_seq, prev_hash = checked + 1, entry["seq"] + 1, entry["entry_hash"]
        if len(page) < PAGE:
            return {"ok": True, "entries": checked, "first_broken": None, "message": None}
        after = page[-1].seq


def verify(monitor_url: str, now: dt.datetime | None = None, record: bool = True) -> dict:
    """Walk the chain and record the result; raise AUDIT_TAMPERED when it is broken."""
    with get_engine(monitor_url).connect() as conn:
        result = walk(conn)
    at = as_utc(now or utcnow())
    if record:
        with get_engine(monitor_url).begin() as conn:
            conn.execute(audit_verification.insert().values(verified_at=at, created_at=at, **result))
    result["verified_at"] = iso(at)
    if not result["ok"]:
        raise AuditTampered(f"the audit log is broken at entry {result['first_broken']}: {result['message']}",
                            hint="the log was changed outside the product: restore the monitor store from a "
                                 "backup and compare the entries from that one on",
                            **{k: v for k, v in result.items() if k != "message"})
    return result


def last_verification(conn: sa.Connection):
    return conn.execute(sa.select(audit_verification).order_by(audit_verification.c.id.desc()).limit(1)).first()
