"""The monitor's checks' own errors (under the base of ``lifecycle.errors``)."""

from __future__ import annotations

from lifecycle.errors import Refused


class ChecksFailed(Refused):
    """``check run --fail-on SEVERITY`` found a result at or above the threshold, or an error."""

    code = "CHECKS_FAILED"


class CheckTimeout(Exception):
    """A check ran past its time budget (raised between the batches of a comparison).

    The runner records it as the check's error result; it never leaves the runner."""


class DigestDrift(Exception):
    """The full reconciliation pass found a serial digest that disagrees with its registry
    (a write bypassed the digest's triggers); recorded as the check's error result."""


class AuditTampered(Refused):
    """``audit verify`` found an entry of the audit log edited, deleted or out of order."""

    code = "AUDIT_TAMPERED"
