"""Shared fixtures: real stores on PostgreSQL and SQLite.

``stores`` is parametrized over both backends; every test gets its own databases
(PostgreSQL databases cloned from migrated templates, SQLite files in tmp_path) and
they are dropped afterwards.
"""

from __future__ import annotations

import json
import uuid

import psycopg
import pytest

from hatthasilpa import cli
from hatthasilpa.stores import STORES
from lifecycle import migrate, registry
from lifecycle.db import Settings, dispose_engine, dispose_engines, get_engine
from lifecycle.uow import UnitOfWork
from tests import pg
from tests.contents import dump

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
def pg_admin_url():
    url, cluster, reason = pg.find_server()
    if url is None:
        yield None, reason
    else:
        yield url, ""
    dispose_engines()
    if cluster is not None:
        cluster.stop()


def _with_db(admin_url: str, name: str) -> str:
    base = admin_url.rsplit("/", 1)[0]
    return f"{base.replace('postgresql://', 'postgresql+psycopg://', 1)}/{name}"


def _admin(admin_url: str):
    return psycopg.connect(admin_url, autocommit=True)


@pytest.fixture(scope="session")
def pg_templates(pg_admin_url):
    """One migrated template database per store, cloned by each test."""
    admin_url, reason = pg_admin_url
    if admin_url is None:
        pytest.fail(f"{pg.HOW_TO}\n({reason})", pytrace=False)
    suffix = uuid.uuid4().hex[:8]
    names = {store: f"hs_tpl_{store}_{suffix}" for store in STORES}
    with _admin(admin_url) as conn:
        for name in names.values():
            conn.execute(f'CREATE DATABASE "{name}"')
    for store, name in names.items():
        url = _with_db(admin_url, name)
        migrate.upgrade(url, STORES[store])
        dispose_engine(url)
    yield admin_url, names
    with _admin(admin_url) as conn:
        for name in names.values():
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Stores:
    """The three stores of one test, and helpers to act on them."""

    def __init__(self, backend: str, settings: Settings, make_db, monkeypatch) -> None:
        self.backend = backend
        self.settings = settings
        self._make_db = make_db
        self._monkeypatch = monkeypatch
        monkeypatch.setenv("HATTHASILPA_CORE_URL", settings.core_url)
        monkeypatch.setenv("HATTHASILPA_TENANT_URL_TEMPLATE", settings.tenant_url_template)
        monkeypatch.setenv("HATTHASILPA_MONITOR_URL", settings.monitor_url)

    @property
    def is_postgres(self) -> bool:
        return self.backend == "postgresql"

    def add_tenant(self, code: str = "atelier", test: bool = False) -> dict:
        self._make_db("tenant", self.settings.tenant_url(code))
        return registry.add_tenant(self.settings, code, is_test=test)

    def tenant_engine(self, code: str = "atelier"):
        return get_engine(self.settings.tenant_url(code))

    def uow(self, code: str = "atelier", clock=None) -> UnitOfWork:
        """A tenant unit of work carrying the tenant's kind and flags as core holds them now."""
        return registry.tenant_uow(self.settings, code, **({"clock": clock} if clock else {}))

    def cli(self, *args: str) -> tuple[int, dict]:
        code, body, _ = cli.run([str(a) for a in args])
        json.dumps(body)  # every envelope must serialize
        return code, body

    def ok(self, *args: str) -> dict:
        code, body = self.cli(*args)
        assert code == 0 and body["ok"], body
        return body["data"]

    def scalar(self, sql: str, code: str = "atelier", **params):
        import sqlalchemy as sa

        with self.tenant_engine(code).connect() as conn:
            return conn.execute(sa.text(sql), params).scalar()

    def rows(self, sql: str, code: str = "atelier", **params) -> list:
        import sqlalchemy as sa

        with self.tenant_engine(code).connect() as conn:
            return conn.execute(sa.text(sql), params).all()

    def contents(self, code: str = "atelier") -> dict:
        """Every row of every tenant table: equal before and after means nothing was written."""
        return dump(self.tenant_engine(code))


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


@pytest.fixture
def stores(backend, tmp_path, monkeypatch, request):
    yield from _stores(backend, tmp_path, monkeypatch, request)


@pytest.fixture
def pg_stores(tmp_path, monkeypatch, request):
    """PostgreSQL only, for races that need row locks."""
    yield from _stores("postgresql", tmp_path, monkeypatch, request)


@pytest.fixture
def sqlite_stores(tmp_path, monkeypatch, request):
    yield from _stores("sqlite", tmp_path, monkeypatch, request)


def _stores(backend, tmp_path, monkeypatch, request):
    monkeypatch.setenv("HATTHASILPA_GX_DOCS_DIR", str(tmp_path / "gx"))  # GX Data Docs stay in the test's folder
    if backend == "sqlite":
        settings = Settings(core_url=f"sqlite:///{tmp_path}/core.db",
                            tenant_url_template=f"sqlite:///{tmp_path}/tenant_{{tenant}}.db",
                            monitor_url=f"sqlite:///{tmp_path}/monitor.db")

        def make_db(store, url):
            migrate.upgrade(url, STORES[store])

        make_db("core", settings.core_url)
        make_db("monitor", settings.monitor_url)
        yield Stores(backend, settings, make_db, monkeypatch)
        for url in (settings.core_url, settings.monitor_url):
            dispose_engine(url)
        for path in tmp_path.glob("tenant_*.db"):
            dispose_engine(f"sqlite:///{path}")
        return

    admin_url, templates = request.getfixturevalue("pg_templates")
    prefix = f"hs_{uuid.uuid4().hex[:10]}"
    created: list[str] = []

    def make_db(store, url):
        name = url.rsplit("/", 1)[1]
        with _admin(admin_url) as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{templates[store]}"')
        created.append(name)

    settings = Settings(core_url=_with_db(admin_url, f"{prefix}_core"),
                        tenant_url_template=_with_db(admin_url, f"{prefix}_t_{{tenant}}"),
                        monitor_url=_with_db(admin_url, f"{prefix}_monitor"))
    make_db("core", settings.core_url)
    make_db("monitor", settings.monitor_url)
    yield Stores(backend, settings, make_db, monkeypatch)
    base = admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    for name in created:
        dispose_engine(f"{base}/{name}")
    with _admin(admin_url) as conn:
        for name in created:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


LINEAR_GRAPH = {
    "nodes": [{"code": "cut", "kind": "start"}, {"code": "stitch", "kind": "work"},
              {"code": "edge", "kind": "work"}, {"code": "qc", "kind": "end"}],
    "edges": [["cut", "stitch"], ["stitch", "edge"], ["edge", "qc"]],
}


def _with_factory(stores, tmp_path):
    stores.add_tenant("atelier")
    path = tmp_path / "bag.json"
    path.write_text(json.dumps(LINEAR_GRAPH))
    stores.ok("graph", "create", "--tenant", "atelier", "--code", "bag", "--file", path)
    return stores


@pytest.fixture
def factory(stores, tmp_path):
    """A tenant 'atelier' with the linear graph 'bag'."""
    return _with_factory(stores, tmp_path)


@pytest.fixture
def pg_factory(pg_stores, tmp_path):
    return _with_factory(pg_stores, tmp_path)


@pytest.fixture
def sqlite_factory(sqlite_stores, tmp_path):
    return _with_factory(sqlite_stores, tmp_path)
