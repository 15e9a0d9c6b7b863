"""The fault matrix on PostgreSQL and SQLite: every check finds exactly the rows its fault corrupted."""

from __future__ import annotations

import pytest

from checks import CHECK_IDS, row_predicate
from tests.faults import FAULTS
from tests.floor import build_clean_floor, checks_target_run, open_target


def _keys(check, result) -> set:
    from checks import get

    keys = get(check).keys
    assert result.count == len(result.sample), "the test samples every row"
    return {row[keys[0]] if len(keys) == 1 else tuple(row[k] for k in keys) for row in result.sample}


def test_every_check_has_a_fault():
    assert sorted(FAULTS) == sorted(CHECK_IDS)


def test_clean_floor_reports_nothing(factory):
    results = checks_target_run(build_clean_floor(factory))
    assert sorted(results) == sorted(CHECK_IDS)
    assert {c: (r.count, r.error) for c, r in results.items() if r.count or r.error} == {}


@pytest.mark.parametrize("check", CHECK_IDS)
def test_fault_is_found_exactly(factory, check):
    floor = build_clean_floor(factory)
    fault = FAULTS[check]
    expected = fault.apply(floor)
    results = checks_target_run(floor)
    assert [c for c, r in results.items() if r.error] == []
    assert _keys(check, results[check]) == expected, fault.story
    firing = {c for c, r in results.items() if r.count}
    assert firing == {check} | fault.also
    # the row predicate a repair re-runs under its row lock finds each corrupted row again
    from checks import get

    key_column = get(check).keys[0]
    with open_target(floor) as target:
        for key in expected:
            row = row_predicate(get(check), target, {key_column: key})
            assert row is not None and row[key_column] == key
