"""Serial checks (docs/risks.md §2.3, §3.3, §4D, §7.4): tenant and core registries, the outbox, the policy.

The four cross-database checks compare the tenant ``serial_registry`` with the core
``serial_registry`` by ``serial_code`` (``crossdb``: bucket checksums on PostgreSQL, bounded
batches on SQLite); each only
decides, for one serial, whether its tenant and core rows break its rule.

Core's ``job_ref`` is the code of the tenant's job and ``token_ref`` its ``token_id`` as
text (``core_refs``), the mapping the outbox relay writes.
"""

from __future__ import annotations

from lifecycle import outbox
from lifecycle.states import LIVE_TOKEN_STATUSES, TokenStatus, sql_list
from lifecycle.uow import as_utc

from .model import OUTBOX_GRACE, Check, Comparison, Family, Scope, Severity, Side


def core_refs(tenant_row: dict) -> dict:
    """The core registry's view of a tenant registry row."""
    return {"sku": tenant_row["sku"], "job_ref": str(tenant_row["job_code"]),
            "token_ref": str(tenant_row["token_id"]), "status": tenant_row["status"], "mode": tenant_row["mode"]}


def _older_than_grace(params: dict, row: dict, column: str) -> bool:
    return as_utc(row[column]) < params["outbox_grace_cutoff"]


def _missing_in_core(params: dict, tenant_rows: list[dict], core_rows: list[dict]) -> str | None:
    if core_rows or not any(_older_than_grace(params, r, "created_at") for r in tenant_rows):
        return None
    return "tenant serial absent from core after the outbox grace period"


def _missing_in_tenant(params: dict, tenant_rows: list[dict], core_rows: list[dict]) -> str | None:
    return None if tenant_rows else "core serial of this tenant absent from the tenant registry"


def _field_mismatch(params: dict, tenant_rows: list[dict], core_rows: list[dict]) -> str | None:
    # duplicates on either side are duplicate_serial's findings, another tenant's core row too
    if len(tenant_rows) != 1 or len(core_rows) != 1 or core_rows[0]["tenant_code"] != params["tenant_code"]:
        return None
    tenant, core = tenant_rows[0], core_rows[0]
    if not _older_than_grace(params, tenant, "updated_at"):
        return None
    expected = core_refs(tenant)
    differing = [name for name in ("sku", "job_ref", "token_ref", "status") if expected[name] != core[name]]
    return f"tenant and core differ in {', '.join(differing)}" if differing else None


def _registered_for_another_tenant(params: dict, tenant_rows: list[dict], core_rows: list[dict]) -> str | None:
    tenants = sorted({c["tenant_code"] for c in core_rows})
    if not tenant_rows or not tenants or params["tenant_code"] in tenants:
        return None  # several core rows including ours: core_sql reports it
    return f"in this tenant's registry but in core for tenant {', '.join(tenants)}"


SERIAL_MISSING_IN_CORE = Check(
    id="serial_missing_in_core",
    family=Family.SERIALS,
    severity=Severity.ERROR,
    description="tenant serial absent from core after the outbox grace period",
    keys=("serial_code",),
    scope=Scope.TENANT_CORE,
    reads_history=True,
    history_note="sums both registries in buckets, reads the differing ones (reconciliation schedule)",
    thresholds=(OUTBOX_GRACE,),
    compare=Comparison(drive=Side.TENANT, classify=_missing_in_core),
)

SERIAL_MISSING_IN_TENANT = Check(
    id="serial_missing_in_tenant",
    family=Family.SERIALS,
    severity=Severity.CRITICAL,
    description="core serial of the tenant absent from the tenant registry",
    keys=("serial_code",),
    scope=Scope.TENANT_CORE,
    reads_history=True,
    history_note="sums both registries in buckets, reads the differing ones (reconciliation schedule)",
    compare=Comparison(drive=Side.CORE, classify=_missing_in_tenant),
)

SERIAL_FIELD_MISMATCH = Check(
    id="serial_field_mismatch",
    family=Family.SERIALS,
    severity=Severity.ERROR,
    description="same serial, different sku, token, job or status between tenant and core, "
                "once the tenant's change is older than the outbox grace period",
    keys=("serial_code",),
    scope=Scope.TENANT_CORE,
    reads_history=True,
    history_note="sums both registries in buckets, reads the differing ones (reconciliation schedule)",
    thresholds=(OUTBOX_GRACE,),
    compare=Comparison(drive=Side.TENANT, classify=_field_mismatch),
)

SERIAL_OUTBOX_LAG = Check(
    id="serial_outbox_lag",
    family=Family.SERIALS,
    severity=Severity.WARNING,
    description="unpublished outbox rows (pending or parked) older than the grace period (default 5 min)",
    keys=("outbox_id",),
    thresholds=(OUTBOX_GRACE,),
    sql=f"""
SELECT serial_outbox.id AS outbox_id, serial_outbox.serial_code AS serial_code,
       serial_outbox.created_at AS created_at, serial_outbox.attempts AS attempts,
       CASE WHEN {outbox.sql_text(outbox.PARKED)}
            THEN 'parked after ' || CAST(serial_outbox.attempts AS VARCHAR(12)) || ' attempts'
            ELSE 'unpublished for longer than the grace period' END AS reason
FROM serial_outbox
WHERE {outbox.sql_text(outbox.UNPUBLISHED)} AND serial_outbox.created_at < :outbox_grace_cutoff
  AND (:outbox_id IS NULL OR serial_outbox.id = :outbox_id)
""",
)

