"""``check list|run`` and ``metrics serve``: the monitor from the command line.

Readable tables by default, the envelope with ``--json``. ``check run`` shows its progress
on stderr (one line per check, an updating line on a terminal), so stdout stays a table or
exactly one JSON object.
"""

from __future__ import annotations

import sys
import textwrap

from checks import catalogue, metrics
from checks.errors import ChecksFailed
from checks.model import Severity
from checks.report import findings_table, table
from checks.runner import DEFAULT_TIMEOUT_SECONDS, run_checks
from lifecycle.errors import ValidationError
from reconcile.metrics import SOURCES

from .. import settings as app_settings
from .base import Context, group, json_flag, port_number, positive_seconds, whole_number

WIDTH = 100


def list_checks() -> dict:
    return {"checks": [{"id": c.id, "severity": c.severity.value, "family": c.family.value,
                        "scope": c.scope.value, "fast": c.fast, "interval_seconds": int(c.cadence),
                        "description": c.description,
                        "thresholds": {t.name: t.default.total_seconds() for t in c.thresholds}}
                       for c in catalogue.all_checks()]}


def render_list(data: dict) -> str:
    rows = []
    for c in data["checks"]:
        wrapped = textwrap.wrap(c["description"], WIDTH - 60) or [""]
        rows.append([c["id"], c["severity"], c["family"], "yes" if c["fast"] else "no", wrapped[0]])
        rows += [["", "", "", "", more] for more in wrapped[1:]]
    return table(["ID", "SEVERITY", "FAMILY", "FAST", "DESCRIPTION"], rows)


class StderrProgress:
    def __init__(self, stream=None) -> None:
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def __call__(self, tenant: str, check: str, done: int, total: int, result) -> None:
        if result is None:
            if self.tty:
                self.stream.write(f"\r\033[K[{done + 1}/{total}] {tenant} {check} …")
                self.stream.flush()
            return
        status = f"ERROR {result.error}" if result.error else f"{result.count} found"
        line = f"[{done}/{total}] {tenant} {check}: {status} ({result.duration_seconds:.3f}s)"
        self.stream.write(("\r\033[K" if self.tty else "") + line[:WIDTH] + ("" if self.tty else "\n"))
        if self.tty and done == total:
            self.stream.write("\n")
        self.stream.flush()


def check_list(ctx: Context) -> dict:
    data = list_checks()
    ctx.render(render_list(data))
    return data


def check_run(ctx: Context) -> dict:
    a = ctx.args
    if not 0 < a.sample <= 1000:
        raise ValidationError("--sample must be between 1 and 1000", hint="e.g. --sample 20")
    catalogue.select(a.check)  # unknown ids are bad input before anything runs
    settings = app_settings.for_checks()
    report = run_checks(settings, a.tenant, a.check, fast_only=a.fast, sample_size=a.sample,
                        timeout_seconds=a.timeout, progress=None if a.json else StderrProgress(),
                        full_reconcile=a.full_reconcile)
    data = report.to_dict()
    if a.gx:
        from checks import gx  # Great Expectations loads only when asked for

        gx_report = gx.run_suites(settings, a.tenant or data["tenants"] or None)
        data["results"] += gx_report["results"]
        data["gx"] = {k: v for k, v in gx_report.items() if k != "results"}
        data["violations"] = sum(r["count"] or 0 for r in data["results"])
        data["errors"] = sum(1 for r in data["results"] if r["error"])
    gateway = app_settings.pushgateway()
    if gateway:  # a run also pushes its tenants' metrics (docs/operations.md)
        data["pushed_to"] = gateway
        data["push_failures"] = metrics.push(settings, gateway, data["tenants"], SOURCES)
    if a.fail_on is not None:
        _fail_on(data, Severity(a.fail_on))
    ctx.render(render_run(data))
    return data


def _fail_on(data: dict, threshold: Severity) -> None:
    ranks = {s.value: s.rank for s in Severity}
    failing = [r for r in data["results"]
               if r["error"] or (r["count"] and ranks.get(r["severity"], 0) >= threshold.rank)]
    if failing:
        names = sorted({f"{r['tenant']}/{r['check']}" for r in failing})
        raise ChecksFailed(f"{len(failing)} check result(s) at or above {threshold.value} or in error: "
                           f"{', '.join(names[:10])}{' …' if len(names) > 10 else ''}",
                           hint="see `hatthasilpa check run` for the rows; `repair plan` proposes fixes",
                           run_id=data["run_id"], failing=names)


def render_run(data: dict) -> str:
    return "\n".join([findings_table(data["results"], samples=3), "",
                      f"run {data['run_id']}: {len(data['results'])} results, {data['violations']} violations, "
                      f"{data['errors']} errors, tenants: {', '.join(data['tenants']) or '-'}"])


def metrics_serve(ctx: Context) -> dict:
    a = ctx.args
    try:
        metrics.serve(ctx.settings, a.host, a.port, sources=SOURCES)
    except OSError as exc:
        raise ValidationError(f"cannot listen on {a.host}:{a.port}: {exc.strerror}",
                              hint="pick a free port with --port, or stop whatever holds it") from exc
    ctx.render("metrics server stopped")
    return {"host": a.host, "port": a.port, "stopped": True}


def register(sub) -> None:
    check = group(sub, "check", "integrity checks")
    p = check.add_parser("list", help="the check catalogue")
    json_flag(p)
    p.set_defaults(handler=check_list)
    p = check.add_parser("run", help="run checks (exit 0 when they ran, findings or not; see --fail-on)")
    p.add_argument("--tenant", action="append", help="a tenant (repeatable); default every registered tenant")
    p.add_argument("--check", nargs="+", action="extend", help="check ids; default the whole catalogue")
    p.add_argument("--fast", action="store_true", help="only the checks that touch live rows")
    p.add_argument("--gx", action="store_true", help="also run the Great Expectations suites")
    p.add_argument("--sample", type=whole_number, default=20, help="rows kept per check (default 20)")
    p.add_argument("--timeout", type=positive_seconds, default=DEFAULT_TIMEOUT_SECONDS,
                   help=f"seconds per check (default {DEFAULT_TIMEOUT_SECONDS:.0f}); a check past it is an error")
    p.add_argument("--full-reconcile", action="store_true",
                   help="compute the serial summaries from both registries instead of their digests "
                        "(a check errors where a digest drifted)")
    p.add_argument("--fail-on", choices=[s.value for s in Severity],
                   help="exit 3 (CHECKS_FAILED) on a finding at or above this severity, or a check error")
    json_flag(p)
    p.set_defaults(handler=check_run)

    metrics_group = group(sub, "metrics", "Prometheus metrics")
    p = metrics_group.add_parser("serve", help="serve /metrics from the monitor store until SIGTERM")
    p.add_argument("--port", type=port_number, default=9464)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0 for every interface)")
    json_flag(p, "a line of text when stopped")
    p.set_defaults(handler=metrics_serve)
