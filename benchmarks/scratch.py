"""Scratch stores for a benchmark: core, monitor and one tenant's databases on a PostgreSQL server,
migrated and registered, and dropped afterwards (the soak and the throughput benchmark)."""

from __future__ import annotations


def db_url(admin_url: str, name: str) -> str:
    return f"{admin_url.rsplit('/', 1)[0].replace('postgresql://', 'postgresql+psycopg://', 1)}/{name}"


def create_stores(admin_url: str, prefix: str, tenant: str):
    """``{prefix}_core``, ``{prefix}_monitor`` and ``{prefix}_t_{tenant}``, migrated, ``tenant`` registered."""
    import psycopg

    from checks.schema import MONITOR
    from lifecycle import migrate, registry
    from lifecycle.db import Settings

    with psycopg.connect(admin_url, autocommit=True) as conn:
        for store in ("core", "monitor", f"t_{tenant}"):
            conn.execute(f'CREATE DATABASE "{prefix}_{store}"')
    settings = Settings(core_url=db_url(admin_url, f"{prefix}_core"),
                        tenant_url_template=db_url(admin_url, f"{prefix}_t_{{tenant}}"),
                        monitor_url=db_url(admin_url, f"{prefix}_monitor"))
    migrate.upgrade(settings.monitor_url, MONITOR)
    registry.add_tenant(settings, tenant)
    return settings


def drop_stores(admin_url: str, prefix: str, tenant: str, extra: tuple[str, ...] = ()) -> None:
    """Drop the stores of ``create_stores`` (and ``{prefix}_{name}`` for each name of ``extra``)."""
    import psycopg

    from lifecycle.db import dispose_engines

    dispose_engines()
    with psycopg.connect(admin_url, autocommit=True) as conn:
        for store in ("core", "monitor", f"t_{tenant}", *extra):
            conn.execute(f'DROP DATABASE IF EXISTS "{prefix}_{store}" WITH (FORCE)')
