"""``tenant_partitions_sensor`` keeps the tenant partitions equal to the core ``tenant`` table;
``integrity_webhook_sensor`` posts a critical check's failure and recovery to a webhook, once per change."""

import json

from dagster import DefaultSensorStatus, SensorEvaluationContext, SensorResult, SkipReason, sensor

from checks import webhook
from lifecycle import registry

from .partitions import TENANT_PARTITIONS_NAME, tenant_partitions
from .resources import AlertWebhook, CoreDatabase, MonitorStore, TenantDatabases, store_settings


@sensor(minimum_interval_seconds=60, default_status=DefaultSensorStatus.RUNNING,
        description="Add a partition for every tenant registered in core; remove partitions of removed tenants.")
def tenant_partitions_sensor(context: SensorEvaluationContext, core_db: CoreDatabase, tenant_dbs: TenantDatabases,
                             monitor_store: MonitorStore):
    settings = store_settings(core_db, tenant_dbs, monitor_store)
    registered = {t["tenant_code"] for t in registry.list_tenants(settings)}
    known = set(context.instance.get_dynamic_partitions(TENANT_PARTITIONS_NAME))
    added, removed = sorted(registered - known), sorted(known - registered)
    if not added and not removed:
        return SkipReason(f"{len(known)} tenant partitions match core")
    requests = []
    if added:
        requests.append(tenant_partitions.build_add_request(added))
    if removed:
        requests.append(tenant_partitions.build_delete_request(removed))
    context.log.info(f"tenant partitions: added {added}, removed {removed}")
    return SensorResult(dynamic_partitions_requests=requests)


@sensor(minimum_interval_seconds=60, default_status=DefaultSensorStatus.RUNNING,
        description="Post to HATTHASILPA_ALERT_WEBHOOK_URL when a tenant's critical check starts failing and when "
                    "it recovers: once per change (the cursor holds the failing pairs last posted).")
def integrity_webhook_sensor(context: SensorEvaluationContext, core_db: CoreDatabase, tenant_dbs: TenantDatabases,
                             monitor_store: MonitorStore, alert_webhook: AlertWebhook):
    url = alert_webhook.resolved_url()
    if not url:
        return SkipReason(f"no webhook: {webhook.WEBHOOK_URL} is not set")
    settings = store_settings(core_db, tenant_dbs, monitor_store)
    before = {tuple(pair) for pair in json.loads(context.cursor)} if context.cursor else set()
    now = webhook.failing_critical(settings.monitor_url)
    found = webhook.changes(before, now)
    if not found:
        return SkipReason(f"no change: {len(now)} critical checks failing")
    try:
        webhook.post(url, webhook.payload(found))
    except OSError as exc:  # the cursor stays: the same changes are posted at the next tick
        return SkipReason(f"posting {len(found)} changes to the webhook failed: {exc}")
    context.update_cursor(json.dumps(sorted(now)))
    context.log.info(f"posted {len(found)} changes to the webhook")
    return SkipReason(f"posted {len(found)} changes: " +
                      ", ".join(f"{c.tenant}/{c.check} {'firing' if c.firing else 'resolved'}" for c in found))


SENSORS = [tenant_partitions_sensor, integrity_webhook_sensor]
