"""Resources: the three stores, the optional Pushgateway, the optional alert webhook and the
volume baselines' settings.

Each URL field may be set in run config (the Launchpad) or left out; left out, it is
read from its setting (``docs/configuration.md``) through ``EnvVar`` when a run starts —
never at import time — and falls back to the embedded SQLite default under ``./var/``,
so ``dagster dev`` in the project root works with no other setup. The checks read the
tenant and core DBs through the read-only URLs (``HATTHASILPA_CHECKS_CORE_URL``,
``HATTHASILPA_CHECKS_TENANT_URL_TEMPLATE``) where they are set; repairs and the relay
write through the normal ones.
"""

from __future__ import annotations

from typing import Optional

from dagster import ConfigurableResource, EnvVar

from checks import baselines, store, volumes, webhook
from checks.metrics import PUSHGATEWAY_URL
from checks.runner import READ_ONLY_CORE_URL, READ_ONLY_TENANT_URL_TEMPLATE
from lifecycle.db import CORE_URL, MONITOR_URL, TENANT_URL_TEMPLATE, VAR_DIR, Settings


def _setting(explicit: Optional[str], name: str) -> Optional[str]:
    return explicit or EnvVar(name).get_value(None) or None


def _url(read_only: bool, explicit: Optional[str], setting: str, read_only_explicit: Optional[str],
         read_only_setting: str) -> Optional[str]:
    """The URL a run uses: the read-only one when asked for and set, else the normal one."""
    return (read_only and _setting(read_only_explicit, read_only_setting)) or _setting(explicit, setting)


class CoreDatabase(ConfigurableResource):
    """The core DB: tenants, feature flags, core serial registry."""

    url: Optional[str] = None
    read_only_url: Optional[str] = None

    def resolved_url(self, read_only: bool = False) -> Optional[str]:
        return _url(read_only, self.url, CORE_URL, self.read_only_url, READ_ONLY_CORE_URL)


class TenantDatabases(ConfigurableResource):
    """One DB per tenant; ``{tenant}`` in the template is the tenant code."""

    url_template: Optional[str] = None
    read_only_url_template: Optional[str] = None

    def resolved_template(self, read_only: bool = False) -> Optional[str]:
        return _url(read_only, self.url_template, TENANT_URL_TEMPLATE, self.read_only_url_template,
                    READ_ONLY_TENANT_URL_TEMPLATE)


class MonitorStore(ConfigurableResource):
    """Check runs, findings and repairs; ``retention_days`` of history are kept (default 90)."""

    url: Optional[str] = None
    retention_days: Optional[int] = None

    def resolved_url(self) -> Optional[str]:
        return _setting(self.url, MONITOR_URL)

    def resolved_retention_days(self) -> int:
        """Days of check history kept; VALIDATION_ERROR on a bad setting."""
        return store.retention_days(self.retention_days or EnvVar(store.RETENTION_DAYS).get_value(None))


class Pushgateway(ConfigurableResource):
    """Where runs push their metrics; no URL (and no HATTHASILPA_PUSHGATEWAY_URL) means no push."""

    url: Optional[str] = None

    def resolved_url(self) -> Optional[str]:
        return _setting(self.url, PUSHGATEWAY_URL)


class AlertWebhook(ConfigurableResource):
    """Where check failures are posted (``integrity_webhook_sensor``); no URL (and no
    HATTHASILPA_ALERT_WEBHOOK_URL) means no notification."""

    url: Optional[str] = None

    def resolved_url(self) -> Optional[str]:
        return _setting(self.url, webhook.WEBHOOK_URL)


class VolumeBaselineSettings(ConfigurableResource):
    """Weeks of history per baseline and the anomaly thresholds; unset fields are read from
    HATTHASILPA_VOLUME_WEEKS, HATTHASILPA_VOLUME_THRESHOLD and HATTHASILPA_VOLUME_THRESHOLDS."""

    weeks: Optional[int] = None
    threshold: Optional[float] = None
    thresholds: Optional[str] = None  # "kind=number,…"

    def options(self) -> baselines.Options:
        environ = {name: EnvVar(name).get_value(None) for name in baselines.SETTINGS}
        return baselines.options_from(environ, kinds=volumes.KIND_IDS, weeks=self.weeks, threshold=self.threshold,
                                      thresholds=self.thresholds)


def store_settings(core: CoreDatabase, tenants: TenantDatabases, monitor: MonitorStore,
                   read_only: bool = False) -> Settings:
    """The three URLs, each from its resource, its setting, or the SQLite default; ``read_only``
    takes the checks' read-only URLs of the tenant and core DBs where they are set."""
    defaults = Settings.embedded(EnvVar(VAR_DIR).get_value(None) or "var")
    return Settings(core_url=core.resolved_url(read_only) or defaults.core_url,
                    tenant_url_template=tenants.resolved_template(read_only) or defaults.tenant_url_template,
                    monitor_url=monitor.resolved_url() or defaults.monitor_url)


def resources_for(settings: Settings, checks: Settings | None = None) -> dict:
    """The resources pinned to explicit store URLs (local runs, tests); ``checks`` names the
    read-only URLs when they differ. No Pushgateway, no webhook."""
    return {"core_db": CoreDatabase(url=settings.core_url, read_only_url=checks.core_url if checks else None),
            "tenant_dbs": TenantDatabases(url_template=settings.tenant_url_template,
                                          read_only_url_template=checks.tenant_url_template if checks else None),
            "monitor_store": MonitorStore(url=settings.monitor_url),
            "pushgateway": Pushgateway(), "alert_webhook": AlertWebhook(),
            "volume_settings": VolumeBaselineSettings()}


RESOURCES = {
    "core_db": CoreDatabase(),
    "tenant_dbs": TenantDatabases(),
    "monitor_store": MonitorStore(),
    "pushgateway": Pushgateway(),
    "alert_webhook": AlertWebhook(),
    "volume_settings": VolumeBaselineSettings(),
}
