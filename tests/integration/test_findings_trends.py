"""Findings trends from the incidents: the weekly summary and the times to resolve, counted in SQL,
and the incident counters the dashboard's weekly panel reads."""

from __future__ import annotations

import datetime as dt

from prometheus_client import generate_latest

from checks import metrics, trends
from checks.schema import incident
from hatthasilpa.cli.trends import render_findings
from lifecycle.db import get_engine
from tests.incident_support import record, result

NOW = dt.datetime(2026, 11, 30, 0, 0, tzinfo=dt.timezone.utc)  # three weeks back: Nov 9, 16 and 23


def day(d: int, hour: int = 0) -> dt.datetime:
    return dt.datetime(2026, 11, 1, hour, tzinfo=dt.timezone.utc) + dt.timedelta(days=d - 1)


def _incidents(url: str, *rows: tuple) -> None:
    """Incidents as the monitor keeps them: (tenant, check, opened_at, resolved_at or None)."""
    with get_engine(url).begin() as conn:
        for n, (tenant, check, opened, resolved) in enumerate(rows, start=1):
            conn.execute(incident.insert().values(
                tenant_code=tenant, check_id=check, severity="critical", state="resolved" if resolved else "open",
                count=0 if resolved else 3, opened_at=opened, opened_run_id=n, last_run_id=n, last_seen_at=opened,
                resolved_at=resolved, resolve_seconds=(resolved - opened).total_seconds() if resolved else None))


def test_weekly_summary_and_times_to_resolve_come_from_the_incidents(stores):
    _incidents(stores.settings.monitor_url,
               ("atelier", "orphan_token", day(1, 9), day(1, 10)),  # before the window: not counted
               ("atelier", "orphan_token", day(2), day(10)),  # opened before the window, resolved in week 1
               ("atelier", "orphan_token", day(17, 8), day(17, 10)),  # new and resolved in week 2
               ("atelier", "duplicate_serial", day(20), None),  # new in week 2, still open
               ("atelier", "session_on_dead_token", day(28), day(32)),  # new in week 3, resolved after NOW
               ("sandbox", "orphan_token", day(25), None))  # another tenant
    data = trends.findings_trend(stores.settings, "atelier", weeks=3, now=NOW)
    assert [(w["week_start"][:10], w["new"], w["resolved"], w["open"]) for w in data["weekly"]] == [
        ("2026-11-09", 0, 1, 0), ("2026-11-16", 2, 1, 1), ("2026-11-23", 1, 0, 2)]
    pairs = {p["check"]: p for p in data["pairs"]}
    assert pairs["orphan_token"] == {"tenant": "atelier", "check": "orphan_token", "incidents": 2, "resolved": 2,
                                     "open": 0, "mean_seconds_to_resolve": (8 * 86400 + 7200) / 2,
                                     "max_seconds_to_resolve": 8 * 86400.0}
    assert (pairs["duplicate_serial"]["open"], pairs["duplicate_serial"]["mean_seconds_to_resolve"]) == (1, None)
    assert pairs["session_on_dead_token"]["resolved"] == 0  # resolved only after the window's end
    assert [(i["check"], i["seconds_to_resolve"]) for i in data["incidents"]] == [
        ("orphan_token", 8 * 86400.0), ("orphan_token", 7200.0), ("duplicate_serial", None),
        ("session_on_dead_token", 4 * 86400.0)]
    every = trends.findings_trend(stores.settings, weeks=3, now=NOW)
    assert [w["new"] for w in every["weekly"]] == [0, 2, 2]
    text = render_findings(data)
    assert "STILL OPEN" in text and "MEAN TO RESOLVE" in text
    assert "4 incidents, 2 resolved (mean time to resolve 97.0 h)" in text


def test_a_recorded_run_shows_in_the_daily_series_the_week_and_the_counters(stores):
    record(stores.settings.monitor_url, result("orphan_token", tokens=[1, 2], tenant="atelier"),
           result("duplicate_serial", tenant="atelier"))
    data = trends.findings_trend(stores.settings, "atelier", weeks=1)
    assert [(d["check"], d["count"]) for d in data["daily"]] == [("duplicate_serial", 0), ("orphan_token", 2)]
    assert [(w["new"], w["resolved"], w["open"]) for w in data["weekly"]] == [(1, 0, 1)]
    assert [i["check"] for i in data["incidents"]] == ["orphan_token"]
    record(stores.settings.monitor_url, result("orphan_token", tenant="atelier"))
    assert [(w["new"], w["resolved"], w["open"]) for w in
            trends.findings_trend(stores.settings, "atelier", weeks=1)["weekly"]] == [(1, 1, 0)]

    text = generate_latest(metrics.registry_for(stores.settings)).decode()
    samples = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("hatthasilpa_integrity_incidents_")}
    assert samples == {  # every pair that ran has both counters, 0 before its first incident
        'hatthasilpa_integrity_incidents_opened_total{check="duplicate_serial",tenant="atelier"}': 0.0,
        'hatthasilpa_integrity_incidents_opened_total{check="orphan_token",tenant="atelier"}': 1.0,
        'hatthasilpa_integrity_incidents_resolved_total{check="duplicate_serial",tenant="atelier"}': 0.0,
        'hatthasilpa_integrity_incidents_resolved_total{check="orphan_token",tenant="atelier"}': 1.0}
