"""Schedules: fast checks every 15 minutes, reconciliation hourly; one run per tenant."""

from dagster import DefaultScheduleStatus, RunRequest, ScheduleEvaluationContext, schedule

from .jobs import integrity_job, reconciliation_job
from .partitions import TENANT_PARTITIONS_NAME, TENANT_TAG


def tenant_run_requests(context: ScheduleEvaluationContext):
    for tenant in context.instance.get_dynamic_partitions(TENANT_PARTITIONS_NAME):
        yield RunRequest(partition_key=tenant, tags={TENANT_TAG: tenant})


@schedule(job=integrity_job, cron_schedule="*/15 * * * *", execution_timezone="UTC",
          default_status=DefaultScheduleStatus.RUNNING)
def integrity_schedule(context: ScheduleEvaluationContext):
    yield from tenant_run_requests(context)


@schedule(job=reconciliation_job, cron_schedule="7 * * * *", execution_timezone="UTC",
          default_status=DefaultScheduleStatus.RUNNING)
def reconciliation_schedule(context: ScheduleEvaluationContext):
    yield from tenant_run_requests(context)


SCHEDULES = [integrity_schedule, reconciliation_schedule]
