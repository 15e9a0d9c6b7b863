"""Helpers of the repair tests: the whole content of the stores, to prove a run wrote nothing."""

from __future__ import annotations

import sqlalchemy as sa

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
