"""The benchmark's factory at small N: clean it reports nothing, with its faults exactly what was injected."""

from __future__ import annotations

import uuid

import pytest

from benchmarks import factory
from checks import all_checks, run_tenant

pytestmark = pytest.mark.postgres

TOKENS = 20_000


@pytest.fixture
def built(pg_admin_url):
    admin_url, reason = pg_admin_url
    if admin_url is None:
        pytest.fail(reason, pytrace=False)
    prefix = f"hs_fac_{uuid.uuid4().hex[:8]}"
    f = factory.create(admin_url, prefix, TOKENS)
    yield f
    factory.drop(admin_url, prefix)


def _counts(f) -> dict[str, int]:
    results = run_tenant(f.settings, f.tenant, all_checks(), timeout_seconds=120)
    errors = {r.check: r.error for r in results if r.error}
    assert not errors
    return {r.check: r.count for r in results}


def test_clean_factory_reports_nothing_and_faults_are_found_exactly(built):
    assert _counts(built) == {check: 0 for check in factory.CHECK_IDS}
    expected = factory.inject_faults(built)
    assert built.faults == 2 and set(expected) == set(factory.CHECK_IDS)
    assert _counts(built) == expected
