"""``demo``: build the demo factory on the configured stores and run the monitoring plan once."""

from __future__ import annotations

import sys

from checks import incident_actions
from checks.incidents import IncidentState

from .base import Context
from .incidents import render_list


def _progress(message: str) -> None:
    print(message, file=sys.stderr)


def run_demo(ctx: Context) -> dict:
    from checks.trends import findings_trend  # pandas, like Dagster, loads only for the demo
    from checks.volumes import last_complete_hour
    from pipelines import local

    from .. import demo
    from . import trends

    data = demo.build(ctx.settings, reset_first=ctx.args.reset)
    data["findings"] = local.run_monitoring_plan(ctx.settings, progress=_progress)
    data["incidents"] = [i for i in incident_actions.list_incidents(ctx.settings.monitor_url,
                                                                    tenant=demo.LEGACY)["incidents"]
                         if i["state"] != IncidentState.RESOLVED.value]
    hour = last_complete_hour()
    for story in demo.volume_history(ctx.settings, hour):
        _progress(f"demo: generated volume history, {story}")
    data["volumes"] = demo.judge_volumes(ctx.settings, hour)
    if ctx.args.summary:
        ctx.text = "\n\n".join([demo.render(data), local.render(data["findings"]),
                                 f"open incidents of {demo.LEGACY}:\n" + render_list({"incidents": data["incidents"]}),
                                 demo.render_volumes(data["volumes"]),
                                 "incidents by week, every tenant:\n" + trends.render_findings(
                                     findings_trend(ctx.settings, weeks=1)), demo.NEXT_STEPS])
    return data


def register(sub) -> None:
    p = sub.add_parser("demo", help="build a demo factory on the configured stores")
    p.add_argument("--reset", action="store_true", help="delete the embedded SQLite demo files first")
    p.add_argument("--summary", action="store_true", help="print a readable summary instead of the JSON envelope")
    p.set_defaults(handler=run_demo)
