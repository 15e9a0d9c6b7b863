"""Refusals of the guarded repairs (under the base of ``lifecycle.errors``).

Each is raised before anything is written."""

from __future__ import annotations

from lifecycle.errors import Refused


class ApprovalRequired(Refused):
    """No approval names the plan's current hash."""

    code = "APPROVAL_REQUIRED"


class PlanStale(Refused):
    """The plan is older than the allowed age: the floor has moved on."""

    code = "PLAN_STALE"


class PlanHashMismatch(Refused):
    """The hash an approver names is not the plan's."""

    code = "PLAN_HASH_MISMATCH"


class PlanTenantMismatch(Refused):
    """A plan used for another tenant than its own."""

    code = "PLAN_TENANT_MISMATCH"


class SelfApproval(Refused):
    """Four eyes: the plan's own planner may not approve it."""

    code = "SELF_APPROVAL"
