"""The incident counters of every (tenant, check), kept on write (``incident_tally``).

What the exporter publishes about incidents past — incidents opened and resolved, ever,
and the histograms of time to acknowledge and to resolve — is counted here, in the
transaction that opens, acknowledges or resolves the incident, so a scrape reads one row
per (tenant, check) whatever the number of incidents. The counts are what aggregating the
``incident`` table would give:

- ``opened``: incidents of the pair (``_open`` inserting one, ``count_opened``);
- ``resolved``: incidents with ``resolved_at``;
- ``ack_*`` and ``resolve_*``: the incidents' ``ack_seconds`` and ``resolve_seconds``, each
  counted once, when it is first set: ``<duration>_count``, ``<duration>_sum`` and, per bound
  of ``DURATION_BUCKETS``, how many were at most that many seconds.

Each change is one upsert adding to the pair's row (``SET n = n + :k``): two transactions
counting at once both count, whichever commits first (the row lock orders them on
PostgreSQL; SQLite has one writer at a time). Migration 0007 fills the table from the
incidents a store already holds.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from lifecycle.db import dialect_insert

from .schema import DURATION_BUCKETS, bucket_column, incident_tally


def observation(duration: str, seconds: float) -> dict[str, float]:
    """The increments one ``duration`` (``ack`` or ``resolve``) of ``seconds`` adds to its histogram."""
    return {f"{duration}_count": 1, f"{duration}_sum": seconds,
            **{bucket_column(duration, bound): 1 for bound in DURATION_BUCKETS if seconds <= bound}}


def add(conn: sa.Connection, tenant: str, check: str, now: dt.datetime, **increments: float) -> None:
    """Add ``increments`` (column -> amount) to the pair's row, creating it at zero first."""
    insert = dialect_insert(conn, incident_tally)
    conn.execute(insert.values(tenant_code=tenant, check_id=check, updated_at=now, **increments)
                 .on_conflict_do_update(index_elements=["tenant_code", "check_id"],
                                        set_={"updated_at": insert.excluded.updated_at,
                                              **{name: incident_tally.c[name] + insert.excluded[name]
                                                 for name in increments}}))


def count_opened(conn: sa.Connection, tenant: str, check: str, now: dt.datetime) -> None:
    add(conn, tenant, check, now, opened=1)


def count_change(conn: sa.Connection, row, resolved: bool, values: dict, now: dt.datetime) -> None:
    """Count what a change of the incident ``row`` (as it was) writing ``values`` adds: a
    resolution with its time to resolve; a first time to acknowledge."""
    increments: dict[str, float] = {}
    if resolved and row.resolved_at is None:
        increments["resolved"] = 1
        if values.get("resolve_seconds") is not None:
            increments.update(observation("resolve", values["resolve_seconds"]))
    if values.get("ack_seconds") is not None and row.ack_seconds is None:
        increments.update(observation("ack", values["ack_seconds"]))
    if increments:
        add(conn, row.tenant_code, row.check_id, now, **increments)
