"""Serial digests: each registry's per-bucket row count and checksum, kept on write (PostgreSQL).

Invariant: for every bucket ``b`` (``hashtextextended(serial_code, 0) & 1048575``), the sum of
``serial_digest``'s rows of ``b`` equals the row count and the sum of the canonical-row
hashes of the registry's rows in ``b`` — on the tenant side over its ``serial_registry``,
on core per tenant code; and for every coarse bucket ``c`` (``b >> COARSE_SHIFT``, 16 fine
buckets), the rows of bucket ``COARSE_AT + c`` sum to the same over its 16 buckets.
Guarded by ``tests/integration/test_serial_digest.py`` (random writes, concurrent writers,
job code changes, truncation, rebuild, the upgrade from one level) and by the full
reconciliation pass, which recomputes both sides and fails loudly on drift.

Statement-level triggers with transition tables append one delta row per touched fine and
coarse bucket, in one statement (writers only INSERT: no row of the digest is ever locked
by a writer, so concurrent transactions never wait on or deadlock over it). ``compact``
folds a bucket's rows into one marked ``folded`` (the outbox relay calls it after each
pass), finding the buckets with deltas through a partial index of the unfolded rows.

The fine buckets (2^20: about ten serials each at 10 M) make a differing bucket cost ten
rows to compare; the coarse rows keep the first read at 65,536 rows: the reconciliation
reads ``stored_sql(side, coarse=True)``, then ``stored_sql(side, only=True)`` for the fine
buckets of just the coarse ones that differ. Tenant migration 0006 and core migration 0004
made the first digests (65,536 buckets, one level); tenant 0007 and core 0005 made them anew
with ``BUCKETS`` and the coarse rows.
The canonical row is the one the reconciliation compares: ``serial_code|sku|job|token|
status``, the job being the job code (core keeps it as ``job_ref``, the token id as
``token_ref``). Writes that bypass triggers (``session_replication_role = replica``,
disabled triggers) are what the full pass and ``rebuild`` are for.

SQLite keeps no digest: its reconciliation compares the registries page by page.
"""

from __future__ import annotations

import sqlalchemy as sa

from . import registry
from .db import get_engine
from .errors import ValidationError

BUCKETS = 1 << 20  # fine buckets, the digest's rows and the registries' bucket indexes
COARSE_SHIFT = 4  # a coarse bucket is 16 fine ones (bucket >> 4): 65,536 of them at BUCKETS
COARSE_AT = BUCKETS  # the digest keeps coarse bucket c's rows at bucket COARSE_AT + c, after the fine ones
# the first fill and a rebuild aggregate a million groups: in memory rather than spilled (transaction-local)
FILL_WORK_MEM = "SET LOCAL work_mem = '256MB'"


def bucket_sql(code: str, buckets: int = BUCKETS) -> str:
    """The bucket of a serial code, as SQL (at ``BUCKETS``, the expression the registries' bucket indexes hold)."""
    return f"(hashtextextended({code}, 0) & {buckets - 1})"


def coarse_buckets(buckets: int = BUCKETS) -> int:
    """How many coarse buckets ``buckets`` fine ones make (at least one)."""
    return max(buckets >> COARSE_SHIFT, 1)


def fine_of(coarse: list[int]) -> list[int]:
    """The fine buckets of these coarse ones, in order."""
    return [(c << COARSE_SHIFT) + i for c in sorted(coarse) for i in range(1 << COARSE_SHIFT)]


TENANT_CANON = ("r.serial_code || '|' || r.sku || '|' || coalesce(j.job_code, '') || '|' || r.token_id::text "
                "|| '|' || r.status")
CORE_CANON = "c.serial_code || '|' || c.sku || '|' || c.job_ref || '|' || c.token_ref || '|' || c.status"


def tenant_from(rows: str = "serial_registry") -> str:
    """The tenant's serial rows (``r``) with their job (``j``), whose code is part of the canonical row."""
    return f"{rows} r LEFT JOIN hatthasilpa_job j ON j.id = r.job_id"


def row_hash_sql(canon: str) -> str:
    """A canonical row's 64-bit hash (bigint: cast to numeric before negating or subtracting)."""
    return f"coalesce(hashtextextended({canon}, 1), 0)"


def _tenant_rows(rows: str, sign: str, buckets: int) -> str:
    """(bucket, ±1, ±hash) of each serial row in the transition table ``rows``."""
    return (f"SELECT {bucket_sql('r.serial_code', buckets)} AS b, {sign}1 AS n, {sign}{row_hash_sql(TENANT_CANON)}::numeric AS h "
            f"FROM {tenant_from(rows)}")


def _core_rows(rows: str, sign: str, buckets: int) -> str:
    return (f"SELECT c.tenant_code AS t, {bucket_sql('c.serial_code', buckets)} AS b, {sign}1 AS n, "
            f"{sign}{row_hash_sql(CORE_CANON)}::numeric AS h FROM {rows} c")


