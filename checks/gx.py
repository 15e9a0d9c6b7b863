"""Great Expectations suites: column-level rules of every tenant table (``docs/data-model.md``).

The suites are data (``SUITES``: table → expectations); ``run_suites`` validates them
through GX's SQL data source against each tenant database (PostgreSQL or SQLite, the
checks' read-only URLs), stores one finding per (tenant, table) under the check id
``gx.<table>`` in the monitor store, and builds GX Data Docs under
``$HATTHASILPA_GX_DOCS_DIR`` (default ``var/gx/data_docs``). The database's own
constraints already forbid most of these on our schema; the suites matter on legacy
databases without them, and as readable documentation of the rules.

The ephemeral GX context keeps no configuration on disk, so no connection string is
ever written to a GX project file.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from sqlalchemy.engine import make_url

from lifecycle import registry
from lifecycle.db import Settings
from lifecycle.states import (AssignmentSource, AssignmentStatus, InstanceStatus, JobStatus, ProductionMode,
                              SerialMode, SerialStatus, SessionStatus, TokenStatus, values)
from lifecycle.uow import utcnow

from . import store
from .model import GX_PREFIX
from .runner import CheckResult, RunReport

SEVERITY = "error"
SAMPLE_VALUES = 5


def _not_null(*columns: str) -> list[tuple[str, dict]]:
    return [("ExpectColumnValuesToNotBeNull", {"column": c}) for c in columns]


def _in_set(column: str, allowed: list[str]) -> tuple[str, dict]:
    return "ExpectColumnValuesToBeInSet", {"column": column, "value_set": allowed}


def _at_least(column: str, minimum: int) -> tuple[str, dict]:
    return "ExpectColumnValuesToBeBetween", {"column": column, "min_value": minimum}


SUITES: dict[str, list[tuple[str, dict]]] = {
    "hatthasilpa_job": [*_not_null("job_code", "sku", "graph_id"),
                        ("ExpectColumnValuesToBeUnique", {"column": "job_code"}),
                        _in_set("status", values(JobStatus)), _in_set("production_mode", values(ProductionMode)),
                        _at_least("quantity", 1)],
    "job_graph_instance": [*_not_null("job_id", "graph_id"), _in_set("status", values(InstanceStatus))],
    "token_spawn": [*_not_null("instance_id", "job_id"), _at_least("token_count", 1)],
    "flow_token": [*_not_null("instance_id", "job_id", "spawn_id", "current_node_id"),
                   _in_set("status", values(TokenStatus)), _at_least("piece_index", 1)],
    "token_event": [*_not_null("token_id", "event_type", "at")],
    "token_assignment": [*_not_null("token_id", "operator_id"), _in_set("status", values(AssignmentStatus)),
                         _in_set("source", values(AssignmentSource))],
    "token_work_session": [*_not_null("token_id", "operator_id", "started_at"),
                           _in_set("status", values(SessionStatus)), _at_least("work_seconds", 0),
                           ("ExpectColumnPairValuesAToBeGreaterThanB",
                            {"column_A": "ended_at", "column_B": "started_at", "or_equal": True,
                             "ignore_row_if": "either_value_is_missing"})],
    "serial_registry": [*_not_null("serial_code", "tenant_code", "sku", "token_id"),
                        ("ExpectColumnValuesToBeUnique", {"column": "serial_code"}),
                        _in_set("mode", values(SerialMode)), _in_set("status", values(SerialStatus))],
    "serial_outbox": [*_not_null("serial_code", "event_id"), _at_least("attempts", 0)],
}


def docs_dir(environ: dict | None = None) -> Path:
    env = os.environ if environ is None else environ
    if env.get("HATTHASILPA_GX_DOCS_DIR"):
        return Path(env["HATTHASILPA_GX_DOCS_DIR"])
    return Path(env.get("HATTHASILPA_VAR_DIR", "var")) / "gx" / "data_docs"


def _context(site_dir: Path):
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    context.add_data_docs_site(site_name="hatthasilpa", site_config={
        "class_name": "SiteBuilder", "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(site_dir.resolve())}})
    for table, expectations in SUITES.items():
        suite = context.suites.add(gx.ExpectationSuite(name=GX_PREFIX + table))
        for name, kwargs in expectations:
            suite.add_expectation(getattr(gx.expectations, name)(**kwargs))
    return context


def _failure(result) -> dict:
    config = result.expectation_config
    kwargs = config.kwargs
    columns = kwargs.get("column") or ",".join(filter(None, (kwargs.get("column_A"), kwargs.get("column_B"))))
    examples = (result.result or {}).get("partial_unexpected_list") or []
    return {"expectation": config.type, "column": columns,
            "unexpected_count": (result.result or {}).get("unexpected_count"),
            "examples": [str(v) for v in examples[:SAMPLE_VALUES]],
            "reason": f"{config.type} failed on {columns}"}


def _raised(info) -> bool:
    """GX reports an exception either at the top of ``exception_info`` or per metric inside it."""
    if not info:
        return False
    if "raised_exception" in info:
        return bool(info["raised_exception"])
    return any(isinstance(v, dict) and v.get("raised_exception") for v in info.values())


def _validate_tenant(context, tenant_code: str, url: str) -> list[CheckResult]:
    import great_expectations as gx
    from great_expectations.checkpoint import UpdateDataDocsAction

    backend = make_url(url).get_backend_name()
    add = {"postgresql": context.data_sources.add_postgres, "sqlite": context.data_sources.add_sqlite}.get(
        backend, context.data_sources.add_sql)
    source = add(name=f"tenant_{tenant_code}", connection_string=url)
    definitions = {}
    for table in SUITES:
        batch = source.add_table_asset(name=table, table_name=table).add_batch_definition_whole_table("whole_table")
        definitions[table] = context.validation_definitions.add(gx.ValidationDefinition(
            name=f"{tenant_code}.{table}", data=batch, suite=context.suites.get(GX_PREFIX + table)))
    checkpoint = context.checkpoints.add(gx.Checkpoint(
        name=f"tenant_{tenant_code}", validation_definitions=list(definitions.values()),
        actions=[UpdateDataDocsAction(name="data_docs", site_names=["hatthasilpa"])], result_format="SUMMARY"))
    started, t0 = utcnow(), time.perf_counter()
    try:
        outcome = checkpoint.run()
    finally:
        source.get_engine().dispose()  # a long-lived process (Dagster) must not keep GX's pools
    duration = round(time.perf_counter() - t0, 6)
    by_suite = {r.suite_name: r for r in outcome.run_results.values()}
    results = []
    for table in SUITES:
        validation = by_suite.get(GX_PREFIX + table)
        failed = [r for r in validation.results if not r.success] if validation else []
        raised = [r.expectation_config.type for r in failed if _raised(r.exception_info)]
        failures = [_failure(r) for r in failed if not _raised(r.exception_info)]
        error = "suite did not run" if validation is None else (
            f"expectations raised: {', '.join(raised)}" if raised else None)
        results.append(CheckResult(
            check=GX_PREFIX + table, tenant=tenant_code, severity=SEVERITY, family="gx",
            count=sum(f["unexpected_count"] or 1 for f in failures), sample=failures, started_at=started,
            finished_at=utcnow(), duration_seconds=round(duration / len(SUITES), 6), error=error))
    return results


def validate(settings: Settings, tenants: list[str] | None = None, *,
             site_dir: Path | str | None = None, record: bool = True) -> tuple[RunReport, Path]:
    """Validate every suite on every tenant (all registered when None); store findings, build Data Docs.

    Returns the run's report and the Data Docs site folder."""
    codes = [registry.get_tenant(settings, t)["tenant_code"] for t in dict.fromkeys(tenants)] if tenants \
        else [t["tenant_code"] for t in registry.list_tenants(settings)]
    site = Path(site_dir) if site_dir is not None else docs_dir()
    site.mkdir(parents=True, exist_ok=True)
    started = utcnow()
    context = _context(site)
    results: list[CheckResult] = []
    for code in codes:
        try:
            results += _validate_tenant(context, code, settings.tenant_url(code))
        except Exception as exc:  # one tenant's failure is recorded; the others still run
            now = utcnow()
            results += [CheckResult(check=GX_PREFIX + t, tenant=code, severity=SEVERITY, family="gx", count=0,
                                    sample=[], started_at=now, finished_at=now, duration_seconds=0.0,
                                    error=f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
                        for t in SUITES]
    report = RunReport(run_id=None, started_at=started, finished_at=utcnow(), results=results)
    if record:
        report.run_id = store.record_run(settings.monitor_url, report, trigger="gx",
                                         selection={"tenants": codes, "suites": list(SUITES)})
    return report, site


def run_suites(settings: Settings, tenants: list[str] | None = None, *,
               site_dir: Path | str | None = None, record: bool = True) -> dict:
    """``validate`` as a JSON-ready body, with the path of the Data Docs index."""
    report, site = validate(settings, tenants, site_dir=site_dir, record=record)
    body = report.to_dict()
    body["data_docs"] = str((site / "index.html").resolve())
    return body
