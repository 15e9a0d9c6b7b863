"""The integrity check catalogue (``docs/checks.md``) and its one generic runner.

    from checks import CATALOGUE, run_checks
    report = run_checks(settings, tenants=["atelier"], check_ids=["orphan_token"])

    # one check on connections the caller owns (e.g. a repair holding a row lock):
    from checks import Target, get, row_predicate, tenant_params
    target = Target("atelier", tenant_conn, core_conn, tenant_params(core_conn, "atelier"))
    row_predicate(get("orphan_token"), target, {"token_id": 42})   # the finding, or None
"""

from .catalogue import CATALOGUE, CHECK_IDS, all_checks, get, select
from .context import tenant_params
from .engine import Target, count_and_sample, iter_rows, offending_rows, row_predicate
from .model import Cadence, Check, Comparison, Family, Scope, Severity, Side, Threshold
from .runner import CheckResult, RunReport, read_only, run_check, run_checks, run_tenant

__all__ = [
    "CATALOGUE", "CHECK_IDS", "all_checks", "get", "select", "tenant_params", "Target", "count_and_sample",
    "iter_rows", "offending_rows", "row_predicate", "Cadence", "Check", "Comparison", "Family", "Scope", "Severity",
    "Side", "Threshold", "CheckResult", "RunReport", "read_only", "run_check", "run_checks", "run_tenant",
]