def _columns(side: str) -> tuple[str, str]:
    """(the digest's columns, the tenant key prefix of a grouping) of one side."""
    return ("tenant_code, bucket, n, h", "t, ") if side == "core" else ("bucket, n, h", "")


def _append(side: str, rows: str, coarse: bool) -> str:
    """One delta row per bucket ``rows`` (``[t,] b, n, h``) touches, and with ``coarse`` one per
    coarse bucket it touches too (at ``COARSE_AT + c``), in one statement."""
    columns, t = _columns(side)
    if not coarse:
        return (f"INSERT INTO serial_digest ({columns}) SELECT {t}b, sum(n), sum(h) FROM ({rows}) x "
                f"GROUP BY {t}b HAVING sum(n) <> 0 OR sum(h) <> 0;")
    return (f"INSERT INTO serial_digest ({columns}) "
            f"SELECT {t}CASE WHEN grouping(b) = 0 THEN b ELSE {COARSE_AT} + c END, sum(n), sum(h) "
            f"FROM (SELECT x.*, x.b >> {COARSE_SHIFT} AS c FROM ({rows}) x) y "
            f"GROUP BY GROUPING SETS (({t}b), ({t}c)) HAVING sum(n) <> 0 OR sum(h) <> 0;")


def _coarse_fill(side: str, one_tenant: bool = False) -> str:
    """The coarse rows summed from the fine ones, folded (after a fill of the fine rows; core: of
    every tenant, or of ``:tenant_code`` alone)."""
    columns, _ = _columns(side)
    t, group = ("tenant_code, ", "1, 2") if side == "core" else ("", "1")
    where = "AND tenant_code = :tenant_code " if one_tenant else ""
    return (f"INSERT INTO serial_digest ({columns}, folded) SELECT {t}{COARSE_AT} + (bucket >> {COARSE_SHIFT}), "
            f"sum(n), sum(h), true FROM serial_digest WHERE bucket < {COARSE_AT} {where}GROUP BY {group}")


def _fill(side: str, buckets: int, coarse: bool) -> list[str]:
    """The first fill of an empty digest from the registry (with ``coarse``: its coarse rows too,
    every row folded)."""
    columns, _ = _columns(side)
    folded, flag = (", folded", ", true") if coarse else ("", "")
    if side == "tenant":
        fine = (f"INSERT INTO serial_digest ({columns}{folded}) SELECT b, n, h{flag} "
                f"FROM ({recompute_sql('tenant', buckets)}) x")
    else:
        fine = (f"INSERT INTO serial_digest ({columns}{folded}) "
                f"SELECT c.tenant_code, {bucket_sql('c.serial_code', buckets)}, count(*), "
                f"sum({row_hash_sql(CORE_CANON)}){flag} FROM serial_registry c GROUP BY 1, 2")
    return [FILL_WORK_MEM, fine, *([_coarse_fill(side)] if coarse else []), "ANALYZE serial_digest"]


def _trigger_ddl(function: str, body_insert: str, body_delete: str, body_update: str, reset: str) -> list[str]:
    return [
        f"""CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    {body_insert}
  ELSIF TG_OP = 'DELETE' THEN
    {body_delete}
  ELSE
    {body_update}
  END IF;
  RETURN NULL;
END $$""",
        f"""CREATE FUNCTION {function}_reset() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  {reset}
  RETURN NULL;
END $$""",
        f"CREATE TRIGGER serial_digest_insert AFTER INSERT ON serial_registry REFERENCING NEW TABLE AS new_rows "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {function}()",
        f"CREATE TRIGGER serial_digest_update AFTER UPDATE ON serial_registry "
        f"REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION {function}()",
        f"CREATE TRIGGER serial_digest_delete AFTER DELETE ON serial_registry REFERENCING OLD TABLE AS old_rows "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {function}()",
        f"CREATE TRIGGER serial_digest_truncate AFTER TRUNCATE ON serial_registry "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {function}_reset()",
    ]


