"""The benchmark's factory at small N: clean it reports nothing, with its faults exactly what was injected."""

from __future__ import annotations

import uuid

import pytest

from contextlib import contextmanager

from benchmarks import factory
from checks import all_checks, crossdb, run_tenant
from checks.context import tenant_params
from checks.engine import Target
from lifecycle.db import get_engine

pytestmark = pytest.mark.postgres

TOKENS = 20_000


@contextmanager
def _factory(pg_admin_url):
    admin_url, reason = pg_admin_url
    if admin_url is None:
        pytest.fail(reason, pytrace=False)
    prefix = f"hs_fac_{uuid.uuid4().hex[:8]}"
    try:
        yield factory.create(admin_url, prefix, TOKENS)
    finally:
        factory.drop(admin_url, prefix)


@pytest.fixture
def built(pg_admin_url):
    with _factory(pg_admin_url) as f:
        yield f


@pytest.fixture(scope="module")
def faulted(pg_admin_url):
    """One factory with its faults for the read-only tests."""
    with _factory(pg_admin_url) as f:
        factory.inject_faults(f)
        yield f


@contextmanager
def open_target(f, shared=None):
    with get_engine(f.settings.tenant_url(f.tenant)).connect() as tenant, \
            get_engine(f.settings.core_url).connect() as core:
        yield Target(f.tenant, tenant, core, tenant_params(core, f.tenant), shared=shared)


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


def test_bucketed_reconciliation_finds_exactly_what_the_paged_walk_finds(faulted):
    """On PostgreSQL the serial comparisons stream only differing buckets: the same findings, in the same order,
    as the paged walk over every serial, whatever the bucket count (few buckets stream nearly everything)."""
    compared = [c for c in all_checks() if c.compare is not None]
    assert len(compared) == 4
    with open_target(faulted) as target:
        for check in compared:
            paged = list(crossdb._paged(check, target, None, crossdb.BATCH_SIZE))
            assert paged, check.id
            bucketed = list(crossdb.compare(check, target))
            assert bucketed == paged, check.id
        few = list(crossdb.differing(target, buckets=16))
        many = list(crossdb.differing(target))
        # 16 buckets read nearly every code's hash, 65,536 only the broken ones' neighbours: the same codes differ
        assert [code for code, _, _ in many] == [code for code, _, _ in few] and many


def test_one_run_walks_the_registries_once_for_all_serial_comparisons(faulted):
    shared: dict = {}
    compared = [c for c in all_checks() if c.compare is not None]
    key = ("serial_diff", crossdb.BUCKETS)
    with open_target(faulted, shared=shared) as target:
        assert list(crossdb.compare(compared[0], target))
        assert list(shared) == [key] and len(shared[key]) >= faulted.faults
        shared[key] = []  # the other comparisons read the run's pass, not the databases again
        assert all(list(crossdb.compare(check, target)) == [] for check in compared[1:])
    with open_target(faulted) as target:  # a new run walks again
        assert all(list(crossdb.compare(check, target)) for check in compared[1:])
