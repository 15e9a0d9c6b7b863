"""The parameters a check runs with: the tenant's kind and flag (one core row each),
``now`` and the threshold cutoffs."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from lifecycle.registry import FF_SERIAL_STD_HAT
from lifecycle.schema import feature_flag, tenant
from lifecycle.uow import utcnow

from .model import OUTBOX_GRACE, STALE_SESSION, Threshold

THRESHOLDS: dict[str, Threshold] = {t.name: t for t in (OUTBOX_GRACE, STALE_SESSION)}


def cutoffs(now: dt.datetime, overrides: dict[str, dt.timedelta] | None = None) -> dict[str, dt.datetime]:
    overrides = overrides or {}
    unknown = set(overrides) - set(THRESHOLDS)
    if unknown:
        raise ValueError(f"unknown thresholds: {sorted(unknown)}")
    return {t.param: now - overrides.get(name, t.default) for name, t in THRESHOLDS.items()}


def tenant_params(core: sa.Connection, tenant_code: str, now: dt.datetime | None = None,
                  overrides: dict[str, dt.timedelta] | None = None) -> dict:
    """Read the tenant row and its FF_SERIAL_STD_HAT flag from core; build the bound parameters.

    A tenant missing from core counts as a production tenant with the flag off, the
    strictest reading."""
    now = now or utcnow()
    row = core.execute(sa.select(tenant.c.is_test_tenant).where(tenant.c.tenant_code == tenant_code)).first()
    flag = core.execute(sa.select(feature_flag.c.enabled).where(
        feature_flag.c.tenant_code == tenant_code, feature_flag.c.flag_key == FF_SERIAL_STD_HAT)).scalar()
    return {"tenant_code": tenant_code, "now": now,
            "production_tenant": not (row is not None and bool(row.is_test_tenant)),
            "flag_std_on": bool(flag), **cutoffs(now, overrides)}
