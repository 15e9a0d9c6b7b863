"""Tenant vs core serial registries, compared in bounded batches.

The drive side's distinct serial codes are paged in ``serial_code`` order (keyset
pagination: ``serial_code > :after ORDER BY serial_code LIMIT :batch``, on the core
side restricted to this tenant's rows through ``ix_serial_registry_tenant_code``);
for each page both registries' rows for just those codes are fetched by primary key
(``serial_code IN (…)``). At most one page of each side is in memory, whatever the
size of the registries, and both databases answer from their indexes. Each code's
tenant and core rows go to the check's ``classify`` function.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Iterator

import sqlalchemy as sa

from lifecycle.schema import core_serial_registry as core_reg
from lifecycle.schema import serial_registry as tenant_reg

from .model import Check, Side

BATCH_SIZE = 500

TENANT_COLUMNS = (tenant_reg.c.serial_code, tenant_reg.c.tenant_code, tenant_reg.c.sku, tenant_reg.c.job_id,
                  tenant_reg.c.token_id, tenant_reg.c.mode, tenant_reg.c.status, tenant_reg.c.created_at,
                  tenant_reg.c.updated_at)
CORE_COLUMNS = (core_reg.c.serial_code, core_reg.c.tenant_code, core_reg.c.sku, core_reg.c.job_ref,
                core_reg.c.token_ref, core_reg.c.mode, core_reg.c.status, core_reg.c.updated_at)


def _codes_page(check: Check, target, after: str | None, only: str | None, batch: int) -> list[str]:
    if check.compare.drive == Side.TENANT:
        conn, code = target.tenant, tenant_reg.c.serial_code
        query = sa.select(code).distinct()
    else:
        conn, code = target.core, core_reg.c.serial_code
        query = sa.select(code).distinct().where(core_reg.c.tenant_code == target.tenant_code)
    if only is not None:
        query = query.where(code == only)
    if after is not None:
        query = query.where(code > after)
    return list(conn.execute(query.order_by(code).limit(batch)).scalars())


def _rows_for(conn: sa.Connection, columns, codes: list[str]) -> dict[str, list[dict]]:
    grouped: dict[str, list[dict]] = defaultdict(list)
    for row in conn.execute(sa.select(*columns).where(columns[0].in_(codes))):
        grouped[row.serial_code].append(dict(row._mapping))
    return grouped


def compare(check: Check, target, only: str | None = None, batch: int = BATCH_SIZE) -> Iterator[dict]:
    """Yield one finding row per serial code whose tenant and core rows break the check."""
    if target.core is None:
        raise ValueError(f"check {check.id} compares with core; the target has no core connection")
    after = None
    while True:
        if target.deadline is not None and time.monotonic() > target.deadline:
            from .engine import CheckTimeout

            raise CheckTimeout(f"{check.id}: comparison ran past its time budget (after serial {after!r})")
        codes = _codes_page(check, target, after, only, batch)
        if not codes:
            return
        tenant_rows = _rows_for(target.tenant, TENANT_COLUMNS, codes)
        core_rows = _rows_for(target.core, CORE_COLUMNS, codes)
        for code in codes:
            reason = check.compare.classify(target.params, tenant_rows.get(code, []), core_rows.get(code, []))
            if reason:
                yield {"serial_code": code, "tenant_rows": len(tenant_rows.get(code, [])),
                       "core_tenants": ",".join(sorted({c["tenant_code"] for c in core_rows.get(code, [])})),
                       "reason": reason}
        if len(codes) < batch:
            return
        after = codes[-1]
