"""``hatthasilpa repair plan|approve|apply|show``: readable renderings of the repair verbs.

The handlers in ``lifecycle.cli`` call ``reconcile`` and these functions; ``--json``
prints the envelope instead.
"""

from __future__ import annotations

import json

WIDTH = 110


def _key(key: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in key.items())


def _rows_table(rows: list[dict], outcome: bool = False) -> list[str]:
    head = f"{'SEQ':>4}  {'CHECK':<28} {'ACTION':<22} {'KEY':<28}" + ("  OUTCOME" if outcome else "  REASON")
    lines = [head]
    for r in rows:
        tail = f"{r['outcome']}{': ' + r['reason'] if r.get('reason') and r['outcome'] != 'applied' else ''}" \
            if outcome else (r.get("expected", {}).get("finding") or {}).get("reason", "")
        lines.append(f"{r['seq']:>4}  {r['check'][:28]:<28} {r['action'][:22]:<22} {_key(r['key'])[:28]:<28}  "
                     f"{tail}"[:WIDTH])
    return lines


def _guidance(items: list[dict]) -> list[str]:
    if not items:
        return []
    lines = ["", "no automatic action (guidance):"]
    for g in items:
        lines.append(f"  {g['check']} {_key(g['key'])}: {g.get('reason') or ''}"[:WIDTH])
        lines.append(f"    → {g['guidance']}"[:WIDTH])
    return lines


def render_plan(data: dict) -> str:
    lines = [f"plan {data['plan_id']} for tenant {data['tenant']}",
             f"hash {data['hash']}", ""]
    lines += _rows_table(data["rows"]) if data["rows"] else ["no rows to repair"]
    lines += _guidance(data["guidance"])
    if data.get("capped_checks"):
        lines.append(f"\nrow cap {data['row_cap']} reached for: {', '.join(data['capped_checks'])} "
                     "(apply this plan, then plan again)")
    lines.append(f"\nnext: review, then `hatthasilpa repair approve {data['plan_id']} --by NAME`")
    return "\n".join(lines)


def render_approval(data: dict) -> str:
    return (f"plan {data['plan_id']} (tenant {data['tenant']}) approved by {data['approved_by']} at "
            f"{data['approved_at']}\nhash {data['hash']}\n"
            f"next: `hatthasilpa repair apply {data['plan_id']}` (dry run), then with --execute")


def render_apply(data: dict) -> str:
    mode = "EXECUTED" if data["execute"] else "DRY RUN (nothing written; add --execute to apply)"
    lines = [f"plan {data['plan_id']} on tenant {data['tenant']}: {mode}",
             f"approved by {data['approved_by']}, hash {data['hash'][:16]}…", ""]
    lines += _rows_table(data["rows"], outcome=True) if data["rows"] else ["no rows left to apply"]
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
    lines += _rows_table(data["rows"]) if data["rows"] else ["no rows to repair"]
    lines += _guidance(data["guidance"])
    lines += ["", "approvals:"] + ([f"  {a['approved_by']} at {a['approved_at']} (hash {a['hash'][:16]}…)"
                                    for a in data["approvals"]] or ["  none"])
    lines += ["", "audit trail:"]
    for a in data["audit"] or []:
        lines.append(f"  #{a['seq']} {a['check']} {_key(a['key'])}: {a['outcome']} by {a['actor']} at {a['at']}"
                     f"{' — ' + a['reason'] if a.get('reason') else ''}"[:WIDTH])
        lines.append(f"    before: {json.dumps(a['before'], default=str)}"[:WIDTH])
        if a.get("after"):
            lines.append(f"    after:  {json.dumps(a['after'], default=str)}"[:WIDTH])
    if not data["audit"]:
        lines.append("  nothing applied yet")
    return "\n".join(lines)
