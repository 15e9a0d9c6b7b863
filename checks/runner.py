"""The one generic runner: every selected check on every selected tenant.

Per (tenant, check) it records the count, a bounded sample, the duration and any
error; a check that fails is recorded as an error and the others still run. Every
check runs in its own read-only transaction: on PostgreSQL ``SET TRANSACTION READ
ONLY`` and ``SET LOCAL statement_timeout``, with JIT compilation off (a check's plan is
index lookups whose cost estimates invite JIT, and compiling took longer than the check:
1.1 s of a 1.35 s ``mixed_token_states`` on a 1 M-token tenant); on SQLite a deferred transaction with
``PRAGMA query_only`` and a progress handler that interrupts a statement past its
time budget. So the checks also work through a SELECT-only role, and never take a
write lock.

The caller's settings name the connections: the application passes the read-only URLs
of ``HATTHASILPA_CHECKS_CORE_URL`` / ``HATTHASILPA_CHECKS_TENANT_URL_TEMPLATE`` where
they are set (``hatthasilpa.settings.for_checks``; the Dagster resources likewise).
"""

from __future__ import annotations

import datetime as dt
import time
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterable

import sqlalchemy as sa

from lifecycle import registry
from lifecycle.db import Settings, get_engine, is_postgres
from lifecycle.uow import utcnow

from . import catalogue, incidents, store
from .context import tenant_params
from .engine import Target, count_and_sample, deadline_after
from .model import Check, Scope

# The settings of the read-only role the checks can read through (the README's "Read-only role").
READ_ONLY_CORE_URL = "HATTHASILPA_CHECKS_CORE_URL"
READ_ONLY_TENANT_URL_TEMPLATE = "HATTHASILPA_CHECKS_TENANT_URL_TEMPLATE"

DEFAULT_SAMPLE_SIZE = 20
# Sized from benchmarks/run.py: the serial reconciliation of a 10-million-serial tenant on a
# loaded 2-core machine takes minutes; a budget it cannot meet would record an error every hour.
DEFAULT_TIMEOUT_SECONDS = 600.0


@dataclass
class CheckResult:
    check: str
    tenant: str
    severity: str
    family: str
    count: int
    sample: list[dict]
    started_at: dt.datetime
    finished_at: dt.datetime
    duration_seconds: float
    error: str | None = None
    keys: list[dict] = field(default_factory=list, repr=False)  # offending keys, up to incidents.KEY_CAP
    incident: dict | None = None  # {id, state} once the run is recorded

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict:
        """The result as JSON; a check that failed (a timeout included) counted nothing: ``count`` is null."""
        body = asdict(self)
        body.pop("keys")
        if self.error is not None:
            body["count"] = None
        body["started_at"] = self.started_at.isoformat()
        body["finished_at"] = self.finished_at.isoformat()
        return body


@dataclass
class RunReport:
    run_id: int | None
    started_at: dt.datetime
    finished_at: dt.datetime
    results: list[CheckResult] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"run_id": self.run_id, "started_at": self.started_at.isoformat(),
                "finished_at": self.finished_at.isoformat(),
                "tenants": sorted({r.tenant for r in self.results}),
                "violations": sum(r.count for r in self.results),
                "errors": sum(1 for r in self.results if r.error),
                "results": [r.to_dict() for r in self.results]}


@contextmanager
def read_only(conn: sa.Connection, timeout_seconds: float):
    """One read-only transaction with a statement time budget; always rolled back."""
    if is_postgres(conn):
        tx = conn.begin()
        try:
            # one round trip: read-only, the time budget, and no JIT (see the module's docstring)
            conn.execute(sa.text("SELECT set_config('transaction_read_only', 'on', true), "
                                 "set_config('statement_timeout', :ms, true), set_config('jit', 'off', true)"),
                         {"ms": str(max(1, int(timeout_seconds * 1000)))})
            yield conn
        finally:
            tx.rollback()
        return
    raw = conn.connection.driver_connection
    deadline = time.monotonic() + timeout_seconds
    raw.execute("PRAGMA query_only = ON")
    raw.set_progress_handler(lambda: 1 if time.monotonic() > deadline else 0, 10_000)
    conn.execution_options(sqlite_begin="DEFERRED")
    tx = conn.begin()
    try:
        yield conn
    finally:
        tx.rollback()
        raw.set_progress_handler(None, 0)
        raw.execute("PRAGMA query_only = OFF")


