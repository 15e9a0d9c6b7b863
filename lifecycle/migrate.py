"""Alembic migrations of the three stores.

Each store has its own script directory under ``lifecycle/migrations/<store>`` and its
own ``alembic_version`` table in its own database. ``upgrade(url, store)`` migrates one
database to head; ``current_revision`` and ``head_revision`` let the doctor and the
tests tell whether a database is current.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from . import schema
from .db import get_engine

MIGRATIONS = Path(__file__).parent / "migrations"
STORES = {
    "tenant": schema.tenant_metadata,
    "core": schema.core_metadata,
    "monitor": schema.monitor_metadata,
}


def alembic_config(store: str, connection: sa.Connection | None = None) -> Config:
    if store not in STORES:
        raise ValueError(f"unknown store {store!r}")
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS / store))
    cfg.attributes["connection"] = connection
    cfg.attributes["store"] = store
    return cfg


def upgrade(url: str, store: str, revision: str = "head") -> None:
    engine = get_engine(url)
    with engine.begin() as conn:
        command.upgrade(alembic_config(store, conn), revision)


def head_revision(store: str) -> str:
    return ScriptDirectory.from_config(alembic_config(store)).get_current_head()


def current_revision(url: str) -> str | None:
    with get_engine(url).connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def run_env(store: str) -> None:
    """Body of each store's ``env.py``: run migrations on the given connection."""
    from alembic import context

    cfg = context.config
    connection = cfg.attributes.get("connection")
    metadata = STORES[store]
    if connection is None:  # `alembic` CLI or autogenerate against a URL
        url = cfg.get_main_option("sqlalchemy.url")
        with get_engine(url).begin() as conn:
            _configure_and_run(context, conn, metadata)
    else:
        _configure_and_run(context, connection, metadata)


def _configure_and_run(context, connection, metadata) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
