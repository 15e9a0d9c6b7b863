"""The serial outbox relay: tenant ``serial_outbox`` → core ``serial_registry`` (``docs/lifecycle.md`` §6).

WARNING — part of the serial registry integrity chain. The order of the three steps
below is what makes a crash at any point lose nothing and duplicate nothing; the
crash tests in ``tests/e2e/test_outbox_crash.py`` kill the relay between each of them.

One batch, for one tenant:

1. In a tenant transaction, claim up to N due rows (unpublished, not parked, retry
   time passed) in id order — ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so relays
   running at once take disjoint batches. The row locks are held until step 3
   commits. (On SQLite ``BEGIN IMMEDIATE`` takes the database's write lock: relays,
   and lifecycle writes, wait for the batch.)
2. In a core transaction, upsert each claimed event into the core registry —
   ``INSERT … ON CONFLICT (serial_code) DO UPDATE … WHERE core.version <
   excluded.version`` (and the row belongs to the same tenant) — record its delivery
   in ``serial_event_receipt``, and commit.
3. Mark the delivered rows published, give failing rows their next attempt (or park
   them), and commit the tenant transaction.

A crash before step 2 commits leaves core untouched and the rows unpublished (their
locks die with the connection). A crash between 2 and 3 leaves core updated and the
rows unpublished: the next run delivers them again, the version guard makes that a
no-op, and the receipt counts a second delivery. Core never loses an event, never
holds a serial twice, and never goes back to an older state — also when events of
one serial reach it out of order.

A row that fails (a malformed payload, a serial that core holds for another tenant,
a constraint core refuses) is retried with exponential backoff (``attempts``,
``next_attempt_at``, ``last_error``) and parked (``parked_at``) after
``max_attempts``; it never blocks the rows behind it. ``status`` reports pending,
retrying and parked rows per tenant; ``retry_parked`` puts parked rows back.

A pass over a tenant takes the rows that existed when it began, each at most once;
``follow`` repeats passes until stopped.

Invariant: a relay crash loses nothing and duplicates nothing. Guarded by
tests/integration/test_outbox.py, tests/e2e/test_outbox_crash.py.
"""

from __future__ import annotations

import datetime as dt
import itertools
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Callable

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from . import digest, registry
from .db import Settings, dialect_insert, get_engine, is_postgres
from .errors import ValidationError
from .faults import fault_point
from .schema import core_serial_registry, serial_event_receipt, serial_outbox
from .states import SerialMode, SerialStatus, values
from .uow import Clock, as_utc, utcnow

CHUNK = 100  # rows per upsert statement
MAX_BATCH = 10_000  # keeps a batch's id list well under the drivers' bound-parameter limits
REQUIRED = ("serial_code", "tenant_code", "sku", "job_code", "token_id", "mode", "status", "version")
Progress = Callable[[str], None]


@dataclass(frozen=True)
class RelayOptions:
    batch_size: int = 500
    max_attempts: int = 8
    backoff_base_seconds: float = 5.0
    backoff_cap_seconds: float = 600.0

    def __post_init__(self) -> None:
        if not 1 <= self.batch_size <= MAX_BATCH or self.max_attempts < 1:
            raise ValidationError(f"batch size must be 1 to {MAX_BATCH} and max attempts at least 1",
                                  hint="e.g. --batch-size 500 --max-attempts 8")

    def backoff(self, attempts: int) -> dt.timedelta:
        """Wait before attempt ``attempts + 1``: base, 2×base, 4×base, … up to the cap."""
        return dt.timedelta(seconds=min(self.backoff_cap_seconds, self.backoff_base_seconds * 2 ** (attempts - 1)))


@dataclass
class Tally:
    tenant: str
    published: int = 0
    failed: int = 0
    parked: int = 0
    batches: int = 0


class BadEvent(Exception):
    """An outbox row core cannot take as it is."""


