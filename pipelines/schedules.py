"""Schedules: one run per tenant at each check's cadence — live checks every 15 minutes, the history
checks, the reconciliation and the lifecycle volumes hourly, GX and a full reconciliation nightly — the
outbox relay every minute, the audit-log verification nightly and the monitor store's retention daily."""

from dagster import DefaultScheduleStatus, RunRequest, ScheduleEvaluationContext, schedule

from checks.model import Cadence

from .jobs import (audit_verify_job, gx_job, integrity_job, monitor_retention_job, outbox_relay_job,
                   reconciliation_job, volume_job)
from .partitions import FULL_RECONCILE_TAG, TENANT_PARTITIONS_NAME, TENANT_TAG

# The cron of each cadence; ``Cadence`` holds the interval in seconds the metrics and alerts use.
CRON = {Cadence.LIVE: "*/15 * * * *", Cadence.HOURLY: "7 * * * *", Cadence.NIGHTLY: "30 2 * * *"}


def tenant_run_requests(context: ScheduleEvaluationContext, tags: dict | None = None):
    for tenant in context.instance.get_dynamic_partitions(TENANT_PARTITIONS_NAME):
        yield RunRequest(partition_key=tenant, tags={TENANT_TAG: tenant, **(tags or {})})


def per_tenant(name: str, job, cadence: Cadence):
    """A schedule that runs ``job`` once per tenant partition at ``cadence``."""

    @schedule(name=name, job=job, cron_schedule=CRON[cadence], execution_timezone="UTC",
              default_status=DefaultScheduleStatus.RUNNING, description=f"one {job.name} run per tenant")
    def _per_tenant(context: ScheduleEvaluationContext):
        yield from tenant_run_requests(context)

    return _per_tenant


integrity_schedule = per_tenant("integrity_schedule", integrity_job, Cadence.LIVE)
reconciliation_schedule = per_tenant("reconciliation_schedule", reconciliation_job, Cadence.HOURLY)
gx_schedule = per_tenant("gx_schedule", gx_job, Cadence.NIGHTLY)
volume_schedule = per_tenant("volume_schedule", volume_job, Cadence.HOURLY)


@schedule(job=reconciliation_job, cron_schedule="50 1 * * *", execution_timezone="UTC",
          default_status=DefaultScheduleStatus.RUNNING,
          description="one full reconciliation_job run per tenant: serial summaries from the registries themselves, "
                      "each digest held against them")
def full_reconciliation_schedule(context: ScheduleEvaluationContext):
    yield from tenant_run_requests(context, {FULL_RECONCILE_TAG: "true"})


@schedule(job=outbox_relay_job, cron_schedule="* * * * *", execution_timezone="UTC",
          default_status=DefaultScheduleStatus.RUNNING)
def outbox_relay_schedule(context: ScheduleEvaluationContext):
    return RunRequest()


@schedule(job=audit_verify_job, cron_schedule="45 3 * * *", execution_timezone="UTC",
          default_status=DefaultScheduleStatus.RUNNING)
def audit_verify_schedule(context: ScheduleEvaluationContext):
    return RunRequest()


@schedule(job=monitor_retention_job, cron_schedule="15 4 * * *", execution_timezone="UTC",
          default_status=DefaultScheduleStatus.RUNNING)
def monitor_retention_schedule(context: ScheduleEvaluationContext):
    return RunRequest()


SCHEDULES = [integrity_schedule, reconciliation_schedule, full_reconciliation_schedule, gx_schedule, volume_schedule,
             outbox_relay_schedule, audit_verify_schedule, monitor_retention_schedule]
