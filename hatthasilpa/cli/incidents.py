"""``incident list|show|ack|mute|unmute`` and ``audit verify``: tables by default, envelopes with ``--json``."""

from __future__ import annotations

import json

from checks import audit_log, incident_actions
from checks.incidents import IncidentState
from checks.report import table
from reconcile.plans import plans_of

from .base import Context, group, json_flag, whole_number

WIDTH = 110


def _when(stamp: str | None) -> str:
    return stamp[:16].replace("T", " ") if stamp else ""


def render_list(data: dict) -> str:
    if not data["incidents"]:
        return "no incidents"
    rows = []
    for i in data["incidents"]:
        note = (f"muted until {_when(i['muted_until'])}" if i["muted_until"]
                else f"resolved {_when(i['resolved_at'])}" if i["resolved_at"] else "")
        rows.append([i["id"], i["tenant"], i["check"], i["severity"], i["state"], i["count"], _when(i["opened_at"]),
                     i["acknowledged_by"] or "", note])
    return table(["ID", "TENANT", "CHECK", "SEVERITY", "STATE", "COUNT", "OPENED", "ACK BY", ""], rows,
                 right=["ID", "COUNT"], width=None)


def render_one(data: dict) -> str:
    lines = [f"incident {data['id']}: {data['tenant']} / {data['check']} ({data['severity']}) — {data['state']}",
             f"opened {data['opened_at']}, last seen {data['last_seen_at']} (run {data['last_run_id']}), "
             f"{data['count']} rows"]
    if data.get("acknowledged_by"):
        lines.append(f"acknowledged by {data['acknowledged_by']} at {data['acknowledged_at']}")
    if data.get("muted_until"):
        lines.append(f"muted by {data['muted_by']} until {data['muted_until']}")
    if data.get("resolved_at"):
        by = f" by the re-check of repair plan {data['resolved_by_plan']}" if data.get("resolved_by_plan") else ""
        lines.append(f"resolved at {data['resolved_at']}{by}")
    return "\n".join(lines)


def render_show(data: dict) -> str:
    lines = [render_one(data), ""]
    if "keys" in data:
        tracked = data["keys_tracked"]
        lines.append(f"keys ({tracked} tracked{', capped' if tracked >= 1000 else ''}; rows at the last run: "
                     f"{data['count']}):")
        lines += ["  " + l for l in table(
            ["KEY", "FIRST SEEN", "LAST SEEN", "RETURNS", "IN LAST RUN"],
            [[json.dumps(k["key"], sort_keys=True), k["first_seen"][:19], k["last_seen"][:19], k["returns"],
              "yes" if k["in_last_run"] else "no"] for k in data["keys"]], right=["RETURNS"]).split("\n")] \
            if data["keys"] else ["  none"]
        lines += ["", "events:"]
        for e in data["events"]:
            extra = f" — {e['note']}" if e.get("note") else ""
            extra += f" (plan {e['plan_id']})" if e.get("plan_id") else ""
            lines.append(f"  {e['at'][:19]} {e['actor']}: {e['action']} {e['from'] or '-'} → {e['to']}{extra}"[:WIDTH])
        lines += ["", "repair plans:"] + ([f"  {p['plan_id']} by {p['created_by']} at {p['created_at'][:19]} "
                                          f"(hatthasilpa repair show {p['plan_id']})" for p in data["plans"]]
                                         or ["  none"])
    return "\n".join(lines)


def list_(ctx: Context) -> dict:
    a = ctx.args
    data = incident_actions.list_incidents(ctx.settings.monitor_url, a.tenant, a.check, a.state, a.limit)
    ctx.render(render_list(data))
    return data


def show(ctx: Context) -> dict:
    data = incident_actions.show(ctx.settings.monitor_url, ctx.args.id)
    data["plans"] = plans_of(ctx.settings, data["id"])
    ctx.render(render_show(data))
    return data


def ack(ctx: Context) -> dict:
    a = ctx.args
    data = incident_actions.ack(ctx.settings.monitor_url, a.id, a.by, a.note)
    ctx.render(render_one(data))
    return data


def mute(ctx: Context) -> dict:
    a = ctx.args
    data = incident_actions.mute(ctx.settings.monitor_url, a.id, a.by, getattr(a, "for"), a.note)
    ctx.render(render_one(data))
    return data


def unmute(ctx: Context) -> dict:
    a = ctx.args
    data = incident_actions.unmute(ctx.settings.monitor_url, a.id, a.by, a.note)
    ctx.render(render_one(data))
    return data


def audit_verify(ctx: Context) -> dict:
    data = audit_log.verify(ctx.settings.monitor_url)
    ctx.render(f"audit log intact: {data['entries']} entries checked at {data['verified_at']}")
    return data


def register(sub) -> None:
    incident = group(sub, "incident", "incidents: the life of each (tenant, check) finding")
    p = incident.add_parser("list", help="incidents, newest first")
    p.add_argument("--tenant")
    p.add_argument("--check")
    p.add_argument("--state", choices=[s.value for s in IncidentState])
    p.add_argument("--limit", type=whole_number, default=200, help="at most N incidents (default 200)")
    json_flag(p)
    p.set_defaults(handler=list_)
    p = incident.add_parser("show", help="an incident with its keys, events and repair plans")
    p.add_argument("id")
    json_flag(p, "text")
    p.set_defaults(handler=show)
    for verb, handler, text in (("ack", ack, "take ownership of an incident"),
                                ("unmute", unmute, "end a mute now")):
        p = incident.add_parser(verb, help=text)
        p.add_argument("id")
        p.add_argument("--by", required=True, help="your name")
        p.add_argument("--note", help="why (kept in the incident's events and the audit log)")
        json_flag(p, "text")
        p.set_defaults(handler=handler)
    p = incident.add_parser("mute", help="hold an incident's alerts for a while (at most 30d)")
    p.add_argument("id")
    p.add_argument("--by", required=True, help="your name")
    p.add_argument("--for", required=True, metavar="DURATION", help="e.g. 30m, 4h, 2d; at most 30d")
    p.add_argument("--note", help="why (kept in the incident's events and the audit log)")
    json_flag(p, "text")
    p.set_defaults(handler=mute)

    audit = group(sub, "audit", "the hash-chained audit log")
    p = audit.add_parser("verify", help="walk the chain; exit 3 (AUDIT_TAMPERED) at the first broken entry")
    json_flag(p, "text")
    p.set_defaults(handler=audit_verify)
