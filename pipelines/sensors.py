"""``tenant_partitions_sensor`` keeps the tenant partitions equal to the core ``tenant`` table."""

from dagster import DefaultSensorStatus, SensorEvaluationContext, SensorResult, SkipReason, sensor

from lifecycle import registry

from .partitions import TENANT_PARTITIONS_NAME, tenant_partitions
from .resources import CoreDatabase, MonitorStore, TenantDatabases, store_settings


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


SENSORS = [tenant_partitions_sensor]
