"""``hatthasilpa check list|run``: the logic behind the CLI verbs, and their readable tables.

Handlers in ``lifecycle.cli`` call these; each returns the envelope's ``data`` and a
rendering for readable output. Progress goes to stderr, one line per check (or an
updating line on a terminal), so stdout stays a table or exactly one JSON object.
"""

from __future__ import annotations

import os

import sys
import textwrap

from lifecycle.errors import ChecksFailed, ValidationError

from . import catalogue
from .model import Severity
from .runner import checks_settings, run_checks

WIDTH = 100


def list_checks() -> dict:
    return {"checks": [{"id": c.id, "severity": c.severity.value, "family": c.family.value,
                        "scope": c.scope.value, "fast": c.fast, "description": c.description,
                        "thresholds": {t.name: t.default.total_seconds() for t in c.thresholds}}
                       for c in catalogue.all_checks()]}


def render_list(data: dict) -> str:
    lines = [f"{'ID':<33} {'SEVERITY':<8} {'FAMILY':<9} {'FAST':<4} DESCRIPTION"]
    indent = 33 + 1 + 8 + 1 + 9 + 1 + 4 + 1
    for c in data["checks"]:
        wrapped = textwrap.wrap(c["description"], WIDTH - indent) or [""]
        lines.append(f"{c['id']:<33} {c['severity']:<8} {c['family']:<9} {'yes' if c['fast'] else 'no':<4} "
                     f"{wrapped[0]}")
        lines += [" " * indent + more for more in wrapped[1:]]
    return "\n".join(lines)


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


def run(tenants: list[str] | None, check_ids: list[str] | None, *, fast_only: bool = False,
        sample_size: int = 20, timeout_seconds: float = 60.0, fail_on: str | None = None, gx: bool = False,
        progress=None) -> dict:
    if fail_on is not None and fail_on not in [s.value for s in Severity]:
        raise ValidationError(f"--fail-on must be one of critical, error, warning; got {fail_on!r}")
    if not 0 < sample_size <= 1000:
        raise ValidationError("--sample must be between 1 and 1000")
    catalogue.select(check_ids)  # unknown ids are bad input before anything runs
    settings = checks_settings()
    report = run_checks(settings, tenants, check_ids, fast_only=fast_only, sample_size=sample_size,
                        timeout_seconds=timeout_seconds, progress=progress)
    data = report.to_dict()
    if gx:
        from . import gx as gx_suites

        gx_report = gx_suites.run_suites(settings, tenants or data["tenants"] or None)
        data["results"] += gx_report["results"]
        data["gx"] = {k: v for k, v in gx_report.items() if k != "results"}
        data["violations"] = sum(r["count"] for r in data["results"])
        data["errors"] = sum(1 for r in data["results"] if r["error"])
    gateway = os.environ.get("HATTHASILPA_PUSHGATEWAY_URL")
    if gateway:  # SPEC §8: a run also pushes its tenants' metrics
        from . import metrics

        for tenant in data["tenants"]:
            metrics.push(settings, gateway, tenant)
        data["pushed_to"] = gateway
    if fail_on is not None:
        _fail_on(data, Severity(fail_on))
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
    lines = [f"{'TENANT':<12} {'CHECK':<33} {'SEVERITY':<8} {'COUNT':>6} {'SECONDS':>8}  STATUS"]
    for r in data["results"]:
        status = "ERROR: " + r["error"] if r["error"] else ("FOUND" if r["count"] else "ok")
        line = f"{r['tenant'][:12]:<12} {r['check'][:33]:<33} {r['severity']:<8} {r['count']:>6} " \
               f"{r['duration_seconds']:>8.3f}  {status}"
        lines.append(line[:WIDTH])
        for row in r["sample"][:3] if r["count"] else []:
            shown = ", ".join(f"{k}={v}" for k, v in row.items() if k != "reason")
            lines.append(f"    {row.get('reason', '')}: {shown}"[:WIDTH])
        if r["count"] > 3:
            lines.append(f"    … {r['count'] - 3} more")
    lines.append("")
    lines.append(f"run {data['run_id']}: {len(data['results'])} results, {data['violations']} violations, "
                 f"{data['errors']} errors, tenants: {', '.join(data['tenants']) or '-'}")
    return "\n".join(lines)
