"""What a check is: a frozen record of data, executed by one generic engine (``checks.engine``).

A :class:`Check` names a rule of the catalogue (``docs/checks.md``) and holds the SQL
that selects the rows breaking it, like one of dbt's generic tests. Every query returns the offending rows
with their key columns and a short ``reason``; nothing is computed in Python that the
database can compute, and no query loads a whole table into memory.

Query conventions (the engine and the catalogue tests rely on them):

- ``sql`` runs in the tenant database, ``core_sql`` in the core database; both are
  named SQL blocks with bound parameters only.
- Every key column ``k`` of ``keys`` appears in each query as a filter
  ``(:k IS NULL OR <column> = :k)``: bound to NULL the query finds every offending row,
  bound to a value it re-runs the finding predicate for that one row (repairs).
- Parameters available to a query: ``:tenant_code``, ``:now``, ``:production_tenant``
  (tenant is not a test tenant), ``:flag_std_on`` (``FF_SERIAL_STD_HAT`` on), one
  ``:<threshold>_cutoff`` (= now − threshold) per declared threshold, and the keys.
- ``compare`` holds a cross-database comparison of the tenant and core serial
  registries by ``serial_code``: bucket checksums, then the differing rows (see ``crossdb``).

``reads_history`` says whether a check must read history (closed sessions, token
events, the whole serial registry) and so runs on the hourly schedule with the
reconciliation; the others touch only live rows (live tokens, active instances, open
sessions, active assignments, unpublished outbox rows) through partial indexes, and run
every 15 minutes (``cadence``).

Imports run one way in this package: ``model`` ← ``crossdb`` ← ``engine`` ← ``runner``.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass, field
from typing import Callable


class Family(str, enum.Enum):
    TOKENS = "tokens"
    INSTANCES = "instances"
    SESSIONS = "sessions"
    SERIALS = "serials"


class Severity(str, enum.Enum):
    CRITICAL = "critical"  # production state is wrong now: stop and repair
    ERROR = "error"  # records disagree; repair soon
    WARNING = "warning"  # suspicious; look at it

    @property
    def rank(self) -> int:
        return {"critical": 3, "error": 2, "warning": 1}[self.value]


class Scope(str, enum.Enum):
    TENANT = "tenant"  # reads the tenant DB (and at most one tenant/flag row of core)
    TENANT_CORE = "tenant+core"  # compares the tenant DB with the core DB


@dataclass(frozen=True)
class Threshold:
    name: str
    default: dt.timedelta
    description: str

    @property
    def param(self) -> str:
        return f"{self.name}_cutoff"


OUTBOX_GRACE = Threshold("outbox_grace", dt.timedelta(minutes=5),
                         "time the outbox relay has to publish a serial change to core")
STALE_SESSION = Threshold("stale_session", dt.timedelta(hours=12),
                          "how long a work session may stay open")


class Cadence(enum.IntEnum):
    """How often the schedules run a check, in seconds (``hatthasilpa_integrity_check_interval_seconds``)."""

    LIVE = 900  # every 15 minutes: the checks that touch only live rows
    HOURLY = 3600  # with the reconciliation: the checks that read history
    NIGHTLY = 86400  # the Great Expectations suites


# The check ids of the Great Expectations suites: ``gx.<table>`` (``checks.gx``), run nightly.
GX_PREFIX = "gx."


class Side(str, enum.Enum):
    TENANT = "tenant"
    CORE = "core"


# classify(params, tenant_rows, core_rows) -> a reason when the serial breaks the rule, else None
Classifier = Callable[[dict, list[dict], list[dict]], "str | None"]


@dataclass(frozen=True)
class Comparison:
    """A tenant/core registry comparison by ``serial_code``.

    ``classify`` sees every code whose tenant and core rows differ. On SQLite the engine
    pages through the ``drive`` side's registry in batches ordered by ``serial_code``
    (the core side restricted to this tenant's rows) and fetches the other side's rows
    for the batch's codes only; on PostgreSQL it reads only the buckets whose checksums
    differ (``crossdb``), and ``drive`` does not matter.
    """

    drive: Side
    classify: Classifier


@dataclass(frozen=True)
class Check:
    id: str
    family: Family
    severity: Severity
    description: str
    keys: tuple[str, ...]
    sql: str | None = None
    core_sql: str | None = None
    # (table, column): ``core_sql`` cannot find a row while core enforces this column unique
    # (a primary key or unique index on it alone); the engine skips the part then
    core_sql_unless_unique: tuple[str, str] | None = None
    # (table, column, sql): the tenant part runs ``sql`` instead of ``self.sql`` while the tenant
    # database enforces this column unique; same columns, the rows the constraint rules out left out
    sql_while_unique: tuple[str, str, str] | None = None
    compare: Comparison | None = None
    scope: Scope = Scope.TENANT
    reads_history: bool = False
    thresholds: tuple[Threshold, ...] = field(default_factory=tuple)
    history_note: str = ""

    @property
    def fast(self) -> bool:
        """Touches only live rows: fit for the 15-minute schedule."""
        return not self.reads_history

    @property
    def cadence(self) -> Cadence:
        return Cadence.HOURLY if self.reads_history else Cadence.LIVE
