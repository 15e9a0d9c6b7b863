"""Database invariants by name, and the refusal each becomes when the database enforces it.

The locks of the use cases decide first; the partial unique indexes of ``lifecycle.schema``
are the backstop for a race the locks did not cover. When one fires, the refusal is
chosen by the constraint's name — ``diag.constraint_name`` on PostgreSQL; on SQLite,
which names only the table and columns of a violated unique index, the one unique index
of the declared schema on exactly those columns — never by searching the message text.
"""

from __future__ import annotations

import re

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from .errors import Conflict, HatthasilpaError, OperatorBusy, TokenBusy
from .schema import core_metadata, tenant_metadata

# constraint name -> (refusal, message, hint)
REFUSALS: dict[str, tuple[type[HatthasilpaError], str, str]] = {
    "ux_token_work_session_one_running_per_operator": (
        OperatorBusy, "the operator already has a running session", "pause or complete the running session first"),
    "ux_token_work_session_one_open": (
        TokenBusy, "the token was taken meanwhile: it already has an open session", "take another ready token"),
    "ux_token_assignment_one_active": (
        TokenBusy, "the token was assigned meanwhile", "take another ready token"),
    "ux_job_graph_instance_one_active": (
        Conflict, "the job got an active instance meanwhile", "read the job again and retry"),
    "uq_hatthasilpa_job_job_code": (
        Conflict, "a job with this code exists", "job codes are unique; choose another code"),
    "uq_tenant_tenant_code": (
        Conflict, "a tenant with this code exists", "tenant codes are unique"),
    "ux_tenant_code_ci": (
        Conflict, "a tenant with this code in another case exists", "tenant codes are unique regardless of case"),
}

_SQLITE_UNIQUE = re.compile(r"UNIQUE constraint failed: (?P<cols>[\w.]+(?:, [\w.]+)*)")
_SQLITE_INDEX = re.compile(r"UNIQUE constraint failed: index '(?P<name>\w+)'")  # an expression index
_SQLITE_CHECK = re.compile(r"CHECK constraint failed: (?P<name>\w+)")


def _unique_names() -> dict[tuple[str, tuple[str, ...]], str]:
    names = {}
    for metadata in (tenant_metadata, core_metadata):
        for table in metadata.tables.values():
            for index in table.indexes:
                if index.unique:
                    names[(table.name, tuple(c.name for c in index.columns))] = index.name
            for constraint in table.constraints:
                if isinstance(constraint, sa.UniqueConstraint):
                    names[(table.name, tuple(c.name for c in constraint.columns))] = constraint.name
    return names


_UNIQUE_BY_COLUMNS = _unique_names()


def violated_constraint(exc: IntegrityError) -> str | None:
    """The name of the constraint the database refused the statement for, when it says."""
    diag = getattr(exc.orig, "diag", None)
    if diag is not None:
        return diag.constraint_name
    text = str(exc.orig)
    index = _SQLITE_INDEX.search(text)
    if index:
        return index.group("name")
    unique = _SQLITE_UNIQUE.search(text)
    if unique:
        qualified = [c.split(".", 1) for c in unique.group("cols").split(", ")]
        key = (qualified[0][0], tuple(col for _, col in qualified))
        return _UNIQUE_BY_COLUMNS.get(key)
    check = _SQLITE_CHECK.search(text)
    return check.group("name") if check else None


def refusal(exc: IntegrityError) -> HatthasilpaError:
    """The product's refusal for a violated constraint (CONFLICT naming it when it has none of its own)."""
    name = violated_constraint(exc)
    if name in REFUSALS:
        cls, message, hint = REFUSALS[name]
        return cls(message, hint=hint, constraint=name)
    return Conflict(f"the database refused the change (constraint {name or 'unknown'})",
                    hint="another command changed the same rows; read the current state and retry",
                    constraint=name)
