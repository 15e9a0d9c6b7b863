"""``db upgrade``, ``tenant add|list``, ``flag set``, ``doctor``: the stores and their tenants."""

from __future__ import annotations

from lifecycle import registry

from .. import doctor, stores
from .base import Context, group


def db_upgrade(ctx: Context) -> dict:
    return stores.upgrade_all(ctx.settings)


def db_rebuild_digest(ctx: Context) -> dict:
    from lifecycle import digest

    return digest.rebuild_tenant(ctx.settings, ctx.args.tenant)


def tenant_add(ctx: Context) -> dict:
    a = ctx.args
    return registry.add_tenant(ctx.settings, a.code, name=a.name, is_test=a.test, actor=ctx.actor)


def tenant_list(ctx: Context) -> dict:
    return {"tenants": registry.list_tenants(ctx.settings)}


def flag_set(ctx: Context) -> dict:
    a = ctx.args
    return registry.set_flag(ctx.settings, a.tenant, a.flag, a.value, actor=ctx.actor)


def run_doctor(ctx: Context) -> dict:
    return doctor.doctor(ctx.settings, ctx.args.tenant)


def register(sub) -> None:
    db = group(sub, "db", "database schema")
    db.add_parser("upgrade", help="migrate core, monitor and every tenant DB").set_defaults(handler=db_upgrade)
    p = db.add_parser("rebuild-digest", help="recompute a tenant's serial digests (tenant and core) from the "
                                              "registries, after writes that bypassed their triggers")
    p.add_argument("--tenant", required=True)
    p.set_defaults(handler=db_rebuild_digest)

    tenant = group(sub, "tenant", "tenants")
    p = tenant.add_parser("add", help="register a tenant in core and migrate its DB")
    p.add_argument("code")
    p.add_argument("--name")
    p.add_argument("--test", action="store_true", help="a test tenant (TEMP serials allowed)")
    p.set_defaults(handler=tenant_add)
    tenant.add_parser("list", help="registered tenants").set_defaults(handler=tenant_list)

    flag = group(sub, "flag", "feature flags")
    p = flag.add_parser("set", help="turn a tenant's flag on or off")
    p.add_argument("tenant")
    p.add_argument("flag")
    p.add_argument("value", help="on or off")
    p.set_defaults(handler=flag_set)

    p = sub.add_parser("doctor", help="check every prerequisite of the lifecycle operations (exit 3 when one fails)")
    p.add_argument("--tenant", help="one tenant; default every registered tenant")
    p.set_defaults(handler=run_doctor)
