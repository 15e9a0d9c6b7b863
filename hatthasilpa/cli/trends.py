"""``trends``: a tenant's hourly volumes against their seasonal bands, and its incidents week by week.

    hatthasilpa trends --tenant T [--kind K] [--weeks N] [--hours H] [--png FILE] [--json]

Without ``--kind`` one row per kind for the last complete hour; with it, the last ``--hours``
hours of that kind. ``--png`` also draws the series and its band (matplotlib, the ``plots``
extra). The incidents follow: new, resolved and still open per week, then each (tenant,
check)'s incidents with their mean and longest time to resolve.
"""

from __future__ import annotations

from pathlib import Path

from checks.report import table
from lifecycle.db import check_tenant_code
from lifecycle.errors import ValidationError

from .. import settings as app_settings
from .base import Context, json_flag, whole_number


def _number(value, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def render_volumes(data: dict, by_kind: bool) -> str:
    rows = []
    for kind, points in data["series"].items():
        for p in (points if by_kind else points[-1:]):
            band = "-" if p["low"] is None else f"{p['low']:.1f} – {p['high']:.1f}"
            rows.append([p["hour"][:16].replace("T", " ") if by_kind else kind, _number(p["value"]),
                         _number(p["expected"]), band, _number(p["score"], 2), p["status"]])
    head = "HOUR" if by_kind else "KIND"
    return table([head, "VALUE", "EXPECTED", "BAND", "SCORE", "STATUS"], rows)


def _hours(seconds) -> str:
    return "-" if seconds is None else f"{seconds / 3600:.1f} h"


def render_findings(data: dict) -> str:
    """The weekly summary of incidents, then each (tenant, check)'s incidents and times to resolve."""
    weeks = [[w["week_start"][:10], w["new"], w["resolved"], w["open"]] for w in data["weekly"]]
    pairs = [[p["tenant"], p["check"], p["incidents"], p["resolved"], p["open"],
              _hours(p["mean_seconds_to_resolve"]), _hours(p["max_seconds_to_resolve"])] for p in data["pairs"]]
    total = sum(p["incidents"] for p in data["pairs"])
    resolved = sum(p["resolved"] for p in data["pairs"])
    seconds = sum(p["mean_seconds_to_resolve"] * p["resolved"] for p in data["pairs"] if p["resolved"])
    mean = _hours(seconds / resolved if resolved else None)
    return "\n".join([
        table(["WEEK", "NEW", "RESOLVED", "STILL OPEN"], weeks), "",
        table(["TENANT", "CHECK", "INCIDENTS", "RESOLVED", "OPEN", "MEAN TO RESOLVE", "LONGEST"], pairs)
        if pairs else "no incidents in these weeks",
        f"{total} incidents, {resolved} resolved (mean time to resolve {mean})"])


def plot(data: dict, path: Path) -> None:
    from checks import baselines

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ValidationError("--png needs matplotlib",
                              hint="pip install 'hatthasilpa-integrity[plots]', or leave out --png") from None
    kinds = list(data["series"])
    figure, axes = plt.subplots(len(kinds), 1, figsize=(11, 2.2 * len(kinds)), squeeze=False, sharex=True)
    for ax, kind in zip(axes[:, 0], kinds):
        points = data["series"][kind]
        hours = [p["hour"][5:16].replace("T", " ") for p in points]
        x = range(len(points))
        ax.plot(x, [p["value"] for p in points], color="black", linewidth=1, label="observed")
        ax.fill_between(x, [p["low"] if p["low"] is not None else float("nan") for p in points],
                        [p["high"] if p["high"] is not None else float("nan") for p in points],
                        color="tab:blue", alpha=0.2, label="expected band")
        flagged = [i for i, p in enumerate(points) if p["status"] == baselines.ANOMALY]
        ax.scatter(flagged, [points[i]["value"] for i in flagged], color="tab:red", zorder=3, label="anomaly")
        ax.set_ylabel(kind, fontsize=8)
        ax.set_xticks(list(x)[:: max(len(points) // 12, 1)])
        ax.set_xticklabels(hours[:: max(len(points) // 12, 1)], fontsize=7, rotation=30)
    axes[0, 0].set_title(f"{data['tenant']}: hourly volumes and their bands ({data['weeks']} weeks of baseline)")
    axes[0, 0].legend(fontsize=7, loc="upper left")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def trends_command(ctx: Context) -> dict:
    from checks import trends, volumes  # pandas: loaded when the command runs, not at every CLI start

    a = ctx.args
    check_tenant_code(a.tenant)
    if a.kind is not None and a.kind not in volumes.KIND_IDS:
        raise ValidationError(f"unknown kind {a.kind!r}", hint=f"one of: {', '.join(volumes.KIND_IDS)}")
    if not 1 <= a.hours <= 24 * 7 * 8:
        raise ValidationError("--hours must be between 1 and 1344", hint="e.g. --hours 48")
    options = app_settings.volume_options(weeks=a.weeks)
    kinds = [a.kind] if a.kind else list(volumes.KIND_IDS)
    data = trends.volume_trend(ctx.settings, a.tenant, kinds, options, hours=a.hours if a.kind else 1)
    data["findings"] = trends.findings_trend(ctx.settings, a.tenant, weeks=options.weeks)
    if a.png:
        if a.kind is None:
            data = {**data, **trends.volume_trend(ctx.settings, a.tenant, kinds, options, hours=a.hours)}
        plot(data, Path(a.png))
        data["png"] = str(a.png)
    ctx.render("\n\n".join([render_volumes(data, by_kind=a.kind is not None), render_findings(data["findings"])]
                           + ([f"plot written to {a.png}"] if a.png else [])))
    return data


def register(sub) -> None:
    p = sub.add_parser("trends", help="a tenant's hourly volumes against their seasonal bands, and incidents by week")
    p.add_argument("--tenant", required=True)
    p.add_argument("--kind", help="one kind (docs/volumes.md lists them); default every kind's last hour")
    p.add_argument("--weeks", type=whole_number, help="weeks of baseline (default $HATTHASILPA_VOLUME_WEEKS or 8)")
    p.add_argument("--hours", type=whole_number, default=24, help="hours shown with --kind or drawn (default 24)")
    p.add_argument("--png", help="also write a plot of the series and bands (needs matplotlib)")
    json_flag(p)
    p.set_defaults(handler=trends_command)