# --------------------------------------------------------------------------- core side
def core_values(row: sa.Row, tenant_code: str, now: dt.datetime) -> dict:
    """The core registry row an outbox event asks for, or BadEvent."""
    payload = row.payload
    if not isinstance(payload, dict) or any(key not in payload for key in REQUIRED):
        raise BadEvent(f"payload lacks {', '.join(k for k in REQUIRED if not isinstance(payload, dict) or k not in payload)}")
    if payload["tenant_code"] != tenant_code:
        raise BadEvent(f"payload names tenant {payload['tenant_code']!r}, not {tenant_code!r}")
    if payload["serial_code"] != row.serial_code or payload["version"] != row.version:
        raise BadEvent("payload serial or version differs from its outbox row")
    if payload["status"] not in values(SerialStatus) or payload["mode"] not in values(SerialMode):
        raise BadEvent(f"unknown status {payload['status']!r} or mode {payload['mode']!r}")
    return {"serial_code": row.serial_code, "tenant_code": tenant_code, "sku": payload["sku"],
            "job_ref": str(payload["job_code"]), "token_ref": str(payload["token_id"]), "mode": payload["mode"],
            "status": payload["status"], "version": row.version, "created_at": now, "updated_at": now}


def _deliver(conn: sa.Connection, tenant_code: str, events: list[tuple[sa.Row, dict]], now: dt.datetime) -> None:
    """Upsert the events into the core registry (version-guarded) and count their receipts.

    Serials are written in serial order so two relays lock core rows in the same order.
    """
    if not events:
        return
    receipts = dialect_insert(conn, serial_event_receipt)
    conn.execute(receipts.on_conflict_do_update(
        index_elements=["event_id"],
        set_={"deliveries": serial_event_receipt.c.deliveries + 1, "updated_at": receipts.excluded.updated_at}),
        [{"event_id": row.event_id, "tenant_code": tenant_code, "serial_code": row.serial_code,
          "version": row.version, "deliveries": 1, "created_at": now, "updated_at": now}
         for row, _ in sorted(events, key=lambda e: e[0].event_id)])
    newest: dict[str, dict] = {}
    for _, value in events:  # an older event of the same serial in the batch changes nothing
        if value["serial_code"] not in newest or newest[value["serial_code"]]["version"] < value["version"]:
            newest[value["serial_code"]] = value
    rows = [newest[s] for s in sorted(newest)]
    upsert = dialect_insert(conn, core_serial_registry)
    statement = upsert.on_conflict_do_update(
        index_elements=["serial_code"],
        set_={c: upsert.excluded[c] for c in ("sku", "job_ref", "token_ref", "mode", "status", "version",
                                               "updated_at")},
        where=(core_serial_registry.c.version < upsert.excluded.version)
        & (core_serial_registry.c.tenant_code == upsert.excluded.tenant_code))
    for start in range(0, len(rows), CHUNK):
        if start:
            fault_point("relay.mid_batch")  # part of the batch written, core not committed
        conn.execute(statement, rows[start:start + CHUNK])


def publish(core_engine: sa.Engine, tenant_code: str, rows: list[sa.Row],
            now: dt.datetime) -> tuple[list[int], dict[int, str]]:
    """Deliver claimed outbox rows to core in one core transaction.

    Returns the ids delivered and, for the rest, why each failed.
    """
    failures: dict[int, str] = {}
    events: list[tuple[sa.Row, dict]] = []
    for row in rows:
        try:
            events.append((row, core_values(row, tenant_code, now)))
        except BadEvent as exc:
            failures[row.id] = str(exc)
    with core_engine.connect() as conn, conn.begin():
        serial_codes = sorted({row.serial_code for row, _ in events})
        owners = dict(conn.execute(sa.select(core_serial_registry.c.serial_code, core_serial_registry.c.tenant_code)
                                   .where(core_serial_registry.c.serial_code.in_(serial_codes),
                                          core_serial_registry.c.tenant_code != tenant_code)).all()) \
            if serial_codes else {}
        for row, _ in events:
            if row.serial_code in owners:
                failures[row.id] = f"core holds serial {row.serial_code} for tenant {owners[row.serial_code]}"
        events = [e for e in events if e[0].id not in failures]
        try:
            with conn.begin_nested():
                _deliver(conn, tenant_code, events, now)
        except DBAPIError:  # find the culprits one serial at a time; deliver the rest
            for _, group in itertools.groupby(sorted(events, key=lambda e: e[0].serial_code),
                                              key=lambda e: e[0].serial_code):
                group = list(group)
                try:
                    with conn.begin_nested():
                        _deliver(conn, tenant_code, group, now)
                except DBAPIError as exc:
                    reason = f"core refused it: {str(exc.orig).strip().splitlines()[0]}"
                    failures.update({row.id: reason for row, _ in group})
    return [row.id for row in rows if row.id not in failures], failures


