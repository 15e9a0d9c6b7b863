"""Schedules: fast checks every 15 minutes, reconciliation hourly, GX nightly (one run per tenant),
and the outbox relay every minute."""

from dagster import DefaultScheduleStatus, RunRequest, ScheduleEvaluationContext, schedule

from .jobs import gx_job, integrity_job, outbox_relay_job, reconciliation_job
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


@schedule(job=gx_job, cron_schedule="30 2 * * *", execution_timezone="UTC",
          default_status=DefaultScheduleStatus.RUNNING)
def gx_schedule(context: ScheduleEvaluationContext):
    yield from tenant_run_requests(context)


@schedule(job=outbox_relay_job, cron_schedule="* * * * *", execution_timezone="UTC",
          default_status=DefaultScheduleStatus.RUNNING)
def outbox_relay_schedule(context: ScheduleEvaluationContext):
    return RunRequest()


SCHEDULES = [integrity_schedule, reconciliation_schedule, gx_schedule, outbox_relay_schedule]
