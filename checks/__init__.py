"""The integrity check catalogue (SPEC §6) and its one generic runner.

    from checks import CATALOGUE, run_checks
    report = run_checks(settings, tenants=["atelier"], check_ids=["orphan_token"])

    # one check on connections the caller owns (e.g. a repair holding a row lock):
    from checks import Target, get, tenant_params
    target = Target("atelier", tenant_conn, core_conn, tenant_params(core_conn, "atelier"))
    get("orphan_token").row_predicate(target, {"token_id": 42})   # the finding, or None
"""

from .catalogue import CATALOGUE, SPEC_ORDER, all_checks, get, select
from .context import tenant_params
from .engine import Target, count_and_sample, iter_rows, offending_rows, row_predicate
from .model import Check, Comparison, Family, Scope, Severity, Side, Threshold
from .runner import CheckResult, RunReport, checks_settings, read_only, run_check, run_checks, run_tenant

__all__ = [
    "CATALOGUE", "SPEC_ORDER", "all_checks", "get", "select", "tenant_params", "Target", "count_and_sample",
    "iter_rows", "offending_rows", "row_predicate", "Check", "Comparison", "Family", "Scope", "Severity", "Side",
    "Threshold", "CheckResult", "RunReport", "checks_settings", "read_only", "run_check", "run_checks",
    "run_tenant",
]