# --------------------------------------------------------------------------- tenant side
# What an outbox row is, said once: published, or unpublished — and then either pending
# (waiting for the relay, retries included) or parked (given up until --retry-parked).
# The relay, its status, the doctor, the metrics and the serial_outbox_lag check read these.
UNPUBLISHED = serial_outbox.c.published_at.is_(None)
PENDING = sa.and_(UNPUBLISHED, serial_outbox.c.parked_at.is_(None))
PARKED = sa.and_(UNPUBLISHED, serial_outbox.c.parked_at.is_not(None))


def sql_text(condition) -> str:
    """A condition above as SQL text (columns qualified by ``serial_outbox``), for the check catalogue."""
    return str(condition.compile(compile_kwargs={"literal_binds": True}))


def _due(now: dt.datetime):
    return sa.and_(PENDING, sa.or_(serial_outbox.c.next_attempt_at.is_(None), serial_outbox.c.next_attempt_at <= now))


def claim(conn: sa.Connection, now: dt.datetime, after_id: int, up_to_id: int, limit: int) -> list[sa.Row]:
    query = (sa.select(serial_outbox).where(_due(now), serial_outbox.c.id > after_id, serial_outbox.c.id <= up_to_id)
             .order_by(serial_outbox.c.id).limit(limit))
    if is_postgres(conn):
        query = query.with_for_update(skip_locked=True)
    return conn.execute(query).all()


def _settle(conn: sa.Connection, rows: list[sa.Row], delivered: list[int], failures: dict[int, str],
            now: dt.datetime, options: RelayOptions) -> int:
    """Mark delivered rows published; schedule or park failed ones. Returns how many parked."""
    if delivered:
        conn.execute(serial_outbox.update()
                     .where(serial_outbox.c.id.in_(delivered), UNPUBLISHED)
                     .values(published_at=now, attempts=serial_outbox.c.attempts + 1, last_error=None,
                             next_attempt_at=None))
    parked = 0
    for row in rows:
        if row.id not in failures:
            continue
        attempts = row.attempts + 1
        park = attempts >= options.max_attempts
        parked += park
        conn.execute(serial_outbox.update().where(serial_outbox.c.id == row.id).values(
            attempts=attempts, last_error=failures[row.id][:1000],
            next_attempt_at=None if park else now + options.backoff(attempts), parked_at=now if park else None))
    return parked


def relay_batch(tenant_engine: sa.Engine, core_engine: sa.Engine, tenant_code: str, options: RelayOptions,
                now: dt.datetime, after_id: int, up_to_id: int) -> tuple[int, int, int, int] | None:
    """Claim, deliver and settle one batch. Returns (last id, published, failed, parked), or None when idle."""
    with tenant_engine.connect() as conn:
        with conn.begin():
            rows = claim(conn, now, after_id, up_to_id, options.batch_size)
            if not rows:
                return None
            fault_point("relay.after_claim")
            delivered, failures = publish(core_engine, tenant_code, rows, now)
            fault_point("relay.after_core_upsert")  # core committed, rows not yet marked
            parked = _settle(conn, rows, delivered, failures, now, options)
        fault_point("relay.after_mark")
    return rows[-1].id, len(delivered), len(failures), parked


