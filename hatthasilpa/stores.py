"""The three stores as a whole: migrate them all (``hatthasilpa db upgrade``)."""

from __future__ import annotations

from checks.schema import MONITOR
from lifecycle import migrate, registry
from lifecycle.db import Settings

# Every store by name: the lifecycle's two and the monitor's.
STORES: dict[str, migrate.Store] = {"core": migrate.CORE, "monitor": MONITOR, "tenant": migrate.TENANT}


def upgrade_all(settings: Settings) -> dict:
    """Migrate core, the monitor store and every registered tenant's database to head."""
    registry.migrate_store(settings.core_url, migrate.CORE)
    registry.migrate_store(settings.monitor_url, MONITOR)
    migrated = []
    for row in registry.list_tenants(settings):
        registry.migrate_store(settings.tenant_url(row["tenant_code"]), migrate.TENANT)
        migrated.append(row["tenant_code"])
    return {"core": migrate.head_revision(migrate.CORE), "monitor": migrate.head_revision(MONITOR),
            "tenant": migrate.head_revision(migrate.TENANT), "tenants": migrated}
