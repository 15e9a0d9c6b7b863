"""Tenant vs core serial registries: which serial codes differ, and the rows of each.

Two ways, one result:

- **Bucketed** (PostgreSQL on both sides, the whole registry): each side's summary —
  per bucket of ``hashtextextended(serial_code) & (BUCKETS - 1)`` the row count and the
  sum of a 64-bit hash of the canonical row ``serial_code|sku|job|token|status`` (core's
  ``job_ref``/``token_ref`` are the job code and the token id as text, so the tenant side
  joins its job for the code) — is the serial digest each database keeps on write
  (``lifecycle/digest.py``), compared in two levels: the 65,536 coarse buckets first (plus
  the writes since the relay last folded them, whatever the size of the registry), then
  the fine buckets (2^20) of only the coarse ones that differ. A full pass (``check run
  --full-reconcile``, the nightly schedule) computes both levels from the registries
  instead and fails with ``DigestDrift`` where a digest's coarse sums disagree. In the fine
  buckets whose count or checksum differ, each side's ``(serial_code, row hash)`` pairs
  are read through the registries' bucket indexes (server-side cursors, ordered by
  ``serial_code COLLATE "C"``) and merged by code; only the codes whose rows differ are
  read whole, a batch at a time, and classified. A code whose rows agree in every compared
  field cannot break any serial rule, so skipping equal buckets and equal codes changes no
  finding.
  One pass answers every comparison of a check run: the differing codes are kept in
  the run's ``shared`` dict (up to ``SHARED_CAP`` codes) for the next serial check.
- **Paged** (SQLite, or one serial code for a repair's row predicate): the drive side's
  rows are paged in ``serial_code`` order (keyset pagination), and for each page the
  other registry's rows for just those codes are fetched by primary key.

Either way at most one page or one streamed bucket set is held in memory, and each
code's tenant and core rows go to the check's ``classify`` function.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from collections import defaultdict
from itertools import groupby, islice
from typing import Iterator

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from lifecycle import digest
from lifecycle.schema import core_serial_registry as core_reg
from lifecycle.schema import hatthasilpa_job
from lifecycle.schema import serial_registry as tenant_reg

from .errors import CheckTimeout, DigestDrift
from .model import Check, Side

BATCH_SIZE = 1000
BUCKETS = digest.BUCKETS
SHARED_CAP = 50_000  # differing codes one run keeps for its other serial checks
STREAM_ROWS = 5000
SUMMARY_WORK_MEM = "64MB"

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


def _finding(code: str, tenant_rows: list[dict], core_rows: list[dict], reason: str) -> dict:
    return {"serial_code": code, "tenant_rows": len(tenant_rows),
            "core_tenants": ",".join(sorted({c["tenant_code"] for c in core_rows})), "reason": reason}


def compare(check: Check, target, only: str | None = None, batch: int = BATCH_SIZE) -> Iterator[dict]:
    """Yield one finding row per serial code whose tenant and core rows break the check."""
    if target.core is None:
        raise ValueError(f"check {check.id} compares with core; the target has no core connection")
    if only is None and target.tenant.dialect.name == "postgresql" and target.core.dialect.name == "postgresql":
        for code, tenant_rows, core_rows in differing(target):
            reason = check.compare.classify(target.params, tenant_rows, core_rows)
            if reason:
                yield _finding(code, tenant_rows, core_rows, reason)
        return
    yield from _paged(check, target, only, batch)


# --------------------------------------------------------------------------- bucketed (PostgreSQL)
def _sums(conn: sa.Connection, side: str, tenant_code: str, buckets: int, full: bool,
          fine: list[int] | None) -> dict[int, tuple]:
    """One side's (count, checksum) per coarse bucket (``fine`` None) or per fine bucket of ``fine``:
    from the digest kept on write, or (``full``, or no digest) computed from the registry; a full
    pass also holds the digest's coarse sums against the computed ones."""
    params = {"tenant_code": tenant_code, "buckets": fine}
    coarse, only = fine is None, fine is not None
    # the buckets' aggregate states fit in memory instead of spilling (transaction-local, read-only safe)
    # and are computed without JIT, whose compile time the planner's guess of a million groups invites
    conn.execute(sa.text("SELECT set_config('work_mem', :mem, true), set_config('jit', 'off', true)"),
                 {"mem": SUMMARY_WORK_MEM})
    stored = None
    if buckets == BUCKETS and digest.kept(conn) and not (full and only):
        stored = {b: (n, h) for b, n, h in conn.execute(sa.text(digest.stored_sql(side, coarse, only)), params)}
        if not full:
            return stored
    computed = {b: (n, h) for b, n, h in conn.execute(sa.text(digest.recompute_sql(side, buckets, coarse, only)),
                                                      params)}
    if stored is not None and stored != computed:
        drifted = sum(1 for b in stored.keys() | computed.keys() if stored.get(b) != computed.get(b))
        raise DigestDrift(f"the {side} serial digest of tenant {tenant_code} disagrees with its registry in "
                          f"{drifted} of {digest.coarse_buckets(buckets):,} bucket groups (a write bypassed its "
                          f"triggers); rebuild it with `hatthasilpa db rebuild-digest --tenant {tenant_code}`")
    return computed


def summaries(target, buckets: int = BUCKETS, fine: list[int] | None = None) -> tuple[dict, dict]:
    """Both sides' sums per coarse bucket, or per fine bucket of ``fine``, read at the same time
    from the two databases."""
    full = bool(target.params.get("full_reconcile"))
    with ThreadPoolExecutor(max_workers=1) as pool:
        tenant = pool.submit(_sums, target.tenant, "tenant", target.tenant_code, buckets, full, fine)
        core = _sums(target.core, "core", target.tenant_code, buckets, full, fine)
        return tenant.result(), core


