"""The dashboard and alert rules speak exactly the metric names of docs/operations.md."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTED_METRICS = {
    "hatthasilpa_integrity_violations", "hatthasilpa_integrity_check_duration_seconds",
    "hatthasilpa_integrity_check_last_success_timestamp_seconds", "hatthasilpa_integrity_check_errors_total",
    "hatthasilpa_integrity_check_interval_seconds", "hatthasilpa_serial_outbox_pending", "hatthasilpa_serial_outbox_parked",
    "hatthasilpa_serial_outbox_oldest_pending_age_seconds",
    "hatthasilpa_repairs_applied_total", "hatthasilpa_repair_rows_skipped_total",
    "hatthasilpa_integrity_incident_open", "hatthasilpa_integrity_incident_muted",
    "hatthasilpa_integrity_time_to_acknowledge_seconds", "hatthasilpa_integrity_time_to_resolve_seconds",
    "hatthasilpa_integrity_incidents_opened_total", "hatthasilpa_integrity_incidents_resolved_total",
    "hatthasilpa_audit_chain_ok",
    "hatthasilpa_lifecycle_volume", "hatthasilpa_lifecycle_volume_expected", "hatthasilpa_lifecycle_volume_scale",
    "hatthasilpa_lifecycle_volume_anomaly_score",
}
NAME = re.compile(r"hatthasilpa_[a-z_]+")
HISTOGRAM_SERIES = re.compile(r"_(bucket|sum|count)$")


def test_dashboard_covers_every_metric_and_names_no_other():
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "hatthasilpa-integrity.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    used = {HISTOGRAM_SERIES.sub("", m) if "time_to_" in m else m for e in exprs for m in NAME.findall(e)}
    assert used == DOCUMENTED_METRICS
    titles = " ".join(p["title"] for p in dashboard["panels"]).lower()
    for topic in ("violations", "last success", "durations", "outbox", "repairs", "incidents", "time to resolve",
                  "per week"):
        assert topic in titles


def test_alert_rules_use_only_documented_metrics():
    rules = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yml").read_text())
    exprs = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    used = {m for e in exprs for m in NAME.findall(e)}
    assert used <= DOCUMENTED_METRICS and "hatthasilpa_integrity_violations" in used
    assert all("hatthasilpa_integrity_incident_muted == 1" in e for e in exprs
               if "hatthasilpa_integrity_violations" in e), "violation alerts must leave muted incidents out"
