"""Helpers of the repair tests: the whole content of the stores, to prove a run wrote nothing; and a
fixture (import it into a test module) that verifies the audit chain after each test."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from checks import audit_log
from checks.schema import MONITOR
from lifecycle import migrate, registry
from lifecycle.db import get_engine


def dump(engine: sa.Engine) -> dict[str, list[tuple]]:
    """Every row of every table, ordered, as plain tuples."""
    out = {}
    with engine.connect() as conn:
        for name in sorted(sa.inspect(conn).get_table_names()):
            if name == "alembic_version":
                continue
            rows = conn.execute(sa.text(f"SELECT * FROM {name}")).all()  # names from the inspector only
            out[name] = sorted((tuple(str(v) for v in r) for r in rows))
    return out


def dump_stores(floor) -> dict:
    """Tenant and core contents (the databases a repair may write)."""
    return {"tenant": dump(floor.tenant), "core": dump(get_engine(floor.stores.settings.core_url))}


STORE_FIXTURES = ("stores", "pg_stores", "sqlite_stores")


@pytest.fixture(autouse=True)
def audit_chain_intact_afterwards(request):
    """After every repair test, the audit log of its monitor store still verifies."""
    used = [request.getfixturevalue(name) for name in STORE_FIXTURES if name in request.fixturenames]
    yield
    for stores in used:
        if migrate.is_current(stores.settings.monitor_url, MONITOR):
            audit_log.verify(stores.settings.monitor_url, record=False)


def dump_all(stores) -> dict:
    """Every store of a test — core, the monitor store and each registered tenant's DB — in full."""
    out = {"core": dump(get_engine(stores.settings.core_url)), "monitor": dump(get_engine(stores.settings.monitor_url))}
    for row in registry.list_tenants(stores.settings):
        out[f"tenant:{row['tenant_code']}"] = dump(stores.tenant_engine(row["tenant_code"]))
    return out
