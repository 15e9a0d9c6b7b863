"""A fixture of the repair tests (import it into a test module) that verifies the audit chain after
each test. The stores' contents, to prove a run wrote nothing, are ``tests.contents``."""

from __future__ import annotations

import pytest

from checks import audit_log
from checks.schema import MONITOR
from lifecycle import migrate

STORE_FIXTURES = ("stores", "pg_stores", "sqlite_stores")


@pytest.fixture(autouse=True)
def audit_chain_intact_afterwards(request):
    """After every repair test, the audit log of its monitor store still verifies."""
    used = [request.getfixturevalue(name) for name in STORE_FIXTURES if name in request.fixturenames]
    yield
    for stores in used:
        if migrate.is_current(stores.settings.monitor_url, MONITOR):
            audit_log.verify(stores.settings.monitor_url, record=False)