def relay_tenant(tenant_engine: sa.Engine, core_engine: sa.Engine, tenant_code: str, options: RelayOptions,
                 clock: Clock = utcnow, progress: Progress | None = None,
                 stop: threading.Event | None = None) -> Tally:
    """One pass over the rows of one tenant that exist now."""
    tally = Tally(tenant_code)
    with tenant_engine.connect() as conn:
        up_to_id = conn.execute(sa.select(sa.func.max(serial_outbox.c.id))).scalar() or 0
        backlog = conn.execute(sa.select(sa.func.count()).select_from(serial_outbox).where(_due(clock()))).scalar_one()
    started = last_report = time.monotonic()
    after_id = 0
    while not (stop and stop.is_set()):
        outcome = relay_batch(tenant_engine, core_engine, tenant_code, options, clock(), after_id, up_to_id)
        if outcome is None:
            break
        after_id, published, failed, parked = outcome
        tally.batches += 1
        tally.published += published
        tally.failed += failed
        tally.parked += parked
        if progress and backlog > options.batch_size and time.monotonic() - last_report >= 2:
            last_report = time.monotonic()
            rate = tally.published / max(last_report - started, 1e-9)
            progress(f"outbox relay: {tenant_code}: {tally.published + tally.failed}/{backlog} rows "
                     f"({tally.published} published, {tally.failed} failed, {rate:.0f} rows/s)")
    if progress and backlog > options.batch_size:
        progress(f"outbox relay: {tenant_code}: done, {tally.published} published, {tally.failed} failed "
                 f"in {time.monotonic() - started:.1f} s")
    if tally.published:
        fold_digests(tenant_engine, core_engine, tenant_code)
    return tally


def fold_digests(tenant_engine: sa.Engine, core_engine: sa.Engine, tenant_code: str) -> None:
    """Fold the serial digests' delta rows on both sides (PostgreSQL), so reading them stays cheap."""
    for engine, side in ((tenant_engine, "tenant"), (core_engine, "core")):
        with engine.connect() as conn, conn.begin():
            if digest.kept(conn):
                digest.compact(conn, side, tenant_code)


def _tenant_codes(settings: Settings, tenant_codes: list[str] | None) -> list[str]:
    if tenant_codes:
        for code in tenant_codes:
            registry.get_tenant(settings, code)  # NOT_FOUND for an unknown tenant
        return list(tenant_codes)
    return [t["tenant_code"] for t in registry.list_tenants(settings)]


def retry_parked(settings: Settings, tenant_codes: list[str] | None = None) -> dict[str, int]:
    """Put parked rows back in the queue with a fresh attempt count."""
    requeued = {}
    for code in _tenant_codes(settings, tenant_codes):
        with get_engine(settings.tenant_url(code)).begin() as conn:
            requeued[code] = conn.execute(
                serial_outbox.update()
                .where(PARKED).values(parked_at=None, attempts=0, next_attempt_at=None)).rowcount
    return requeued


def relay(settings: Settings, tenant_codes: list[str] | None = None, options: RelayOptions = RelayOptions(),
          clock: Clock = utcnow, progress: Progress | None = None, stop: threading.Event | None = None) -> dict:
    """One pass over every given tenant (default: every registered tenant)."""
    started = time.perf_counter()
    core_engine = get_engine(settings.core_url)
    tallies = [relay_tenant(get_engine(settings.tenant_url(code)), core_engine, code, options, clock, progress, stop)
               for code in _tenant_codes(settings, tenant_codes)]
    return _summary(tallies, time.perf_counter() - started, passes=1)


