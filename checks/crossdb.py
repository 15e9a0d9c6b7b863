"""Tenant vs core serial registries, compared in bounded batches.

The drive side's rows are paged in ``serial_code`` order (keyset pagination:
``serial_code > :after ORDER BY serial_code LIMIT :batch``, on the core side restricted
to this tenant's rows); for each page the other registry's rows for just those codes
are fetched by primary key (``serial_code = ANY(:codes)`` on PostgreSQL, ``IN`` on
SQLite). At most one page of each side is in memory, whatever the
size of the registries, and both databases answer from their indexes. Each code's
tenant and core rows go to the check's ``classify`` function.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Iterator

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from lifecycle.schema import core_serial_registry as core_reg
from lifecycle.schema import hatthasilpa_job
from lifecycle.schema import serial_registry as tenant_reg

from .errors import CheckTimeout
from .model import Check, Side

BATCH_SIZE = 1000

# Core keeps the job by its code (``job_ref``): the tenant side carries it beside the id.
_JOB_CODE = (sa.select(hatthasilpa_job.c.job_code).where(hatthasilpa_job.c.id == tenant_reg.c.job_id)
             .scalar_subquery().label("job_code"))
TENANT_COLUMNS = (tenant_reg.c.serial_code, tenant_reg.c.tenant_code, tenant_reg.c.sku, tenant_reg.c.job_id,
                  _JOB_CODE, tenant_reg.c.token_id, tenant_reg.c.mode, tenant_reg.c.status, tenant_reg.c.created_at,
                  tenant_reg.c.updated_at)
CORE_COLUMNS = (core_reg.c.serial_code, core_reg.c.tenant_code, core_reg.c.sku, core_reg.c.job_ref,
                core_reg.c.token_ref, core_reg.c.mode, core_reg.c.status, core_reg.c.updated_at)


def _drive(check: Check, target):
    """(connection, columns, extra filters) of the side the comparison pages through."""
    if check.compare.drive == Side.TENANT:
        return target.tenant, TENANT_COLUMNS, []
    return target.core, CORE_COLUMNS, [core_reg.c.tenant_code == target.tenant_code]


def _page(conn: sa.Connection, columns, filters, after: str | None, only: str | None,
          batch: int) -> tuple[list[str], dict[str, list[dict]]]:
    """The next page of drive rows after ``after``, whole serial codes only (a legacy registry
    without its primary key may hold a code twice, even across a page boundary)."""
    code = columns[0]
    query = sa.select(*columns).where(*filters).order_by(code)
    if only is not None:
        query = query.where(code == only)
    if after is not None:
        query = query.where(code > after)
    rows = [r._asdict() for r in conn.execute(query.limit(batch))]
    if len(rows) == batch:  # the last code may continue on the next page: read all of its rows
        last = rows[-1]["serial_code"]
        rows = [r for r in rows if r["serial_code"] != last]
        rows += [r._asdict() for r in conn.execute(sa.select(*columns).where(*filters, code == last))]
    grouped: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        grouped[row["serial_code"]].append(row)
    return list(grouped), grouped


def _rows_for(conn: sa.Connection, columns, codes: list[str]) -> dict[str, list[dict]]:
    """The other side's rows for exactly these codes, by primary key (one array parameter on PostgreSQL)."""
    code = columns[0]
    if conn.dialect.name == "postgresql":
        match = code == sa.any_(sa.bindparam("codes", codes, type_=postgresql.ARRAY(sa.String)))
    else:
        match = code.in_(codes)
    grouped: dict[str, list[dict]] = defaultdict(list)
    for row in conn.execute(sa.select(*columns).where(match)):
        grouped[row.serial_code].append(row._asdict())
    return grouped


def compare(check: Check, target, only: str | None = None, batch: int = BATCH_SIZE) -> Iterator[dict]:
    """Yield one finding row per serial code whose tenant and core rows break the check."""
    if target.core is None:
        raise ValueError(f"check {check.id} compares with core; the target has no core connection")
    after = None
    while True:
        if target.deadline is not None and time.monotonic() > target.deadline:
            raise CheckTimeout(f"{check.id}: comparison ran past its time budget (after serial {after!r})")
        codes, drive_rows = _page(*_drive(check, target), after, only, batch)
        if not codes:
            return
        if check.compare.drive == Side.TENANT:
            tenant_rows, core_rows = drive_rows, _rows_for(target.core, CORE_COLUMNS, codes)
        else:
            tenant_rows, core_rows = _rows_for(target.tenant, TENANT_COLUMNS, codes), drive_rows
        for code in codes:
            reason = check.compare.classify(target.params, tenant_rows.get(code, []), core_rows.get(code, []))
            if reason:
                yield {"serial_code": code, "tenant_rows": len(tenant_rows.get(code, [])),
                       "core_tenants": ",".join(sorted({c["tenant_code"] for c in core_rows.get(code, [])})),
                       "reason": reason}
        after = codes[-1]
