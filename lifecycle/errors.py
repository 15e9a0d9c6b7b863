"""The base of every error the product raises on purpose, and the lifecycle's own refusals.

Every refusal is a :class:`HatthasilpaError` carrying a stable ``code`` (the error codes
of the README's CLI reference), a human ``message`` and a ``hint`` that says what to do
next. Each layer declares its refusals beside its code, under the base classes below; the
edge (``hatthasilpa.cli``) maps base classes only — ``exit_code`` says how a class ends
a command — and ``pipelines/errors.py`` turns them into Dagster failures::

    HatthasilpaError                    exit 1 unless a subclass says otherwise
    ├── BadInput                        exit 2 — the request itself is wrong
    │   ├── ValidationError             VALIDATION_ERROR
    │   └── NotFound                    NOT_FOUND
    ├── Refused                         exit 3 — valid request, refused by the current state
    │   ├── InvalidTransition           INVALID_TRANSITION
    │   ├── MixedTokenStates            MIXED_TOKEN_STATES
    │   ├── Conflict                    CONFLICT (e.g. a duplicate job code)
    │   ├── TokenBusy                   TOKEN_BUSY
    │   ├── OperatorBusy                OPERATOR_BUSY
    │   ├── SerialPolicyViolation       SERIAL_POLICY_VIOLATION
    │   ├── checks.errors.ChecksFailed              CHECKS_FAILED (`check run --fail-on SEVERITY`)
    │   ├── reconcile.errors.ApprovalRequired       APPROVAL_REQUIRED
    │   ├── reconcile.errors.PlanStale              PLAN_STALE
    │   ├── reconcile.errors.PlanHashMismatch       PLAN_HASH_MISMATCH (the hash an approver names is not the plan's)
    │   ├── reconcile.errors.PlanTenantMismatch     PLAN_TENANT_MISMATCH (a plan used for another tenant)
    │   └── hatthasilpa.doctor.PrerequisitesFailed  PREREQUISITES_FAILED (the report rides in ``data``)
    └── InternalError                   INTERNAL — anything unexpected

``lifecycle.constraints`` turns a violated database constraint into one of these by the
constraint's name.
"""

from __future__ import annotations


class HatthasilpaError(Exception):
    """Base of every error the product raises on purpose."""

    code = "INTERNAL"
    exit_code = 1
    data: dict | None = None  # a report that stays useful on failure (the envelope's ``data``)

    def __init__(self, message: str, hint: str | None = None, **details: object) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = details

    def to_dict(self) -> dict:
        body = {"code": self.code, "message": self.message, "hint": self.hint}
        if self.details:
            body["details"] = self.details
        return body


class BadInput(HatthasilpaError):
    exit_code = 2


class ValidationError(BadInput):
    code = "VALIDATION_ERROR"


class NotFound(BadInput):
    code = "NOT_FOUND"


class Refused(HatthasilpaError):
    exit_code = 3


class InvalidTransition(Refused):
    code = "INVALID_TRANSITION"


class MixedTokenStates(Refused):
    code = "MIXED_TOKEN_STATES"


class Conflict(Refused):
    code = "CONFLICT"


class TokenBusy(Refused):
    code = "TOKEN_BUSY"


class OperatorBusy(Refused):
    code = "OPERATOR_BUSY"


class SerialPolicyViolation(Refused):
    code = "SERIAL_POLICY_VIOLATION"


class InternalError(HatthasilpaError):
    code = "INTERNAL"
    exit_code = 1