def tenant_ddl(buckets: int = BUCKETS, coarse: bool = True) -> list[str]:
    """The tenant side's bucket index, triggers and first fill with ``buckets`` buckets, and (``coarse``)
    their coarse rows, the fill marked folded (PostgreSQL; tenant migrations 0006, one level without
    the ``folded`` column, and 0007). The digest must be empty."""
    # a serial's hash under its job's new code (j) minus its hash under the old one (o)
    moved = (f"{row_hash_sql(TENANT_CANON)}::numeric "
             f"- {row_hash_sql(TENANT_CANON.replace('j.job_code', 'o.job_code'))}::numeric")
    return [
        f"CREATE INDEX ix_serial_registry_bucket ON serial_registry ({bucket_sql('serial_code', buckets)})",
        "ANALYZE serial_registry",  # the planner's statistics of the bucket expression
        *_trigger_ddl(
            "serial_digest_track",
            _append("tenant", _tenant_rows("new_rows", "", buckets), coarse),
            _append("tenant", _tenant_rows("old_rows", "-", buckets), coarse),
            _append("tenant", f"{_tenant_rows('new_rows', '', buckets)} UNION ALL "
                              f"{_tenant_rows('old_rows', '-', buckets)}", coarse),
            "DELETE FROM serial_digest;"),
        # a job's code is part of its serials' canonical rows: a changed code moves their hashes
        f"""CREATE FUNCTION serial_digest_job_code() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  {_append("tenant", f"SELECT {bucket_sql('r.serial_code', buckets)} AS b, 0 AS n, {moved} AS h "
                    "FROM old_jobs o JOIN new_jobs j ON j.id = o.id AND j.job_code IS DISTINCT FROM o.job_code "
                    "JOIN serial_registry r ON r.job_id = o.id", coarse)}
  RETURN NULL;
END $$""",
        "CREATE TRIGGER serial_digest_job_code AFTER UPDATE ON hatthasilpa_job "
        "REFERENCING OLD TABLE AS old_jobs NEW TABLE AS new_jobs FOR EACH STATEMENT "
        "EXECUTE FUNCTION serial_digest_job_code()",
        *_fill("tenant", buckets, coarse),
    ]


def core_ddl(buckets: int = BUCKETS, coarse: bool = True) -> list[str]:
    """Core's bucket index, triggers and first fill with ``buckets`` buckets, and (``coarse``) their
    coarse rows, the fill marked folded (PostgreSQL; core migrations 0004, one level without the
    ``folded`` column, and 0005). The digest must be empty."""
    return [
        "CREATE INDEX ix_serial_registry_tenant_bucket ON serial_registry "
        f"(tenant_code, {bucket_sql('serial_code', buckets)})",
        "ANALYZE serial_registry",
        *_trigger_ddl(
            "serial_digest_track",
            _append("core", _core_rows("new_rows", "", buckets), coarse),
            _append("core", _core_rows("old_rows", "-", buckets), coarse),
            _append("core", f"{_core_rows('new_rows', '', buckets)} UNION ALL "
                            f"{_core_rows('old_rows', '-', buckets)}", coarse),
            "DELETE FROM serial_digest;"),
        *_fill("core", buckets, coarse),
    ]


DROP_TENANT = ["DROP TRIGGER IF EXISTS serial_digest_job_code ON hatthasilpa_job",
               "DROP FUNCTION IF EXISTS serial_digest_job_code()"]
DROP_COMMON = ["DROP TRIGGER IF EXISTS serial_digest_insert ON serial_registry",
               "DROP TRIGGER IF EXISTS serial_digest_update ON serial_registry",
               "DROP TRIGGER IF EXISTS serial_digest_delete ON serial_registry",
               "DROP TRIGGER IF EXISTS serial_digest_truncate ON serial_registry",
               "DROP FUNCTION IF EXISTS serial_digest_track()",
               "DROP FUNCTION IF EXISTS serial_digest_track_reset()"]


def drop_ddl(side: str) -> list[str]:
    """Undo ``tenant_ddl`` / ``core_ddl`` but for the digest's rows: triggers, functions, bucket index."""
    index = "ix_serial_registry_bucket" if side == "tenant" else "ix_serial_registry_tenant_bucket"
    return [*(DROP_TENANT if side == "tenant" else []), *DROP_COMMON, f"DROP INDEX IF EXISTS {index}"]


# --------------------------------------------------------------------------- reading and keeping
# just the buckets of the array parameter ``:buckets``: through the bucket indexes (a hashed array on a scan)
IN_BUCKETS = "{bucket} = ANY(CAST(:buckets AS bigint[]))"


def recompute_sql(side: str, buckets: int = BUCKETS, coarse: bool = False, only: bool = False) -> str:
    """Per bucket (``coarse``: per coarse bucket), the count and checksum computed from the registry
    itself (core: ``:tenant_code``'s rows); ``only``: of the buckets ``:buckets`` alone."""
    if side == "tenant":
        bucket, canon, source, where = bucket_sql("r.serial_code", buckets), TENANT_CANON, tenant_from(), []
    else:
        bucket, canon, source = bucket_sql("c.serial_code", buckets), CORE_CANON, "serial_registry c"
        where = ["c.tenant_code = :tenant_code"]
    if only:
        where.append(IN_BUCKETS.format(bucket=bucket))
    where_sql = f" WHERE {' AND '.join(where)}" if where else ""
    group = f"({bucket} >> {COARSE_SHIFT})" if coarse else bucket
    return (f"SELECT {group} AS b, count(*) AS n, sum({row_hash_sql(canon)}) AS h "
            f"FROM {source}{where_sql} GROUP BY 1")


