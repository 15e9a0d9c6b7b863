"""``repair plan|approve|apply|show``: guarded repairs, as readable text or envelopes (``--json``)."""

from __future__ import annotations

import json

import reconcile
from reconcile.report import key_text, rows_table

from .base import Context, group, json_flag, whole_number

WIDTH = 110


def _guidance(items: list[dict]) -> list[str]:
    if not items:
        return []
    lines = ["", "no automatic action (guidance):"]
    for g in items:
        lines.append(f"  {g['check']} {key_text(g['key'])}: {g.get('reason') or ''}"[:WIDTH])
        lines.append(f"    → {g['guidance']}"[:WIDTH])
    return lines


def render_plan(data: dict) -> str:
    lines = [f"plan {data['plan_id']} for tenant {data['tenant']}, made by {data['planned_by']}",
             f"hash {data['hash']}", ""]
    lines += [rows_table(data["rows"]) if data["rows"] else "no rows to repair"]
    lines += _guidance(data["guidance"])
    if data.get("incidents"):
        lines.append(f"\nincidents: {', '.join(str(i) for i in data['incidents'])}")
    if data.get("capped_checks"):
        lines.append(f"\nrow cap {data['row_cap']} reached for: {', '.join(data['capped_checks'])} "
                     "(apply this plan, then plan again)")
    lines.append(f"\nnext: another engineer reviews it, then `hatthasilpa repair approve {data['plan_id']} --by NAME`")
    return "\n".join(lines)


def render_approval(data: dict) -> str:
    return (f"plan {data['plan_id']} (tenant {data['tenant']}) approved by {data['approved_by']} at "
            f"{data['approved_at']}\nhash {data['hash']}\n"
            f"next: `hatthasilpa repair apply {data['plan_id']}` (dry run), then with --execute")


def render_apply(data: dict) -> str:
    mode = "EXECUTED" if data["execute"] else "DRY RUN (nothing written; add --execute to apply)"
    lines = [f"plan {data['plan_id']} on tenant {data['tenant']}: {mode}",
             f"approved by {data['approved_by']}, hash {data['hash'][:16]}…", ""]
    lines += [rows_table(data["rows"], outcome=True) if data["rows"] else "no rows left to apply"]
    if data["execute"]:
        lines.append(f"\napplied {data['applied']}, skipped {data['skipped']}, done by another run "
                     f"{data['done_by_another_run']}, already done {data['already_done']}, "
                     f"remaining {data['remaining']}")
        if "recheck" in data:
            counts = ", ".join(f"{c}={n}" for c, n in data["recheck"]["counts"].items())
            lines.append(f"re-check (run {data['recheck']['run_id']}): {counts}")
    else:
        lines.append(f"\nwould apply {data['would_apply']}, would skip {data['would_skip']}, "
                     f"already done {data['already_done']}, remaining {data['remaining']}")
    return "\n".join(lines)


def render_show(data: dict) -> str:
    lines = [f"plan {data['plan_id']} for tenant {data['tenant']}, made by {data['created_by']} at "
             f"{data['created_at']}",
             f"hash {data['hash']}{'' if data['hash_intact'] else '  (CHANGED since it was stored)'}",
             f"checks: {', '.join(data['checks'])}", ""]
    lines += [rows_table(data["rows"]) if data["rows"] else "no rows to repair"]
    lines += _guidance(data["guidance"])
    lines += ["", "incidents:"] + ([f"  {i['id']} {i['check']}: {i['state']} (hatthasilpa incident show {i['id']})"
                                    for i in data.get("incidents", [])] or ["  none"])
    lines += ["", "approvals:"] + ([f"  {a['approved_by']} at {a['approved_at']} (hash {a['hash'][:16]}…)"
                                    for a in data["approvals"]] or ["  none"])
    lines += ["", "audit trail:"]
    for a in data["audit"] or []:
        lines.append(f"  #{a['seq']} {a['check']} {key_text(a['key'])}: {a['outcome']} by {a['actor']} at "
                     f"{a['at']}{' — ' + a['reason'] if a.get('reason') else ''}"[:WIDTH])
        lines.append(f"    before: {json.dumps(a['before'], default=str)}"[:WIDTH])
        if a.get("after"):
            lines.append(f"    after:  {json.dumps(a['after'], default=str)}"[:WIDTH])
    if not data["audit"]:
        lines.append("  nothing applied yet")
    return "\n".join(lines)


def plan(ctx: Context) -> dict:
    a = ctx.args
    data = reconcile.plan(ctx.settings, a.tenant, a.check, row_cap=a.row_cap, actor=a.by or ctx.actor)
    ctx.render(render_plan(data))
    return data


def approve(ctx: Context) -> dict:
    a = ctx.args
    data = reconcile.approve(ctx.settings, a.plan, by=a.by, plan_hash_seen=a.hash, tenant_code=a.tenant)
    ctx.render(render_approval(data))
    return data


def apply(ctx: Context) -> dict:
    a = ctx.args
    data = reconcile.apply(ctx.settings, a.plan, execute=a.execute, max_rows=a.max_rows, tenant_code=a.tenant,
                           actor=ctx.actor, batch_size=a.batch_size)
    ctx.render(render_apply(data))
    return data


def show(ctx: Context) -> dict:
    data = reconcile.show(ctx.settings, ctx.args.plan)
    ctx.render(render_show(data))
    return data


def register(sub) -> None:
    repair = group(sub, "repair", "guarded repairs: plan, approve, apply")
    p = repair.add_parser("plan", help="turn a tenant's current findings into a plan (read-only)")
    p.add_argument("--tenant", required=True)
    p.add_argument("--check", nargs="+", action="extend", help="check ids; default the whole catalogue")
    p.add_argument("--row-cap", type=whole_number, default=1000, help="rows planned per check (default 1000)")
    p.add_argument("--by", help="who makes the plan (default $HATTHASILPA_ACTOR); they may not approve it")
    json_flag(p)
    p.set_defaults(handler=plan)
    p = repair.add_parser("approve", help="record who approved the plan's hash")
    p.add_argument("plan")
    p.add_argument("--by", required=True, help="the approver's name")
    p.add_argument("--hash", help="the hash you reviewed; refused when it is not the plan's")
    p.add_argument("--tenant", help="refuse when the plan is not this tenant's")
    json_flag(p, "text")
    p.set_defaults(handler=approve)
    p = repair.add_parser("apply", help="apply an approved plan (a dry run unless --execute)")
    p.add_argument("plan")
    p.add_argument("--execute", action="store_true", help="write the changes; without it nothing is written")
    p.add_argument("--max-rows", type=whole_number, help="apply at most N rows in this run")
    p.add_argument("--batch-size", type=whole_number, default=100, help="rows per transaction (default 100)")
    p.add_argument("--tenant", help="refuse when the plan is not this tenant's")
    json_flag(p)
    p.set_defaults(handler=apply)
    p = repair.add_parser("show", help="a plan, its approvals and its audit trail")
    p.add_argument("plan")
    json_flag(p, "text")
    p.set_defaults(handler=show)
