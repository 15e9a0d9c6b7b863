"""Alembic's migrations create exactly the schema declared in lifecycle.schema, checks.schema and
reconcile.schema, and a monitor store made before its history moved to the monitor upgrades in place."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

import reconcile.schema  # noqa: F401 - its tables join the monitor store's metadata
from checks.schema import MONITOR
from hatthasilpa.stores import STORES, upgrade_all
from lifecycle import migrate
from lifecycle.db import get_engine


def _diff(url: str, store: str) -> list:
    with get_engine(url).connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(context, STORES[store].metadata)


@pytest.mark.parametrize("store", ["core", "tenant", "monitor"])
def test_migrations_match_declared_schema(stores, store):
    stores.add_tenant("atelier")
    url = {"core": stores.settings.core_url, "monitor": stores.settings.monitor_url,
           "tenant": stores.settings.tenant_url("atelier")}[store]
    if store == "monitor":
        upgrade_all(stores.settings)
    assert migrate.current_revision(url) == migrate.head_revision(STORES[store])
    assert _diff(url, store) == []


@pytest.mark.parametrize("store", ["core", "tenant", "monitor"])
def test_head_and_current_revision_agree_with_alembic(tmp_path, store):
    """The start-up check reads the scripts and ``alembic_version`` itself; Alembic says the same."""
    from alembic.script import ScriptDirectory

    assert migrate.head_revision(STORES[store]) == \
        ScriptDirectory.from_config(migrate.alembic_config(STORES[store])).get_current_head()
    url = f"sqlite:///{tmp_path}/{store}.db"
    assert migrate.current_revision(url) is None
    assert not migrate.is_current(url, STORES[store])
    migrate.upgrade(url, STORES[store], "0002")
    with get_engine(url).connect() as conn:
        assert migrate.current_revision(url) == MigrationContext.configure(conn).get_current_revision() == "0002"
    migrate.upgrade(url, STORES[store])
    assert migrate.is_current(url, STORES[store])


def test_a_monitor_store_at_the_old_head_upgrades_in_place(tmp_path):
    """Revision ids were kept when the monitor's history moved out of the lifecycle: a store
    whose alembic_version says 0003 (the last head of the old location) upgrades, data kept."""
    url = f"sqlite:///{tmp_path}/old-monitor.db"
    migrate.upgrade(url, MONITOR, "0003")
    now = dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)
    with get_engine(url).begin() as conn:
        conn.execute(sa.text("INSERT INTO check_run (id, started_at, trigger, created_at) VALUES (7, :t, 'cli', :t)"),
                     {"t": now})
        conn.execute(sa.text("INSERT INTO finding (run_id, tenant_code, check_id, severity, count, sample, "
                             "started_at, finished_at, duration_seconds, created_at) "
                             "VALUES (7, 'atelier', 'orphan_token', 'critical', 3, '[]', :t, :t, 0.1, :t)"), {"t": now})
    assert migrate.current_revision(url) == "0003"
    migrate.upgrade(url, MONITOR)
    assert migrate.is_current(url, MONITOR)
    with get_engine(url).connect() as conn:
        assert conn.execute(sa.text("SELECT tenant_code, check_id, count FROM finding")).all() == \
            [("atelier", "orphan_token", 3)]
    assert _diff(url, "monitor") == []


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
