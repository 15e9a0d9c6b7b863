"""The catalogue as data: docs/checks.md's ids and severities, documented, following the query conventions."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from checks import CATALOGUE, CHECK_IDS, Family, Scope, Severity, get, select
from checks.engine import parameter_names
from lifecycle.errors import ValidationError

DOCUMENTED_SEVERITIES = {
    "orphan_token": "critical", "multi_spawn_instance": "critical", "token_count_mismatch": "warning",
    "mixed_token_states": "critical", "scrapped_token_resurrected": "critical", "work_queue_pollution": "critical",
    "multiple_active_instances": "critical", "cancelled_job_not_clean": "critical",
    "session_without_assignment": "error", "assignment_without_token": "error", "duplicate_open_session": "critical",
    "session_on_dead_token": "error", "stale_open_session": "warning", "serial_missing_in_core": "error",
    "serial_missing_in_tenant": "critical", "serial_field_mismatch": "error", "serial_outbox_lag": "warning",
    "temp_serial_on_production_tenant": "critical", "duplicate_serial": "critical", "token_without_serial": "error",
}
CONTEXT_PARAMS = {"tenant_code", "now", "production_tenant", "flag_std_on", "outbox_grace_cutoff",
                  "stale_session_cutoff"}


def test_ids_and_severities_are_spec_6():
    assert list(CATALOGUE) == list(CHECK_IDS)
    assert {c.id: c.severity.value for c in CATALOGUE.values()} == DOCUMENTED_SEVERITIES


@pytest.mark.parametrize("check", list(CATALOGUE.values()), ids=list(CATALOGUE))
def test_every_check_is_documented_and_well_formed(check):
    assert isinstance(check.family, Family) and isinstance(check.severity, Severity)
    assert len(check.description) > 20
    assert check.keys and all(k.isidentifier() for k in check.keys)
    assert check.sql or check.core_sql or check.compare
    assert (check.scope == Scope.TENANT_CORE) == bool(check.compare or check.core_sql)
    if check.reads_history:
        assert check.history_note, "say what history the check reads"
    for sql in filter(None, (check.sql, check.core_sql)):
        names = set(parameter_names(sql))
        assert names <= CONTEXT_PARAMS | set(check.keys), names
        for key in check.keys:
            assert f":{key} IS NULL" in sql, f"{check.id}: the query must accept an optional {key} filter"
        for threshold in check.thresholds:
            assert f":{threshold.param}" in sql or check.compare


def test_families_hold_their_checks():
    by_family = {f: sorted(c.id for c in CATALOGUE.values() if c.family == f) for f in Family}
    assert "orphan_token" in by_family[Family.TOKENS]
    assert "multiple_active_instances" in by_family[Family.INSTANCES]
    assert "duplicate_open_session" in by_family[Family.SESSIONS]
    assert "duplicate_serial" in by_family[Family.SERIALS]
    assert sum(map(len, by_family.values())) == 20


def test_thresholds_have_the_spec_defaults():
    assert get("stale_open_session").thresholds[0].default == dt.timedelta(hours=12)
    assert get("serial_outbox_lag").thresholds[0].default == dt.timedelta(minutes=5)


def test_fast_checks_read_only_live_rows():
    fast = {c.id for c in select(fast_only=True)}
    assert "orphan_token" in fast and "serial_outbox_lag" in fast
    assert not fast & {"scrapped_token_resurrected", "serial_missing_in_core", "duplicate_serial"}


def test_unknown_check_is_a_validation_error():
    with pytest.raises(ValidationError):
        select(["orphan_token", "no_such_check"])


def test_records_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        get("orphan_token").severity = Severity.WARNING


def test_the_documented_catalogue_table_matches_the_catalogue():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "checks.md").read_text()
    for c in CATALOGUE.values():
        row = (f"| `{c.id}` | {c.severity.value} | {c.family.value} | {'15 min' if c.fast else 'hourly'} | "
               f"{c.scope.value} | {c.description} |")
        assert row in doc, c.id
