"""Resources: the three stores of SPEC §2 and the optional Pushgateway.

Each URL field may be set in run config (the Launchpad) or left out; left out, it is
read from its SPEC §2 setting through ``EnvVar`` when a run starts — never at import
time — and falls back to the embedded SQLite default under ``./var/``, so
``dagster dev`` in the project root works with no other setup.
"""

from __future__ import annotations

from typing import Optional

from dagster import ConfigurableResource, EnvVar

from lifecycle.db import Settings


def _setting(explicit: Optional[str], name: str) -> Optional[str]:
    return explicit or EnvVar(name).get_value(None) or None


class CoreDatabase(ConfigurableResource):
    """The core DB: tenants, feature flags, core serial registry."""

    url: Optional[str] = None

    def resolved_url(self) -> Optional[str]:
        return _setting(self.url, "HATTHASILPA_CORE_URL")


class TenantDatabases(ConfigurableResource):
    """One DB per tenant; ``{tenant}`` in the template is the tenant code."""

    url_template: Optional[str] = None

    def resolved_template(self) -> Optional[str]:
        return _setting(self.url_template, "HATTHASILPA_TENANT_URL_TEMPLATE")


class MonitorStore(ConfigurableResource):
    """Check runs, findings and repairs."""

    url: Optional[str] = None

    def resolved_url(self) -> Optional[str]:
        return _setting(self.url, "HATTHASILPA_MONITOR_URL")


class Pushgateway(ConfigurableResource):
    """Where runs push their metrics; no URL (and no HATTHASILPA_PUSHGATEWAY_URL) means no push."""

    url: Optional[str] = None

    def resolved_url(self) -> Optional[str]:
        return _setting(self.url, "HATTHASILPA_PUSHGATEWAY_URL")


def store_settings(core: CoreDatabase, tenants: TenantDatabases, monitor: MonitorStore) -> Settings:
    """The three URLs, each from its resource, its setting, or the SQLite default."""
    defaults = Settings.from_env({})
    return Settings(core_url=core.resolved_url() or defaults.core_url,
                    tenant_url_template=tenants.resolved_template() or defaults.tenant_url_template,
                    monitor_url=monitor.resolved_url() or defaults.monitor_url)


def resources_for(settings: Settings) -> dict:
    """The resources pinned to explicit store URLs (local runs, tests); no Pushgateway."""
    return {"core_db": CoreDatabase(url=settings.core_url),
            "tenant_dbs": TenantDatabases(url_template=settings.tenant_url_template),
            "monitor_store": MonitorStore(url=settings.monitor_url),
            "pushgateway": Pushgateway()}


RESOURCES = {
    "core_db": CoreDatabase(),
    "tenant_dbs": TenantDatabases(),
    "monitor_store": MonitorStore(),
    "pushgateway": Pushgateway(),
}
