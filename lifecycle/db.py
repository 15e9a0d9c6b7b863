"""Store configuration and SQLAlchemy engines.

Three URLs name the stores (``docs/configuration.md``); the application reads them from
its settings (``hatthasilpa.settings``), and ``Settings.embedded`` gives the SQLite files
under ``./var/`` that need no server. Engines are cached per URL. SQLite engines take their write lock at
``BEGIN IMMEDIATE`` so that two writers serialize at the start of a transaction
instead of failing half-way; PostgreSQL engines use psycopg 3.
"""

from __future__ import annotations

import functools
import re
import threading
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from .errors import ValidationError

TENANT_CODE_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,31}")  # always fullmatch: `$` would let a final newline in


# The settings that name the stores, and the folder of the embedded SQLite defaults.
CORE_URL = "HATTHASILPA_CORE_URL"
TENANT_URL_TEMPLATE = "HATTHASILPA_TENANT_URL_TEMPLATE"
MONITOR_URL = "HATTHASILPA_MONITOR_URL"
VAR_DIR = "HATTHASILPA_VAR_DIR"
ACTOR = "HATTHASILPA_ACTOR"  # who acts, where no name is given


@dataclass(frozen=True)
class Settings:
    """The three store URLs; ``{tenant}`` in the template is the tenant code."""

    core_url: str
    tenant_url_template: str
    monitor_url: str

    @classmethod
    def embedded(cls, var_dir: str | Path = "var") -> "Settings":
        """The embedded default: SQLite files under ``var_dir``."""
        var = Path(var_dir)
        return cls(core_url=f"sqlite:///{var / 'core.db'}",
                   tenant_url_template=f"sqlite:///{var / 'tenant_{tenant}.db'}",
                   monitor_url=f"sqlite:///{var / 'monitor.db'}")

    def tenant_url(self, tenant_code: str) -> str:
        check_tenant_code(tenant_code)
        if "{tenant}" not in self.tenant_url_template:
            raise ValidationError(
                "HATTHASILPA_TENANT_URL_TEMPLATE has no {tenant} placeholder",
                hint="e.g. postgresql+psycopg://user@host/hatthasilpa_{tenant}")
        return self.tenant_url_template.replace("{tenant}", tenant_code.lower())


def check_tenant_code(code: str) -> str:
    if not isinstance(code, str) or not TENANT_CODE_RE.fullmatch(code):
        raise ValidationError(
            f"invalid tenant code {code!r}",
            hint="a tenant code starts with a letter and has at most 32 letters, digits or underscores")
    return code


_engines: dict[str, sa.Engine] = {}
_engines_lock = threading.Lock()


@functools.lru_cache(maxsize=1024)
def normalize_url(url: str) -> str:
    """Use psycopg 3 for a bare ``postgresql://`` URL (remembered: every unit of work asks)."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def display_url(url: str) -> str:
    """A store URL fit to print or log: the password, if any, shown as ``***``."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<unparseable URL>"


def _sqlite_engine(url: sa.URL) -> sa.Engine:
    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        # Let SQLAlchemy, not pysqlite, decide when a transaction begins.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA busy_timeout = 30000")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn):
        mode = conn.get_execution_options().get("sqlite_begin", "IMMEDIATE")
        conn.exec_driver_sql(f"BEGIN {mode}" if mode in ("IMMEDIATE", "DEFERRED", "EXCLUSIVE") else "BEGIN")

    return engine


def get_engine(url: str) -> sa.Engine:
    url = normalize_url(url)
    with _engines_lock:
        engine = _engines.get(url)
        if engine is None:
            parsed = make_url(url)
            if parsed.get_backend_name() == "sqlite":
                engine = _sqlite_engine(parsed)
            else:
                engine = sa.create_engine(parsed, pool_pre_ping=True, pool_size=10, max_overflow=40,
                                          connect_args={"options": "-c timezone=UTC"})
            _engines[url] = engine
        return engine


def dispose_engines() -> None:
    with _engines_lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


def dispose_engine(url: str) -> None:
    with _engines_lock:
        engine = _engines.pop(normalize_url(url), None)
    if engine is not None:
        engine.dispose()


def is_postgres(conn_or_engine) -> bool:
    return conn_or_engine.dialect.name == "postgresql"


def dialect_insert(conn: sa.Connection, table: sa.Table):
    """``INSERT`` with ``on_conflict_do_nothing/do_update`` for the connection's dialect."""
    if is_postgres(conn):
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table)
