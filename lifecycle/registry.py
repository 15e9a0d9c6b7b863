"""The core registry: tenants and feature flags.

``add_tenant`` migrates the tenant's database before it registers the tenant in
core, so a tenant whose database cannot be reached is never half-registered.
New tenants get ``FF_SERIAL_STD_HAT`` on (docs/risks.md §3.3: on by default for every
Hatthasilpa tenant); every flag change is written to ``feature_flag_audit``.

A tenant unit of work (:func:`tenant_uow`) reads the tenant's kind and flags from core only
when a use case asks for them (spawn's serial policy), so they are never older than that
moment. What it checks up front is only that core registers the tenant; a process remembers a
tenant it saw registered for ``REGISTERED_FOR_SECONDS`` and asks core again after that. A
tenant removed from core is therefore refused NOT_FOUND by every process at most that long
after; a flag or kind change is seen by the next unit of work that reads them, in every process.

Invariant: one tenant per code whatever its case; a tenant is never half-registered. Guarded
by tests/e2e/test_hostile_input.py, tests/integration/test_serials.py; the reading rule by
tests/integration/test_tenant_info.py.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

import sqlalchemy as sa
from sqlalchemy.exc import OperationalError

from . import migrate
from .db import Settings, check_tenant_code, get_engine
from .errors import Conflict, NotFound, ValidationError
from .schema import feature_flag, feature_flag_audit, tenant
from .uow import Clock, TenantInfo, UnitOfWork, utcnow

FF_SERIAL_STD_HAT = "FF_SERIAL_STD_HAT"
KNOWN_FLAGS = (FF_SERIAL_STD_HAT,)
MAX_NAME_LENGTH = 128  # tenant.name
REGISTERED_FOR_SECONDS = 10.0  # how long a process trusts that a tenant it saw is still registered


class Registrations:
    """The tenants this process saw registered in core, and when (per core URL)."""

    def __init__(self, ttl: float = REGISTERED_FOR_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self._seen: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def fresh(self, core_url: str, code: str) -> bool:
        with self._lock:
            seen = self._seen.get((core_url, code))
        return seen is not None and self.clock() - seen < self.ttl

    def saw(self, core_url: str, code: str) -> None:
        with self._lock:
            self._seen[(core_url, code)] = self.clock()

    def clear(self) -> None:
        with self._lock:
            self._seen.clear()


REGISTRATIONS = Registrations()


def migrate_store(url: str, store: migrate.Store) -> None:
    """Migrate one database to head; an unreachable database is bad input with the fix."""
    try:
        migrate.upgrade(url, store)
    except OperationalError as exc:
        raise ValidationError(
            f"cannot migrate the {store.name} database: {str(exc.orig).strip().splitlines()[0]}",
            hint="check the URL setting; a PostgreSQL database must exist before `tenant add` (CREATE DATABASE …)",
        ) from exc


def core_uow(settings: Settings) -> UnitOfWork:
    return UnitOfWork(get_engine(settings.core_url))


def list_tenants(settings: Settings) -> list[dict]:
    with get_engine(settings.core_url).connect() as conn:
        rows = conn.execute(sa.select(tenant.c.tenant_code, tenant.c.name, tenant.c.is_test_tenant)
                            .order_by(tenant.c.tenant_code))
        return [dict(r._mapping) for r in rows]


def get_tenant(settings: Settings, code: str) -> dict:
    check_tenant_code(code)
    with get_engine(settings.core_url).connect() as conn:
        try:
            row = conn.execute(sa.select(tenant).where(tenant.c.tenant_code == code)).first()
        except OperationalError as exc:
            raise NotFound("the core database has no tenant table",
                           hint="run `hatthasilpa db upgrade` (or `hatthasilpa tenant add CODE`) first") from exc
        if row is None:
            raise NotFound(f"tenant {code} is not registered", hint=f"register it: hatthasilpa tenant add {code}")
        flags = {f.flag_key: f.enabled for f in conn.execute(
            sa.select(feature_flag.c.flag_key, feature_flag.c.enabled).where(feature_flag.c.tenant_code == code))}
    REGISTRATIONS.saw(settings.core_url, code)
    return {"tenant_code": row.tenant_code, "name": row.name, "is_test_tenant": bool(row.is_test_tenant),
            "flags": flags}


def tenant_info(settings: Settings, code: str) -> TenantInfo:
    """What core says about a tenant, as the lifecycle's use cases need it (NOT_FOUND when unregistered)."""
    row = get_tenant(settings, code)
    return TenantInfo(code=row["tenant_code"], is_test_tenant=row["is_test_tenant"], flags=row["flags"])


