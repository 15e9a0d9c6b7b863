"""Executing one check record on one tenant: its offending rows, count and sample.

Nothing here knows any particular check. A :class:`Target` bundles the connections
(tenant, and core for checks that read it) with the bound parameters of
``checks.context``; callers own the connections and their transactions, so a repair
can re-run a row predicate inside the transaction that holds its row lock.
"""

from __future__ import annotations

import datetime as dt
import decimal
import time
from dataclasses import dataclass
from itertools import islice
from typing import Iterator

import sqlalchemy as sa

from lifecycle.db import is_postgres

from . import crossdb
from .model import Check

_DATETIME = sa.DateTime(timezone=True)
_TYPES = {"now": _DATETIME, "production_tenant": sa.Boolean(), "flag_std_on": sa.Boolean(),
          "tenant_code": sa.String(), "serial_code": sa.String(), "subject": sa.String()}


def _param_type(name: str):
    if name in _TYPES:
        return _TYPES[name]
    if name.endswith("_cutoff"):
        return _DATETIME
    return sa.Integer()


@dataclass(frozen=True)
class Target:
    """Where a check runs: one tenant's connection, core's (for tenant+core checks), parameters."""

    tenant_code: str
    tenant: sa.Connection
    core: sa.Connection | None
    params: dict
    deadline: float | None = None  # time.monotonic() after which a batched comparison gives up
    shared: dict | None = None  # one run's memo for one tenant: the serial comparisons share one pass


def parameter_names(sql: str) -> list[str]:
    return list(sa.text(sql).compile().params)


def bound_query(sql: str) -> sa.TextClause:
    return sa.text(sql).bindparams(*(sa.bindparam(n, type_=_param_type(n)) for n in parameter_names(sql)))


def _bind(check: Check, sql: str, target: Target, key: dict | None) -> dict:
    key = _check_key(check, key)
    values = {**target.params, **{k: None for k in check.keys}, **key}
    missing = [n for n in parameter_names(sql) if n not in values]
    if missing:
        raise ValueError(f"check {check.id} needs parameters {missing}")
    return {n: values[n] for n in parameter_names(sql)}


def _check_key(check: Check, key: dict | None) -> dict:
    if key is None:
        return {}
    unknown = set(key) - set(check.keys)
    if unknown or any(key.get(k) is None for k in check.keys):
        raise ValueError(f"check {check.id} is keyed by {check.keys}, got {sorted(key)}")
    return dict(key)


def jsonable(value):
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def _row(mapping) -> dict:
    return {k: jsonable(v) for k, v in mapping.items()}


def tenant_sql(check: Check, conn: sa.Connection) -> str | None:
    """The SQL of the check's tenant part on this database: ``sql_while_unique``'s while the
    tenant enforces its column unique, else ``sql``."""
    if check.sql_while_unique and enforced_unique(conn, *check.sql_while_unique[:2]):
        return check.sql_while_unique[2]
    return check.sql


def _parts(check: Check, target: Target) -> list[tuple[str, str, sa.Connection]]:
    parts = []
    if check.sql:
        parts.append(("tenant", tenant_sql(check, target.tenant), target.tenant))
    if check.core_sql:
        if target.core is None:
            raise ValueError(f"check {check.id} reads core; the target has no core connection")
        if not (check.core_sql_unless_unique and enforced_unique(target.core, *check.core_sql_unless_unique)):
            parts.append(("core", check.core_sql, target.core))
    return parts


def enforced_unique(conn: sa.Connection, table: str, column: str) -> bool:
    """Whether the database enforces ``column`` of ``table`` unique on its own (primary key or a
    valid, non-partial unique index on that column alone)."""
    if is_postgres(conn):
        return conn.execute(sa.text(
            "SELECT EXISTS (SELECT 1 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
            "AND a.attnum = i.indkey[0] WHERE i.indrelid = to_regclass(:t) AND i.indisunique AND i.indisvalid "
            "AND i.indnkeyatts = 1 AND i.indpred IS NULL AND i.indexprs IS NULL AND a.attname = :c)"),
            {"t": table, "c": column}).scalar_one()
    inspector = sa.inspect(conn)
    if inspector.get_pk_constraint(table).get("constrained_columns") == [column]:
        return True
    return any(ix["unique"] and ix["column_names"] == [column] and not ix.get("dialect_options", {}).get("sqlite_where")
               for ix in inspector.get_indexes(table))


def _wrapped(check: Check, sql: str, select: str, tail: str = "") -> sa.TextClause:
    """The check's query as a materialized CTE, then ordered by its keys.

    Materializing keeps the planner from answering ``ORDER BY key LIMIT n`` by walking
    the primary key through years of history (on PostgreSQL a LIMIT invites exactly
    that); the check is evaluated as written, through its partial indexes, and only
    its result is sorted. Identifiers come from the catalogue only."""
    order = ", ".join(f"f.{k}" for k in check.keys)
    return bound_query(f"WITH f AS MATERIALIZED ({sql}) SELECT {select} FROM f ORDER BY {order}{tail}")


def _sql_rows(check: Check, sql: str, conn: sa.Connection, target: Target, key: dict | None) -> Iterator[dict]:
    query = _wrapped(check, sql, "f.*")
    for row in conn.execute(query, _bind(check, sql, target, key)):
        yield _row(row._mapping)


def iter_rows(check: Check, target: Target, key: dict | None = None) -> Iterator[dict]:
    """Every offending row, streamed: the SQL parts in order, then the comparison."""
    for _, sql, conn in _parts(check, target):
        yield from _sql_rows(check, sql, conn, target, key)
    if check.compare is not None:
        yield from crossdb.compare(check, target, _check_key(check, key).get("serial_code"))


def offending_rows(check: Check, target: Target, key: dict | None = None, limit: int | None = None) -> list[dict]:
    rows = iter_rows(check, target, key)
    return list(rows if limit is None else islice(rows, limit))


def row_predicate(check: Check, target: Target, key: dict) -> dict | None:
    """The finding for one row if it still qualifies, else None."""
    if key is None:
        raise ValueError("row_predicate needs a key")
    return next(iter(offending_rows(check, target, key=key, limit=1)), None)


def count_and_sample(check: Check, target: Target, sample_size: int) -> tuple[int, list[dict]]:
    """The number of offending rows and the first ``sample_size`` of them (by key).

    SQL parts are counted and sampled in one statement (a window count over the
    ordered, limited result); a comparison streams its batches and keeps the sample."""
    count, sample = 0, []
    for _, sql, conn in _parts(check, target):
        query = _wrapped(check, sql, "f.*, count(*) OVER () AS total_rows__", f" LIMIT {max(1, int(sample_size))}")
        rows = [dict(r._mapping) for r in conn.execute(query, _bind(check, sql, target, None))]
        if rows:
            count += int(rows[0]["total_rows__"])
        for r in rows[:max(0, sample_size - len(sample))]:
            r.pop("total_rows__")
            sample.append(_row(r))
    if check.compare is not None:
        for row in crossdb.compare(check, target, None):
            count += 1
            if len(sample) < sample_size:
                sample.append(row)
    return count, sample


def deadline_after(seconds: float | None) -> float | None:
    return None if seconds is None else time.monotonic() + seconds
