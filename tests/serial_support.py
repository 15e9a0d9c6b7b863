"""Helpers for serial tests: compare the core registry with a tenant's registry."""

from __future__ import annotations

import sqlalchemy as sa

from lifecycle.db import get_engine


def core(stores, sql: str, **params) -> list:
    with get_engine(stores.settings.core_url).connect() as conn:
        return conn.execute(sa.text(sql), params).all()


def tenant_registry(stores, tenant: str = "atelier") -> dict:
    rows = stores.rows("SELECT s.serial_code, s.tenant_code, s.sku, j.job_code, s.token_id, s.mode, s.status, "
                       "s.version FROM serial_registry s JOIN hatthasilpa_job j ON j.id = s.job_id", tenant)
    return {r[0]: (r[1], r[2], r[3], str(r[4]), r[5], r[6], r[7]) for r in rows}


def core_registry(stores, tenant: str = "atelier") -> dict:
    rows = core(stores, "SELECT serial_code, tenant_code, sku, job_ref, token_ref, mode, status, version "
                        "FROM serial_registry WHERE tenant_code = :t", t=tenant)
    return {r[0]: tuple(r[1:]) for r in rows}


def receipts(stores) -> dict:
    """event id → deliveries, from core."""
    return dict(core(stores, "SELECT event_id, deliveries FROM serial_event_receipt"))


def outbox_state(stores, tenant: str = "atelier") -> dict:
    rows = stores.rows("SELECT count(*), count(published_at), count(parked_at) FROM serial_outbox", tenant)[0]
    return {"rows": rows[0], "published": rows[1], "parked": rows[2]}


def assert_core_equals_tenant(stores, tenant: str = "atelier") -> None:
    expected = tenant_registry(stores, tenant)
    assert expected, "the tenant has no serials"
    assert core_registry(stores, tenant) == expected
    event_ids = {r[0] for r in stores.rows("SELECT event_id FROM serial_outbox", tenant)}
    assert set(receipts(stores)) >= event_ids  # every event reached core
    assert outbox_state(stores, tenant)["published"] == len(event_ids)
