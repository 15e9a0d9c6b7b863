"""Check failures as webhook notifications, for teams without Prometheus.

``changes`` compares the critical (tenant, check) pairs failing now — rows found at the
pair's last successful run, read from ``check_latest`` — with those failing at the last
notification; ``payload`` turns the changes into Alertmanager's webhook JSON (version 4),
which Alertmanager receivers and generic HTTP endpoints both read; ``post`` sends it.
Dagster's ``integrity_webhook_sensor`` calls them, so each change is sent once, not once
per run.
"""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass

import sqlalchemy as sa

from lifecycle.db import get_engine
from lifecycle.uow import iso, utcnow

from .model import Severity
from .schema import check_latest

WEBHOOK_URL = "HATTHASILPA_ALERT_WEBHOOK_URL"  # the setting: where check failures are posted, when set
ALERT_NAME = "HatthasilpaCriticalIntegrityViolation"
TIMEOUT_SECONDS = 10


@dataclass(frozen=True)
class Change:
    tenant: str
    check: str
    firing: bool  # True: started failing; False: recovered
    count: int


def failing_critical(monitor_url: str) -> dict[tuple[str, str], int]:
    """Critical (tenant, check) pairs whose last successful run found rows, with the count."""
    query = (sa.select(check_latest.c.tenant_code, check_latest.c.check_id, check_latest.c.success_count)
             .where(check_latest.c.severity == Severity.CRITICAL.value, check_latest.c.success_count > 0))
    with get_engine(monitor_url).connect() as conn:
        return {(t, c): n for t, c, n in conn.execute(query)}


def changes(before: set[tuple[str, str]], now: dict[tuple[str, str], int]) -> list[Change]:
    started = [Change(t, c, True, now[(t, c)]) for t, c in sorted(set(now) - before)]
    recovered = [Change(t, c, False, 0) for t, c in sorted(before - set(now))]
    return started + recovered


def payload(found: list[Change]) -> dict:
    at = iso(utcnow())
    alerts = [{"status": "firing" if c.firing else "resolved",
               "labels": {"alertname": ALERT_NAME, "tenant": c.tenant, "check": c.check,
                          "severity": Severity.CRITICAL.value},
               "annotations": {"summary": (f"{c.check} finds {c.count} rows on tenant {c.tenant}" if c.firing
                                           else f"{c.check} finds no rows on tenant {c.tenant} any more"),
                               "runbook": f"docs/runbook.md#{c.check}"},
               "startsAt": at if c.firing else None, "endsAt": None if c.firing else at}
              for c in found]
    status = "firing" if any(c.firing for c in found) else "resolved"
    return {"version": "4", "status": status, "receiver": "hatthasilpa", "groupLabels": {},
            "commonLabels": {"alertname": ALERT_NAME}, "commonAnnotations": {}, "externalURL": "",
            "alerts": alerts}


def post(url: str, body: dict) -> int:
    """POST the JSON body; returns the HTTP status (raises OSError when the receiver is away)."""
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
        return response.status
