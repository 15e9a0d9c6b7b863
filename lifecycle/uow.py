"""The unit of work: the only place a lifecycle transaction commits.

A ``UnitOfWork`` opens one connection and one transaction. Domain functions receive
it, use ``uow.conn`` and ``uow.now()``, and never commit; the caller commits once
at the end, and anything that leaves the ``with`` block without that commit,
an error included, is rolled back.

A tenant unit of work may carry a :class:`TenantInfo` — the tenant's code, kind and
feature flags as read from the core DB (``lifecycle.registry.tenant_info``) — so the use
cases that depend on them (serial policy) get them explicitly, never from a global. It
carries either the info itself or a function that reads it (``registry.tenant_uow``): then
``uow.tenant`` reads core the first time a use case asks, within that unit of work, and
never again in it. Most use cases (sessions, cancel, the work queue) never ask, and cost
core nothing; the one that does (spawn's serial policy) gets core's values of that moment.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Callable, Mapping

import sqlalchemy as sa


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


Clock = Callable[[], dt.datetime]


@dataclass(frozen=True)
class TenantInfo:
    """What the core DB says about a tenant, as the lifecycle needs it."""

    code: str
    is_test_tenant: bool
    flags: Mapping[str, bool] = field(default_factory=dict)

    def flag(self, key: str) -> bool:
        return bool(self.flags.get(key, False))


class UnitOfWork:
    def __init__(self, engine: sa.Engine, clock: Clock = utcnow,
                 tenant: TenantInfo | Callable[[], TenantInfo] | None = None) -> None:
        self.engine = engine
        self.clock = clock
        self._tenant = tenant
        self.conn: sa.Connection | None = None
        self._tx: sa.RootTransaction | None = None

    @property
    def tenant(self) -> TenantInfo | None:
        """The tenant's info, read (once per unit of work) when a use case first needs it."""
        if callable(self._tenant):
            self._tenant = self._tenant()
        return self._tenant

    def __enter__(self) -> "UnitOfWork":
        self.conn = self.engine.connect()
        self._tx = self.conn.begin()
        return self

    def __exit__(self, *exc_info) -> None:
        try:
            if self._tx is not None and self._tx.is_active:
                self._tx.rollback()
        finally:
            self.conn.close()

    def commit(self) -> None:
        self._tx.commit()

    def now(self) -> dt.datetime:
        return self.clock()


def as_utc(value: dt.datetime | str | None) -> dt.datetime | None:
    """Timestamps read back from SQLite are naive UTC; make every value aware."""
    if value is None:
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


def iso(value: dt.datetime | str | None) -> str | None:
    value = as_utc(value)
    return value.isoformat() if value else None