def stored_sql(side: str, coarse: bool = False, only: bool = False) -> str:
    """Per bucket (``coarse``: per coarse bucket, its own rows), the digest as kept on write (core:
    ``:tenant_code``'s rows); empty buckets left out; ``only``: of the buckets ``:buckets`` alone."""
    where = ["tenant_code = :tenant_code"] if side == "core" else []
    where.append(f"bucket >= {COARSE_AT}" if coarse else f"bucket < {COARSE_AT}")
    if only:
        where.append(IN_BUCKETS.format(bucket="bucket"))
    group = f"bucket - {COARSE_AT}" if coarse else "bucket"
    return (f"SELECT {group} AS b, sum(n) AS n, sum(h) AS h FROM serial_digest WHERE {' AND '.join(where)} "
            "GROUP BY 1 HAVING sum(n) <> 0 OR sum(h) <> 0")


def kept(conn: sa.Connection) -> bool:
    """Whether this database keeps a serial digest (PostgreSQL, migrated past the digest's revision)."""
    return conn.dialect.name == "postgresql" and \
        conn.execute(sa.text("SELECT to_regclass('serial_digest') IS NOT NULL")).scalar_one()


def compact(conn: sa.Connection, side: str, tenant_code: str | None = None) -> int:
    """Fold each bucket that has delta rows into one folded row (one statement; concurrent writers
    and compactions are safe: a writer only appends, and a row another compaction took is skipped).
    The buckets to fold are found through the partial index of the unfolded rows, so a pass costs
    the writes since the last one, not the digest's size. Returns the rows removed."""
    where = "AND tenant_code = :tenant_code " if side == "core" else ""
    keys = "tenant_code, bucket" if side == "core" else "bucket"
    match = " AND ".join(f"d.{k} = busy.{k}" for k in keys.split(", "))
    sql = (f"WITH busy AS (SELECT DISTINCT {keys} FROM serial_digest WHERE NOT folded {where}), "
           f"gone AS (DELETE FROM serial_digest d USING busy WHERE {match} "
           f"RETURNING d.{keys.replace(', ', ', d.')}, d.n, d.h), "
           f"kept AS (INSERT INTO serial_digest ({keys}, n, h, folded) SELECT {keys}, sum(n), sum(h), true FROM gone "
           f"GROUP BY {keys} HAVING sum(n) <> 0 OR sum(h) <> 0 RETURNING 1) "
           "SELECT (SELECT count(*) FROM gone) - (SELECT count(*) FROM kept)")
    return conn.execute(sa.text(sql), {"tenant_code": tenant_code}).scalar_one()


def rebuild(conn: sa.Connection, side: str, tenant_code: str | None = None) -> int:
    """Recompute the digest from the registry (writers wait meanwhile); returns the (fine) buckets
    written. The caller commits."""
    conn.execute(sa.text("LOCK TABLE serial_registry IN SHARE MODE"))
    conn.execute(sa.text(FILL_WORK_MEM))
    if side == "core":
        conn.execute(sa.text("DELETE FROM serial_digest WHERE tenant_code = :tenant_code"),
                     {"tenant_code": tenant_code})
        written = conn.execute(sa.text(f"INSERT INTO serial_digest (tenant_code, bucket, n, h, folded) "
                                       f"SELECT :tenant_code, b, n, h, true FROM ({recompute_sql('core')}) x"),
                               {"tenant_code": tenant_code}).rowcount
    else:
        conn.execute(sa.text("DELETE FROM serial_digest"))
        written = conn.execute(sa.text(f"INSERT INTO serial_digest (bucket, n, h, folded) "
                                       f"SELECT b, n, h, true FROM ({recompute_sql('tenant')}) x")).rowcount
    conn.execute(sa.text(_coarse_fill(side, one_tenant=side == "core")), {"tenant_code": tenant_code})
    conn.execute(sa.text("ANALYZE serial_digest"))  # the planner's row counts of the levels
    return written


def rebuild_tenant(settings, tenant_code: str) -> dict:
    """Rebuild both sides' digests of one registered tenant, each in its own transaction."""
    code = registry.get_tenant(settings, tenant_code)["tenant_code"]  # NOT_FOUND for an unknown tenant
    written = {}
    for side, url in (("tenant", settings.tenant_url(code)), ("core", settings.core_url)):
        with get_engine(url).connect() as conn, conn.begin():
            if not kept(conn):
                raise ValidationError(f"the {side} database of {code} keeps no serial digest",
                                      hint="digests live on PostgreSQL, from `hatthasilpa db upgrade` on")
            written[side] = rebuild(conn, side, code)
    return {"tenant": code, "buckets": written}
