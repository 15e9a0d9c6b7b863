"""Guarded repairs (docs/runbook.md): plan → approve → apply, with an audit of every row.

    from reconcile import approve, apply, plan
    p = plan(settings, "atelier", ["orphan_token"])          # read-only; a stored plan with a hash
    approve(settings, p["plan_id"], by="somchai")             # who approved which hash
    apply(settings, p["plan_id"])                             # dry run: what would happen
    apply(settings, p["plan_id"], execute=True, max_rows=50)  # the change, row by row, under locks

``repairs`` is the catalogue (check id → action), ``plans`` stores plans and
approvals, ``apply`` re-verifies and applies, ``audit`` keeps the before/after trail.
"""

from .apply import apply
from .plans import approve, plan, plan_hash, show
from .repairs import GUIDANCE, REPAIRS

__all__ = ["GUIDANCE", "REPAIRS", "apply", "approve", "plan", "plan_hash", "show"]