def require_registered(settings: Settings, code: str) -> None:
    """NOT_FOUND unless core registers the tenant (asked at most every ``REGISTERED_FOR_SECONDS``)."""
    if not REGISTRATIONS.fresh(settings.core_url, code):
        get_tenant(settings, code)


def tenant_uow(settings: Settings, code: str, clock: Clock = utcnow) -> UnitOfWork:
    """A unit of work on a registered tenant's DB; its kind and flags are read from core when a
    use case first asks for them in it (``uow.tenant``), so they are core's values of that moment."""
    require_registered(settings, code)
    return UnitOfWork(get_engine(settings.tenant_url(code)), clock=clock,
                      tenant=lambda: tenant_info(settings, code))


def add_tenant(settings: Settings, code: str, name: str | None = None, is_test: bool = False,
               actor: str = "cli") -> dict:
    check_tenant_code(code)
    if name is not None and (not name.strip() or len(name) > MAX_NAME_LENGTH or not name.isprintable()):
        raise ValidationError("invalid tenant name" if name.strip() else "tenant name is empty",
                              hint=f"pass --name with 1-{MAX_NAME_LENGTH} printable characters, or leave it out")
    migrate_store(settings.core_url, migrate.CORE)
    with core_uow(settings) as uow:  # refuse a case variant before its URL (lower-cased) is touched
        _refuse_case_variant(uow, code)
    migrate_store(settings.tenant_url(code), migrate.TENANT)
    with core_uow(settings) as uow:
        existing = uow.conn.execute(sa.select(tenant).where(tenant.c.tenant_code == code).with_for_update()).first()
        if existing is None:
            _refuse_case_variant(uow, code)
        now = uow.now()
        if existing is None:
            uow.conn.execute(tenant.insert().values(tenant_code=code, name=name or code, is_test_tenant=is_test,
                                                    created_at=now, updated_at=now))
            _write_flag(uow, code, FF_SERIAL_STD_HAT, True, actor)
            created = True
        else:
            changes = {"is_test_tenant": is_test}
            if name:
                changes["name"] = name
            uow.conn.execute(tenant.update().where(tenant.c.tenant_code == code).values(**changes, updated_at=now))
            created = False
        uow.commit()
    return {**get_tenant(settings, code), "created": created}


def _refuse_case_variant(uow: UnitOfWork, code: str) -> None:
    """One tenant per code, case-insensitively: tenant URLs lower-case the code, so ``ACME`` and
    ``acme`` would share one database (and one outbox). The unique index ``ux_tenant_code_ci``
    is the backstop for two concurrent adds."""
    other = uow.conn.execute(sa.select(tenant.c.tenant_code).where(
        sa.func.lower(tenant.c.tenant_code) == code.lower(), tenant.c.tenant_code != code)).scalar()
    if other is not None:
        raise Conflict(f"tenant {other} is registered; {code} differs only in case",
                       hint=f"tenant codes are unique regardless of case: use {other}, or another code")


def _write_flag(uow: UnitOfWork, code: str, flag: str, enabled: bool, actor: str) -> bool | None:
    old = uow.conn.execute(sa.select(feature_flag.c.enabled).where(
        feature_flag.c.tenant_code == code, feature_flag.c.flag_key == flag).with_for_update()).scalar()
    now = uow.now()
    if old is None:
        uow.conn.execute(feature_flag.insert().values(tenant_code=code, flag_key=flag, enabled=enabled,
                                                      created_at=now, updated_at=now))
    else:
        uow.conn.execute(feature_flag.update().where(feature_flag.c.tenant_code == code,
                                                     feature_flag.c.flag_key == flag)
                         .values(enabled=enabled, updated_at=now))
    uow.conn.execute(feature_flag_audit.insert().values(tenant_code=code, flag_key=flag, old_enabled=old,
                                                        new_enabled=enabled, actor=actor, created_at=now))
    return old


def set_flag(settings: Settings, code: str, flag: str, value: str, actor: str = "cli") -> dict:
    if value not in ("on", "off"):
        raise ValidationError(f"flag value must be on or off, got {value!r}", hint="hatthasilpa flag set TENANT FLAG on|off")
    if flag not in KNOWN_FLAGS:
        raise ValidationError(f"unknown feature flag {flag!r}", hint=f"known flags: {', '.join(KNOWN_FLAGS)}")
    get_tenant(settings, code)
    with core_uow(settings) as uow:
        old = _write_flag(uow, code, flag, value == "on", actor)
        uow.commit()
    return {"tenant_code": code, "flag": flag, "enabled": value == "on", "previous": old, "changed_at": utcnow().isoformat()}
