"""The one errors module of Hatthasilpa.

Every refusal the product makes is a :class:`HatthasilpaError` carrying a stable
``code`` (the contract of SPEC §5.1), a human ``message`` and a ``hint`` that says
what to do next. Errors become JSON envelopes and exit codes only at the edge
(``lifecycle.cli``)::

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
    │   ├── ApprovalRequired            APPROVAL_REQUIRED
    │   ├── PlanStale                   PLAN_STALE
    │   ├── PlanHashMismatch            PLAN_HASH_MISMATCH (the hash an approver names is not the plan's)
    │   ├── PlanTenantMismatch          PLAN_TENANT_MISMATCH (a plan used for another tenant)
    │   ├── PrerequisitesFailed         PREREQUISITES_FAILED (doctor; the report rides in ``data``)
    │   └── ChecksFailed                CHECKS_FAILED (`check run --fail-on SEVERITY`)
    └── InternalError                   INTERNAL — anything unexpected
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


class ApprovalRequired(Refused):
    code = "APPROVAL_REQUIRED"


class PlanStale(Refused):
    code = "PLAN_STALE"


class PlanHashMismatch(Refused):
    code = "PLAN_HASH_MISMATCH"


class PlanTenantMismatch(Refused):
    code = "PLAN_TENANT_MISMATCH"


class PrerequisitesFailed(Refused):
    code = "PREREQUISITES_FAILED"

    def __init__(self, message: str, hint: str | None = None, data: dict | None = None, **details: object) -> None:
        super().__init__(message, hint, **details)
        self.data = data


class ChecksFailed(Refused):
    code = "CHECKS_FAILED"


class InternalError(HatthasilpaError):
    code = "INTERNAL"
    exit_code = 1
