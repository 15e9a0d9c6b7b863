"""Recording synthetic runs straight into the monitor store, as any path that records a run does."""

from __future__ import annotations

import sqlalchemy as sa

from checks import store
from checks.runner import CheckResult, RunReport
from lifecycle.db import get_engine
from lifecycle.uow import utcnow


def result(check: str, tokens=(), count: int | None = None, tenant: str = "atelier", error: str | None = None,
           severity: str = "critical") -> CheckResult:
    now = utcnow()
    keys = [{"token_id": t} for t in tokens]
    return CheckResult(check=check, tenant=tenant, severity=severity, family="tokens",
                       count=len(keys) if count is None else count,
                       sample=[{**k, "reason": "test"} for k in keys[:20]], started_at=now, finished_at=now,
                       duration_seconds=0.01, error=error, keys=keys)


def record(url: str, *results: CheckResult, plan_id: str | None = None) -> RunReport:
    now = utcnow()
    report = RunReport(run_id=None, started_at=now, finished_at=now, results=list(results))
    report.run_id = store.record_run(url, report, trigger="test", plan_id=plan_id)
    return report


def count_rows(url: str, table: str) -> int:
    with get_engine(url).connect() as conn:
        return conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()