def follow(settings: Settings, tenant_codes: list[str] | None = None, options: RelayOptions = RelayOptions(),
           clock: Clock = utcnow, progress: Progress | None = None, stop: threading.Event | None = None,
           interval: float = 2.0) -> dict:
    """Relay pass after pass until ``stop`` is set; wait ``interval`` seconds after an idle pass."""
    if not interval > 0:
        raise ValidationError(f"the follow interval must be positive, got {interval}", hint="e.g. --interval 2")
    stop = stop or threading.Event()
    progress = progress or (lambda line: None)
    started = time.perf_counter()
    totals: dict[str, Tally] = {}
    passes = 0
    progress(f"outbox relay: following {', '.join(tenant_codes) if tenant_codes else 'every tenant'}; "
             "SIGTERM or SIGINT stops after the current batch")
    errors = 0
    while not stop.is_set():
        passes += 1
        try:
            result = relay(settings, tenant_codes, options, clock, progress, stop)
        except DBAPIError as exc:  # a database away for a moment must not end the relay
            errors += 1
            progress(f"outbox relay: pass {passes} failed: {str(exc.orig).strip().splitlines()[0]}; "
                     f"retrying in {interval} s")
            stop.wait(interval)
            continue
        for tally in result["tenants"]:
            total = totals.setdefault(tally["tenant"], Tally(tally["tenant"]))
            for key in ("published", "failed", "parked", "batches"):
                setattr(total, key, getattr(total, key) + tally[key])
        if any(t["batches"] for t in result["tenants"]):
            progress(f"outbox relay: pass {passes}: {result['published']} published, {result['failed']} failed")
        else:
            stop.wait(interval)
    return _summary(list(totals.values()), time.perf_counter() - started, passes, errors)


def _summary(tallies: list[Tally], seconds: float, passes: int, errors: int = 0) -> dict:
    published = sum(t.published for t in tallies)
    return {"tenants": [asdict(t) for t in tallies], "published": published,
            "failed": sum(t.failed for t in tallies), "parked": sum(t.parked for t in tallies),
            "passes": passes, "failed_passes": errors, "seconds": round(seconds, 3),
            "rows_per_second": round(published / seconds, 1) if seconds > 0 else None}


@contextmanager
def stop_on_signals():
    """An event set by SIGTERM or SIGINT, so ``follow`` finishes its batch and reports."""
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# --------------------------------------------------------------------------- status
def backlog(conn: sa.Connection, now: dt.datetime) -> dict:
    """Outbox counts of one tenant DB: pending, retrying (pending after a failed attempt), parked, published."""

    def count(condition):
        return sa.func.coalesce(sa.func.sum(sa.case((condition, 1), else_=0)), 0)

    row = conn.execute(sa.select(
        count(PENDING).label("pending"),
        count(sa.and_(PENDING, serial_outbox.c.attempts > 0)).label("retrying"),
        count(PARKED).label("parked"),
        count(~UNPUBLISHED).label("published"),
    )).one()
    oldest = conn.execute(sa.select(sa.func.min(serial_outbox.c.created_at)).where(PENDING)).scalar()
    age = (now - as_utc(oldest)).total_seconds() if oldest is not None else None
    return {"pending": int(row.pending), "retrying": int(row.retrying), "parked": int(row.parked),
            "published": int(row.published),
            "oldest_pending_age_seconds": round(max(age, 0.0), 3) if age is not None else None}


def parked_rows(conn: sa.Connection, limit: int = 20) -> list[dict]:
    rows = conn.execute(sa.select(serial_outbox.c.id, serial_outbox.c.event_id, serial_outbox.c.serial_code,
                                  serial_outbox.c.version, serial_outbox.c.attempts, serial_outbox.c.last_error)
                        .where(PARKED).order_by(serial_outbox.c.id).limit(limit))
    return [dict(r._mapping) for r in rows]


def status(settings: Settings, tenant_codes: list[str] | None = None, clock: Clock = utcnow) -> dict:
    tenants = []
    for code in _tenant_codes(settings, tenant_codes):
        with get_engine(settings.tenant_url(code)).connect() as conn:
            tenants.append({"tenant": code, **backlog(conn, clock()), "parked_rows": parked_rows(conn)})
    return {"tenants": tenants}
