"""The whole content of the stores, to prove that an operation wrote nothing: every row of
every table, so an UPDATE is caught as surely as an INSERT or a DELETE."""

from __future__ import annotations

import sqlalchemy as sa

from lifecycle import registry
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


def dump_all(stores) -> dict:
    """Every store of a test — core, the monitor store and each registered tenant's DB — in full."""
    out = {"core": dump(get_engine(stores.settings.core_url)), "monitor": dump(get_engine(stores.settings.monitor_url))}
    for row in registry.list_tenants(stores.settings):
        out[f"tenant:{row['tenant_code']}"] = dump(stores.tenant_engine(row["tenant_code"]))
    return out