TEMP_SERIAL_ON_PRODUCTION_TENANT = Check(
    id="temp_serial_on_production_tenant",
    family=Family.SERIALS,
    severity=Severity.CRITICAL,
    description="TEMP serial, or FF_SERIAL_STD_HAT off, on a tenant that is not a test tenant",
    keys=("subject",),
    reads_history=True,
    history_note="reads the TEMP serials only (ix_serial_registry_temp)",
    sql="""
SELECT CAST('FF_SERIAL_STD_HAT' AS VARCHAR(96)) AS subject, 'flag' AS kind,
       'FF_SERIAL_STD_HAT is off on a production tenant' AS reason
WHERE :production_tenant AND NOT :flag_std_on
  AND (:subject IS NULL OR CAST(:subject AS VARCHAR(96)) = 'FF_SERIAL_STD_HAT')
UNION ALL
SELECT r.serial_code AS subject, 'serial' AS kind, 'TEMP serial on a production tenant' AS reason
FROM serial_registry r
WHERE :production_tenant AND r.mode = 'TEMP' AND (:subject IS NULL OR r.serial_code = :subject)
""",
)

DUPLICATE_SERIAL = Check(
    id="duplicate_serial",
    family=Family.SERIALS,
    severity=Severity.CRITICAL,
    description="one serial on two tokens, or in core for two tenants",
    keys=("serial_code",),
    scope=Scope.TENANT_CORE,
    reads_history=True,
    history_note="groups flow_token by serial from its index, in order (and the tenant registry too, "
                 "where it lacks its serial_code primary key); compares with core in the reconciliation's "
                 "pass; core's own grouping runs only where core lacks its serial_code primary key",
    sql="""
SELECT x.serial_code AS serial_code,
       max(CASE WHEN x.source = 'registry' THEN x.n ELSE 0 END) AS registry_rows,
       max(CASE WHEN x.source = 'token' THEN x.n ELSE 0 END) AS tokens,
       'one serial on more than one token' AS reason
FROM (
    SELECT r.serial_code AS serial_code, count(*) AS n, 'registry' AS source
    FROM serial_registry r WHERE (:serial_code IS NULL OR r.serial_code = :serial_code)
    GROUP BY r.serial_code HAVING count(*) > 1
    UNION ALL
    SELECT t.serial_code, count(*), 'token'
    FROM flow_token t WHERE t.serial_code IS NOT NULL AND (:serial_code IS NULL OR t.serial_code = :serial_code)
    GROUP BY t.serial_code HAVING count(*) > 1
) x
GROUP BY x.serial_code
""",
    # the tenant registry's primary key: no serial is registered twice, only tokens can share one
    sql_while_unique=("serial_registry", "serial_code", """
SELECT t.serial_code AS serial_code, 0 AS registry_rows, count(*) AS tokens,
       'one serial on more than one token' AS reason
FROM flow_token t WHERE t.serial_code IS NOT NULL AND (:serial_code IS NULL OR t.serial_code = :serial_code)
GROUP BY t.serial_code HAVING count(*) > 1
"""),
    core_sql="""
SELECT c.serial_code AS serial_code, count(DISTINCT c.tenant_code) AS core_tenants,
       'in core for more than one tenant' AS reason
FROM serial_registry c
WHERE (:serial_code IS NULL OR c.serial_code = :serial_code)
GROUP BY c.serial_code
HAVING count(DISTINCT c.tenant_code) > 1 AND sum(CASE WHEN c.tenant_code = :tenant_code THEN 1 ELSE 0 END) > 0
""",
    core_sql_unless_unique=("serial_registry", "serial_code"),  # core's primary key: one tenant per serial
    compare=Comparison(drive=Side.TENANT, classify=_registered_for_another_tenant),
)

TOKEN_WITHOUT_SERIAL = Check(
    id="token_without_serial",
    family=Family.SERIALS,
    severity=Severity.ERROR,
    description="piece-mode token of a tenant with the flag on that has no serial "
                "(live or completed tokens of active instances)",
    keys=("token_id",),
    sql=f"""
SELECT t.id AS token_id, t.job_id AS job_id, t.instance_id AS instance_id, t.status AS token_status,
       CASE WHEN t.serial_code IS NULL THEN 'piece-mode token without a serial'
            ELSE 'serial ' || t.serial_code || ' is not in the registry' END AS reason
FROM job_graph_instance i
JOIN hatthasilpa_job j ON j.id = i.job_id
JOIN flow_token t ON t.instance_id = i.id
WHERE :flag_std_on AND i.status = 'active' AND j.production_mode = 'piece'
  AND t.status IN {sql_list(LIVE_TOKEN_STATUSES + (TokenStatus.COMPLETED,))}
  AND (t.serial_code IS NULL OR NOT EXISTS (SELECT 1 FROM serial_registry r WHERE r.serial_code = t.serial_code))
  AND (:token_id IS NULL OR t.id = :token_id)
""",
)

CHECKS = (SERIAL_MISSING_IN_CORE, SERIAL_MISSING_IN_TENANT, SERIAL_FIELD_MISMATCH, SERIAL_OUTBOX_LAG,
          TEMP_SERIAL_ON_PRODUCTION_TENANT, DUPLICATE_SERIAL, TOKEN_WITHOUT_SERIAL)
