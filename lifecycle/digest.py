"""Serial digests: each registry's per-bucket row count and checksum, kept on write (PostgreSQL).

Invariant: for every bucket ``b`` (``hashtextextended(serial_code, 0) & 65535``), the sum of
``serial_digest``'s rows of ``b`` equals the row count and the sum of the canonical-row
hashes of the registry's rows in ``b`` — on the tenant side over its ``serial_registry``,
on core per tenant code. Guarded by ``tests/integration/test_serial_digest.py`` (random
writes, concurrent writers, job code changes, truncation, rebuild) and by the full
reconciliation pass, which recomputes both sides and fails loudly on drift.

Statement-level triggers with transition tables append one delta row per touched bucket
(writers only INSERT: no row of the digest is ever locked by a writer, so concurrent
transactions never wait on or deadlock over it). ``compact`` folds a bucket's rows into
one (the outbox relay calls it after each pass); reading a digest is one aggregate over
65,536 rows plus the deltas since the last compaction, whatever the size of the registry.
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

BUCKETS = 65536


def bucket_sql(code: str, buckets: int = BUCKETS) -> str:
    """The bucket of a serial code, as SQL (at ``BUCKETS``, the expression the registries' bucket indexes hold)."""
    return f"(hashtextextended({code}, 0) & {buckets - 1})"


TENANT_CANON = ("r.serial_code || '|' || r.sku || '|' || coalesce(j.job_code, '') || '|' || r.token_id::text "
                "|| '|' || r.status")
CORE_CANON = "c.serial_code || '|' || c.sku || '|' || c.job_ref || '|' || c.token_ref || '|' || c.status"


def tenant_from(rows: str = "serial_registry") -> str:
    """The tenant's serial rows (``r``) with their job (``j``), whose code is part of the canonical row."""
    return f"{rows} r LEFT JOIN hatthasilpa_job j ON j.id = r.job_id"


def row_hash_sql(canon: str) -> str:
    """A canonical row's 64-bit hash (bigint: cast to numeric before negating or subtracting)."""
    return f"coalesce(hashtextextended({canon}, 1), 0)"


def _tenant_rows(rows: str, sign: str) -> str:
    """(bucket, ±1, ±hash) of each serial row in the transition table ``rows``."""
    return (f"SELECT {bucket_sql('r.serial_code')} AS b, {sign}1 AS n, {sign}{row_hash_sql(TENANT_CANON)}::numeric AS h "
            f"FROM {tenant_from(rows)}")


def _core_rows(rows: str, sign: str) -> str:
    return (f"SELECT c.tenant_code AS t, {bucket_sql('c.serial_code')} AS b, {sign}1 AS n, "
            f"{sign}{row_hash_sql(CORE_CANON)}::numeric AS h FROM {rows} c")


_APPEND_TENANT = ("INSERT INTO serial_digest (bucket, n, h) SELECT b, sum(n), sum(h) FROM ({rows}) x "
                  "GROUP BY b HAVING sum(n) <> 0 OR sum(h) <> 0;")
_APPEND_CORE = ("INSERT INTO serial_digest (tenant_code, bucket, n, h) SELECT t, b, sum(n), sum(h) FROM ({rows}) x "
                "GROUP BY t, b HAVING sum(n) <> 0 OR sum(h) <> 0;")


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


def tenant_ddl() -> list[str]:
    """The tenant side's bucket index, triggers and first fill (PostgreSQL; tenant migration 0006)."""
    # a serial's hash under its job's new code (j) minus its hash under the old one (o)
    moved = (f"{row_hash_sql(TENANT_CANON)}::numeric "
             f"- {row_hash_sql(TENANT_CANON.replace('j.job_code', 'o.job_code'))}::numeric")
    return [
        f"CREATE INDEX ix_serial_registry_bucket ON serial_registry ({bucket_sql('serial_code')})",
        "ANALYZE serial_registry",  # the planner's statistics of the bucket expression
        *_trigger_ddl(
            "serial_digest_track",
            _APPEND_TENANT.format(rows=_tenant_rows("new_rows", "")),
            _APPEND_TENANT.format(rows=_tenant_rows("old_rows", "-")),
            _APPEND_TENANT.format(rows=f"{_tenant_rows('new_rows', '')} UNION ALL {_tenant_rows('old_rows', '-')}"),
            "DELETE FROM serial_digest;"),
        # a job's code is part of its serials' canonical rows: a changed code moves their hashes
        f"""CREATE FUNCTION serial_digest_job_code() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO serial_digest (bucket, n, h)
  SELECT {bucket_sql('r.serial_code')}, 0, sum({moved}) FROM old_jobs o
  JOIN new_jobs j ON j.id = o.id AND j.job_code IS DISTINCT FROM o.job_code
  JOIN serial_registry r ON r.job_id = o.id
  GROUP BY 1 HAVING sum({moved}) <> 0;
  RETURN NULL;
END $$""",
        "CREATE TRIGGER serial_digest_job_code AFTER UPDATE ON hatthasilpa_job "
        "REFERENCING OLD TABLE AS old_jobs NEW TABLE AS new_jobs FOR EACH STATEMENT "
        "EXECUTE FUNCTION serial_digest_job_code()",
        f"INSERT INTO serial_digest (bucket, n, h) {recompute_sql('tenant')}",
    ]


def core_ddl() -> list[str]:
    """Core's bucket index, triggers and first fill (PostgreSQL; core migration 0004)."""
    return [
        f"CREATE INDEX ix_serial_registry_tenant_bucket ON serial_registry (tenant_code, {bucket_sql('serial_code')})",
        "ANALYZE serial_registry",
        *_trigger_ddl(
            "serial_digest_track",
            _APPEND_CORE.format(rows=_core_rows("new_rows", "")),
            _APPEND_CORE.format(rows=_core_rows("old_rows", "-")),
            _APPEND_CORE.format(rows=f"{_core_rows('new_rows', '')} UNION ALL {_core_rows('old_rows', '-')}"),
            "DELETE FROM serial_digest;"),
        "INSERT INTO serial_digest (tenant_code, bucket, n, h) "
        f"SELECT c.tenant_code, {bucket_sql('c.serial_code')}, count(*), sum({row_hash_sql(CORE_CANON)}) "
        "FROM serial_registry c GROUP BY 1, 2",
    ]


DROP_TENANT = ["DROP TRIGGER IF EXISTS serial_digest_job_code ON hatthasilpa_job",
               "DROP FUNCTION IF EXISTS serial_digest_job_code()"]
DROP_COMMON = ["DROP TRIGGER IF EXISTS serial_digest_insert ON serial_registry",
               "DROP TRIGGER IF EXISTS serial_digest_update ON serial_registry",
               "DROP TRIGGER IF EXISTS serial_digest_delete ON serial_registry",
               "DROP TRIGGER IF EXISTS serial_digest_truncate ON serial_registry",
               "DROP FUNCTION IF EXISTS serial_digest_track()",
               "DROP FUNCTION IF EXISTS serial_digest_track_reset()"]


# --------------------------------------------------------------------------- reading and keeping
def recompute_sql(side: str, buckets: int = BUCKETS) -> str:
    """Per bucket, the count and checksum computed from the registry itself (core: ``:tenant_code``'s rows)."""
    if side == "tenant":
        return (f"SELECT {bucket_sql('r.serial_code', buckets)} AS b, count(*) AS n, sum({row_hash_sql(TENANT_CANON)}) AS h "
                f"FROM {tenant_from()} GROUP BY 1")
    return (f"SELECT {bucket_sql('c.serial_code', buckets)} AS b, count(*) AS n, sum({row_hash_sql(CORE_CANON)}) AS h "
            f"FROM serial_registry c WHERE c.tenant_code = :tenant_code GROUP BY 1")


def stored_sql(side: str) -> str:
    """Per bucket, the digest as kept on write (core: ``:tenant_code``'s rows); empty buckets left out."""
    where = "WHERE tenant_code = :tenant_code " if side == "core" else ""
    return (f"SELECT bucket AS b, sum(n) AS n, sum(h) AS h FROM serial_digest {where}"
            "GROUP BY bucket HAVING sum(n) <> 0 OR sum(h) <> 0")


def kept(conn: sa.Connection) -> bool:
    """Whether this database keeps a serial digest (PostgreSQL, migrated past the digest's revision)."""
    return conn.dialect.name == "postgresql" and \
        conn.execute(sa.text("SELECT to_regclass('serial_digest') IS NOT NULL")).scalar_one()


def compact(conn: sa.Connection, side: str, tenant_code: str | None = None) -> int:
    """Fold each bucket's delta rows into one row (one statement; concurrent writers and compactions
    are safe: a writer only appends, and a row another compaction took is skipped). Returns the
    rows removed."""
    where = "WHERE tenant_code = :tenant_code " if side == "core" else ""
    keys = "tenant_code, bucket" if side == "core" else "bucket"
    match = " AND ".join(f"d.{k} = busy.{k}" for k in keys.split(", "))
    sql = (f"WITH busy AS (SELECT {keys} FROM serial_digest {where}GROUP BY {keys} HAVING count(*) > 1), "
           f"gone AS (DELETE FROM serial_digest d USING busy WHERE {match} "
           f"RETURNING d.{keys.replace(', ', ', d.')}, d.n, d.h), "
           f"kept AS (INSERT INTO serial_digest ({keys}, n, h) SELECT {keys}, sum(n), sum(h) FROM gone "
           f"GROUP BY {keys} HAVING sum(n) <> 0 OR sum(h) <> 0 RETURNING 1) "
           "SELECT (SELECT count(*) FROM gone) - (SELECT count(*) FROM kept)")
    return conn.execute(sa.text(sql), {"tenant_code": tenant_code}).scalar_one()


def rebuild(conn: sa.Connection, side: str, tenant_code: str | None = None) -> int:
    """Recompute the digest from the registry (writers wait meanwhile); returns the buckets written.
    The caller commits."""
    conn.execute(sa.text("LOCK TABLE serial_registry IN SHARE MODE"))
    if side == "core":
        conn.execute(sa.text("DELETE FROM serial_digest WHERE tenant_code = :tenant_code"),
                     {"tenant_code": tenant_code})
        return conn.execute(sa.text(f"INSERT INTO serial_digest (tenant_code, bucket, n, h) "
                                    f"SELECT :tenant_code, b, n, h FROM ({recompute_sql('core')}) x"),
                            {"tenant_code": tenant_code}).rowcount
    conn.execute(sa.text("DELETE FROM serial_digest"))
    return conn.execute(sa.text(f"INSERT INTO serial_digest (bucket, n, h) {recompute_sql('tenant')}")).rowcount


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
