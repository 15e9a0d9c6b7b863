"""A check cut off by its time budget is an error, never "0 found": not in the JSON, the table,
Dagster's metadata or the metrics (the violations gauge keeps the last good count, the error counter rises)."""

from __future__ import annotations

from prometheus_client import generate_latest

from checks import metrics, run_checks
from checks.report import findings_table
from pipelines.checks import check_result
from tests.faults import FAULTS
from tests.floor import build_clean_floor

CHECK = "serial_missing_in_core"
CUT_OFF = 1e-9  # seconds: gone before the first batch or statement


def _sample(settings, name: str, **labels) -> float | None:
    reg = metrics.registry_for(settings)
    return reg.get_sample_value(name, labels)


def test_a_timed_out_check_is_an_error_everywhere_and_the_gauge_keeps_its_last_good_value(factory):
    floor = build_clean_floor(factory)
    FAULTS[CHECK].apply(floor)
    settings = factory.settings
    good = run_checks(settings, ["atelier"], [CHECK])
    assert [(r.count, r.error) for r in good.results] == [(1, None)]

    cut = run_checks(settings, ["atelier"], [CHECK], timeout_seconds=CUT_OFF)
    (result,) = cut.results
    assert result.error and ("time budget" in result.error or "timeout" in result.error.lower())
    body = cut.to_dict()
    assert body["results"][0]["count"] is None and body["errors"] == 1
    line = findings_table(body["results"]).splitlines()[1]
    assert "ERROR" in line and " 0 " not in f" {line} "
    dagster = check_result(result)
    assert not dagster.passed and "count" not in dagster.metadata and "error" in dagster.metadata

    labels = {"tenant": "atelier", "check": CHECK}
    assert _sample(settings, "hatthasilpa_integrity_violations", severity="error", **labels) == 1.0
    assert _sample(settings, "hatthasilpa_integrity_check_errors_total", **labels) == 1.0
    assert b"hatthasilpa_integrity_violations" in generate_latest(metrics.registry_for(settings))