def _error_text(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip().splitlines()
    return f"{type(orig or exc).__name__}: {text[0] if text else ''}"[:500]


def run_check(check: Check, tenant_code: str, tenant_conn: sa.Connection, core_conn: sa.Connection,
              params: dict, sample_size: int = DEFAULT_SAMPLE_SIZE,
              timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS, shared: dict | None = None) -> CheckResult:
    """Run one check on one tenant in its own read-only transaction(s); never raises.

    Keeps the first ``sample_size`` offending rows as the sample and the keys of the first
    ``incidents.KEY_CAP`` for the incident's evidence. ``shared`` is the tenant's memo for
    one run: the serial comparisons of the run share one pass over both registries through it."""
    started, t0 = utcnow(), time.perf_counter()
    count, sample, keys, error = 0, [], [], None
    try:
        with ExitStack() as stack:
            stack.enter_context(read_only(tenant_conn, timeout_seconds))
            reads_core = check.scope == Scope.TENANT_CORE or check.core_sql is not None
            if reads_core:
                stack.enter_context(read_only(core_conn, timeout_seconds))
            target = Target(tenant_code, tenant_conn, core_conn if reads_core else None, params,
                            deadline=deadline_after(timeout_seconds), shared=shared)
            count, rows = count_and_sample(check, target, max(sample_size, incidents.KEY_CAP))
            sample, keys = rows[:sample_size], [{k: row.get(k) for k in check.keys} for row in rows]
    except Exception as exc:  # a failing check is a result, not the end of the run
        count, sample, keys, error = 0, [], [], _error_text(exc)
    duration = time.perf_counter() - t0
    return CheckResult(check=check.id, tenant=tenant_code, severity=check.severity.value, family=check.family.value,
                       count=count, sample=sample, started_at=started, finished_at=utcnow(),
                       duration_seconds=round(duration, 6), error=error, keys=keys)


def unreachable(tenant_code: str, checks: Iterable[Check], exc: BaseException) -> list[CheckResult]:
    """Error results for every check of a tenant whose databases could not be read at all."""
    now, error = utcnow(), "tenant unreachable: " + _error_text(exc)
    return [CheckResult(check=c.id, tenant=tenant_code, severity=c.severity.value, family=c.family.value, count=0,
                        sample=[], started_at=now, finished_at=now, duration_seconds=0.0, error=error)
            for c in checks]


Progress = Callable[[str, str, int, int, "CheckResult | None"], None]


def run_tenant(settings: Settings, tenant_code: str, checks: Iterable[Check], *, now: dt.datetime | None = None,
               thresholds: dict | None = None, sample_size: int = DEFAULT_SAMPLE_SIZE,
               timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS, progress: Progress | None = None,
               position: tuple[int, int] = (0, 0), full_reconcile: bool = False) -> list[CheckResult]:
    checks = list(checks)
    done, total = position
    results = []
    with get_engine(settings.tenant_url(tenant_code)).connect() as tconn, \
            get_engine(settings.core_url).connect() as cconn:
        with read_only(cconn, timeout_seconds):
            params = {**tenant_params(cconn, tenant_code, now, thresholds), "full_reconcile": full_reconcile}
        shared: dict = {}
        for check in checks:
            if progress:
                progress(tenant_code, check.id, done, total, None)
            result = run_check(check, tenant_code, tconn, cconn, params, sample_size, timeout_seconds, shared)
            results.append(result)
            done += 1
            if progress:
                progress(tenant_code, check.id, done, total, result)
    return results


def run_checks(settings: Settings, tenants: list[str] | None = None,
               check_ids: list[str] | None = None, *, fast_only: bool = False, now: dt.datetime | None = None,
               thresholds: dict | None = None, sample_size: int = DEFAULT_SAMPLE_SIZE,
               timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS, progress: Progress | None = None,
               record: bool = True, trigger: str = "cli", checks: list[Check] | None = None,
               plan_id: str | None = None, full_reconcile: bool = False) -> RunReport:
    """Run checks on tenants (every registered tenant when None) and record them in the monitor store
    (a repair's re-check names its ``plan_id``). ``full_reconcile`` computes the serial summaries from
    the registries instead of their digests, and holds each digest against them."""
    selected = checks if checks is not None else catalogue.select(check_ids, fast_only=fast_only)
    codes = [registry.get_tenant(settings, t)["tenant_code"] for t in dict.fromkeys(tenants)] if tenants \
        else [t["tenant_code"] for t in registry.list_tenants(settings)]
    started = utcnow()
    results: list[CheckResult] = []
    total = len(codes) * len(selected)
    for i, code in enumerate(codes):
        try:
            results += run_tenant(settings, code, selected, now=now, thresholds=thresholds,
                                  sample_size=sample_size, timeout_seconds=timeout_seconds, progress=progress,
                                  position=(i * len(selected), total), full_reconcile=full_reconcile)
        except Exception as exc:  # an unreachable tenant is recorded; the other tenants still run
            results += unreachable(code, selected, exc)
    report = RunReport(run_id=None, started_at=started, finished_at=utcnow(), results=results)
    if record:
        report.run_id = store.record_run(settings.monitor_url, report, trigger=trigger,
                                         selection={"tenants": codes, "checks": [c.id for c in selected]},
                                         plan_id=plan_id)
    return report
