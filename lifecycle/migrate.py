"""Alembic migrations, one history per store.

A :class:`Store` names a kind of database, the folder of its Alembic scripts and the
metadata its migrations build. The lifecycle owns two: every tenant DB (``TENANT``) and
the core DB (``CORE``); the monitor store's history lives with the monitor
(``checks.schema.MONITOR``). Each database keeps its own ``alembic_version`` table.
``upgrade(url, store)`` migrates one database to head; ``current_revision`` and
``head_revision`` tell whether it is current.
"""

from __future__ import annotations

import ast
import threading
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from . import schema
from .db import get_engine


@dataclass(frozen=True)
class Store:
    name: str
    scripts: Path  # the Alembic script directory (env.py, versions/)
    metadata: sa.MetaData  # what the head revision creates; the migration tests compare the two


MIGRATIONS = Path(__file__).parent / "migrations"
TENANT = Store("tenant", MIGRATIONS / "tenant", schema.tenant_metadata)
CORE = Store("core", MIGRATIONS / "core", schema.core_metadata)


# Alembic is imported where it is used: a command that only reads pays nothing for it.

def alembic_config(store: Store, connection: sa.Connection | None = None):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(store.scripts))
    cfg.attributes["connection"] = connection
    return cfg


def upgrade(url: str, store: Store, revision: str = "head") -> None:
    from alembic import command

    with get_engine(url).begin() as conn:
        command.upgrade(alembic_config(store, conn), revision)


# CPython 3.11's ast.parse is not thread-safe (two threads parsing at once can raise
# "SystemError: AST constructor recursion depth mismatch"), and every thread that records a
# run asks for the head: one reading at a time, and once per process (the scripts do not change).
_PARSING = threading.Lock()
_HEADS: dict[Path, str] = {}


def head_revision(store: Store) -> str:
    """The store's head revision, read once per process from its scripts' ``revision``/``down_revision``
    lines (without importing Alembic, which a read-only command would otherwise pay for on every
    start); Alembic's own answer where the history is not one straight line."""
    with _PARSING:
        if store.scripts not in _HEADS:
            _HEADS[store.scripts] = _read_head(store)
        return _HEADS[store.scripts]


def _read_head(store: Store) -> str:
    revisions, parents = set(), set()
    for script in (store.scripts / "versions").glob("*.py"):
        for node in ast.parse(script.read_text()).body:
            target = node.target if isinstance(node, ast.AnnAssign) else (
                node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else None)
            if isinstance(target, ast.Name) and target.id in ("revision", "down_revision") and node.value:
                value = ast.literal_eval(node.value)
                if target.id == "revision":
                    revisions.add(value)
                elif value is not None:
                    parents.update([value] if isinstance(value, str) else value)
    heads = revisions - parents
    if len(heads) == 1:
        return heads.pop()
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config(store)).get_current_head()


def current_revision(url: str) -> str | None:
    """The revision the database is at (None before its first migration), read from ``alembic_version``."""
    with get_engine(url).connect() as conn:
        if not sa.inspect(conn).has_table("alembic_version"):
            return None
        rows = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all()
        if len(rows) <= 1:
            return rows[0] if rows else None
        from alembic.runtime.migration import MigrationContext

        return MigrationContext.configure(conn).get_current_revision()  # raises: several heads


def is_current(url: str, store: Store) -> bool:
    return current_revision(url) == head_revision(store)


def run_env(store: Store) -> None:
    """Body of each store's ``env.py``: run the migrations on the given connection."""
    from alembic import context

    connection = context.config.attributes.get("connection")
    if connection is None:  # the `alembic` command line, against a URL
        with get_engine(context.config.get_main_option("sqlalchemy.url")).begin() as conn:
            _configure_and_run(context, conn, store.metadata)
    else:
        _configure_and_run(context, connection, store.metadata)


def _configure_and_run(context, connection, metadata) -> None:
    context.configure(connection=connection, target_metadata=metadata,
                      render_as_batch=connection.dialect.name == "sqlite", compare_type=True)
    with context.begin_transaction():
        context.run_migrations()
