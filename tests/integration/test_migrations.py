"""Alembic's migrations create exactly the schema declared in lifecycle.schema."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from lifecycle import migrate, registry
from lifecycle.db import get_engine


def _diff(url: str, store: str) -> list:
    with get_engine(url).connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(context, migrate.STORES[store])


@pytest.mark.parametrize("store", ["core", "tenant", "monitor"])
def test_migrations_match_declared_schema(stores, store):
    stores.add_tenant("atelier")
    url = {"core": stores.settings.core_url, "monitor": stores.settings.monitor_url,
           "tenant": stores.settings.tenant_url("atelier")}[store]
    if store == "monitor":
        registry.upgrade_all(stores.settings)
    assert migrate.current_revision(url) == migrate.head_revision(store)
    assert _diff(url, store) == []


def test_tenant_schema_has_work_queue_view_and_partial_unique_indexes(stores):
    stores.add_tenant("atelier")
    inspector = sa.inspect(stores.tenant_engine())
    assert "work_queue" in inspector.get_view_names()
    unique = {ix["name"] for table in ("job_graph_instance", "token_assignment", "token_work_session")
              for ix in inspector.get_indexes(table) if ix["unique"]}
    assert {"ux_job_graph_instance_one_active", "ux_token_assignment_one_active",
            "ux_token_work_session_one_open", "ux_token_work_session_one_running_per_operator"} <= unique


def test_db_upgrade_is_repeatable_and_migrates_every_tenant(stores):
    stores.add_tenant("atelier")
    stores.add_tenant("second")
    first = stores.ok("db", "upgrade")
    again = stores.ok("db", "upgrade")
    assert first == again and first["tenants"] == ["atelier", "second"]


def test_tenant_add_on_a_missing_postgres_database_registers_nothing(pg_stores):
    code, body = pg_stores.cli("tenant", "add", "ghost")
    assert code == 2 and body["error"]["code"] == "VALIDATION_ERROR"
    assert "CREATE DATABASE" in body["error"]["hint"]
    assert pg_stores.ok("tenant", "list")["tenants"] == []