def _differ(tenant_sums: dict, core_sums: dict) -> list[int]:
    return sorted(b for b in tenant_sums.keys() | core_sums.keys() if tenant_sums.get(b) != core_sums.get(b))


def differing_buckets(target, buckets: int = BUCKETS) -> list[int]:
    """The fine buckets whose count or checksum differ between the sides, in two levels: the
    coarse sums (``bucket >> COARSE_SHIFT``, summed in SQL), then the fine sums of only the
    coarse buckets that differ."""
    coarse = _differ(*summaries(target, buckets))
    if not coarse:
        return []
    _check_deadline(target, "fine bucket sums")
    return _differ(*summaries(target, buckets, digest.fine_of(coarse)))


def differing(target, buckets: int = BUCKETS) -> Iterator[tuple[str, list[dict], list[dict]]]:
    """(code, tenant rows, core rows) of every code whose tenant and core rows differ, by code.

    Kept in ``target.shared`` when the run passes one and the codes are few, so the other
    serial checks of the run reuse the pass."""
    shared = getattr(target, "shared", None)
    if shared is not None and ("serial_diff", buckets) in shared:
        cached = shared[("serial_diff", buckets)]
        if cached is not None:
            yield from cached
            return
        yield from _differing(target, buckets)
        return
    if shared is None:
        yield from _differing(target, buckets)
        return
    first = list(islice(_differing(target, buckets), SHARED_CAP + 1))
    if len(first) <= SHARED_CAP:
        shared[("serial_diff", buckets)] = first
        yield from first
        return
    shared[("serial_diff", buckets)] = None  # too many to keep: every check streams its own pass
    yield from _differing(target, buckets)


def _keys(conn: sa.Connection, side: str, buckets: list[int], tenant_code: str, n: int) -> Iterator[tuple]:
    """(serial_code, canonical-row hash) of every row in these buckets, by code (through the bucket index)."""
    if side == "tenant":
        sql = (f"SELECT r.serial_code, {digest.row_hash_sql(digest.TENANT_CANON)} FROM {digest.tenant_from()} "
               f"WHERE {digest.IN_BUCKETS.format(bucket=digest.bucket_sql('r.serial_code', n))} "
               'ORDER BY r.serial_code COLLATE "C"')
    else:
        sql = (f"SELECT c.serial_code, {digest.row_hash_sql(digest.CORE_CANON)} FROM serial_registry c "
               f"WHERE c.tenant_code = :tenant_code AND {digest.IN_BUCKETS.format(bucket=digest.bucket_sql('c.serial_code', n))} "
               'ORDER BY c.serial_code COLLATE "C"')
    result = conn.execute(sa.text(sql), {"buckets": buckets, "tenant_code": tenant_code},
                          execution_options={"stream_results": True, "max_row_buffer": STREAM_ROWS})
    yield from result.tuples()


def _hashes_by_code(keys: Iterator[tuple]) -> Iterator[tuple[str, list[int]]]:
    for code, group in groupby(keys, key=lambda k: k[0]):
        yield code, sorted(h for _, h in group)


def _codes_that_differ(target, tenant_keys, core_keys) -> Iterator[str]:
    """The codes, in order, whose tenant rows and core rows (this tenant's) are not the same rows."""
    tenant, core = _hashes_by_code(tenant_keys), _hashes_by_code(core_keys)
    t, c = next(tenant, None), next(core, None)
    seen = 0
    while t is not None or c is not None:
        seen += 1
        if seen % STREAM_ROWS == 0:
            _check_deadline(target, "comparing the differing buckets' rows")
        if c is None or (t is not None and t[0] < c[0]):
            yield t[0]
            t = next(tenant, None)
        elif t is None or c[0] < t[0]:
            yield c[0]
            c = next(core, None)
        else:
            if t[1] != c[1]:
                yield t[0]
            t, c = next(tenant, None), next(core, None)


def _differing(target, buckets: int) -> Iterator[tuple[str, list[dict], list[dict]]]:
    """The differing fine buckets, then their (code, hash) pairs merged by code, then the whole rows
    of only the codes whose rows differ, a batch at a time."""
    _check_deadline(target, "bucket summaries")
    diff = differing_buckets(target, buckets)
    if not diff:
        return
    codes = _codes_that_differ(target, _keys(target.tenant, "tenant", diff, target.tenant_code, buckets),
                               _keys(target.core, "core", diff, target.tenant_code, buckets))
    while batch := list(islice(codes, BATCH_SIZE)):
        tenant_rows = _rows_for(target.tenant, TENANT_COLUMNS, batch)
        core_rows = _rows_for(target.core, CORE_COLUMNS, batch)  # any tenant's: a code core holds for another
        for code in batch:
            mine = [r for r in core_rows.get(code, []) if r["tenant_code"] == target.tenant_code]
            yield code, tenant_rows.get(code, []), mine or core_rows.get(code, [])


def _check_deadline(target, where: str) -> None:
    if target.deadline is not None and time.monotonic() > target.deadline:
        raise CheckTimeout(f"serial comparison ran past its time budget ({where})")


# --------------------------------------------------------------------------- paged (SQLite, one code)
def _paged(check: Check, target, only: str | None, batch: int) -> Iterator[dict]:
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
                yield _finding(code, tenant_rows.get(code, []), core_rows.get(code, []), reason)
        after = codes[-1]
