"""duplicate_serial's primary keys: core's makes a serial held for two tenants impossible, the tenant
registry's a serial registered twice; while a key holds the check skips the grouping it rules out,
and runs it (and finds the rows) once the key is gone."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from checks.catalogue import get
from checks.engine import enforced_unique, tenant_sql
from tests.floor import build_clean_floor, checks_target_run


def test_core_half_is_skipped_while_the_primary_key_holds(factory):
    floor = build_clean_floor(factory)
    with floor.core.connect() as conn:
        assert enforced_unique(conn, "serial_registry", "serial_code")
        assert not enforced_unique(conn, "serial_registry", "tenant_code")
    result = checks_target_run(floor, ["duplicate_serial"])["duplicate_serial"]
    assert result.error is None and result.count == 0


@pytest.mark.postgres
def test_a_core_without_its_primary_key_is_scanned_and_a_serial_of_two_tenants_found(pg_factory):
    floor = build_clean_floor(pg_factory)
    code = floor.serial_of(floor.ids["r1"])
    floor.core_sql("ALTER TABLE serial_registry DROP CONSTRAINT pk_serial_registry")  # a legacy core
    floor.core_sql("INSERT INTO serial_registry (serial_code, tenant_code, sku, job_ref, token_ref, mode, status, "
                   "version, created_at, updated_at) SELECT serial_code, 'studio', sku, job_ref, token_ref, mode, "
                   "status, version, created_at, updated_at FROM serial_registry WHERE serial_code = :c", c=code)
    with floor.core.connect() as conn:
        assert not enforced_unique(conn, "serial_registry", "serial_code")
    result = checks_target_run(floor, ["duplicate_serial"])["duplicate_serial"]
    assert result.error is None
    assert [(r["serial_code"], r["reason"]) for r in result.sample] == [(code, "in core for more than one tenant")]
    assert result.count == 1


def test_the_tenant_registry_is_not_grouped_while_its_primary_key_holds(factory):
    """Tokens sharing a serial are still found, as the same row the whole grouping gives."""
    floor = build_clean_floor(factory)
    shared = floor.serial_of(floor.ids["r1"])
    floor.tenant_sql("UPDATE flow_token SET serial_code = :c WHERE id = :t", c=shared, t=floor.ids["batch_tokens"][0])
    statements = []

    def seen(conn, cursor, statement, *args):
        statements.append(statement)

    sa.event.listen(floor.tenant, "before_cursor_execute", seen)
    try:
        result = checks_target_run(floor, ["duplicate_serial"])["duplicate_serial"]
    finally:
        sa.event.remove(floor.tenant, "before_cursor_execute", seen)
    assert result.error is None and result.count == 1
    assert [(r["serial_code"], r["registry_rows"], r["tokens"]) for r in result.sample] == [(shared, 0, 2)]
    grouping = [s for s in statements if "GROUP BY" in s]
    assert grouping and not any("serial_registry" in s for s in grouping)
    with floor.tenant.connect() as conn:
        assert tenant_sql(get("duplicate_serial"), conn) != get("duplicate_serial").sql
