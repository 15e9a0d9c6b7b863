"""``hatthasilpa doctor`` reports each broken prerequisite with its fix."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess

import pytest
import sqlalchemy as sa

from hatthasilpa import doctor
from lifecycle.uow import utcnow
from tests.e2e.test_cli import EXE

TENANT_CHECKS = ["tenant_migrations", "serial_flag", "graphs_valid", "outbox_backlog", "outbox_parked"]


@pytest.fixture
def factory(factory):
    """The factory with every store migrated (the SQLite monitor store included)."""
    factory.ok("db", "upgrade")
    return factory


def failing(report: dict) -> dict:
    return {(c["name"], c["tenant"]): c for c in report["checks"] if not c["ok"]}


def test_a_healthy_factory_passes_every_check(factory):
    report = factory.ok("doctor")
    assert report["ok"] is True and report["failed"] == 0
    assert [c["name"] for c in report["checks"]] == [
        "core_reachable", "core_migrations", "monitor_migrations", "tenants_registered"] + TENANT_CHECKS
    assert all(set(c) == {"name", "tenant", "ok", "detail", "hint"} and c["hint"] is None for c in report["checks"])


def test_flag_off_on_a_production_tenant_fails_with_its_fix_through_the_real_cli(factory):
    factory.add_tenant("lab", test=True)
    factory.ok("flag", "set", "atelier", "FF_SERIAL_STD_HAT", "off")
    factory.ok("flag", "set", "lab", "FF_SERIAL_STD_HAT", "off")  # fine on a test tenant
    env = {**os.environ, "HATTHASILPA_CORE_URL": factory.settings.core_url,
           "HATTHASILPA_TENANT_URL_TEMPLATE": factory.settings.tenant_url_template,
           "HATTHASILPA_MONITOR_URL": factory.settings.monitor_url}
    proc = subprocess.run([EXE, "doctor"], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 3, proc.stderr
    body = json.loads(proc.stdout)
    assert body["ok"] is False and body["error"]["code"] == "PREREQUISITES_FAILED"
    assert body["error"]["hint"] == "hatthasilpa flag set atelier FF_SERIAL_STD_HAT on"
    assert list(failing(body["data"])) == [("serial_flag", "atelier")]
    assert "production tenant" in failing(body["data"])[("serial_flag", "atelier")]["detail"]
    factory.ok("flag", "set", "atelier", "FF_SERIAL_STD_HAT", "on")
    assert factory.ok("doctor", "--tenant", "atelier")["ok"] is True


def test_outbox_lag_and_parked_rows_fail_until_relayed(factory):
    factory.ok("job", "create", "--tenant", "atelier", "--code", "J1", "--sku", "TOTE", "--quantity", 2,
               "--graph", "bag")
    factory.ok("job", "start", "--tenant", "atelier", "J1")
    assert doctor.diagnose(factory.settings)["ok"] is True  # fresh events are within the grace period
    later = lambda: utcnow() + dt.timedelta(minutes=10)  # noqa: E731
    lagging = failing(doctor.diagnose(factory.settings, clock=later))
    assert list(lagging) == [("outbox_backlog", "atelier")]
    assert "hatthasilpa outbox relay --tenant atelier" in lagging[("outbox_backlog", "atelier")]["hint"]
    factory.ok("outbox", "relay")
    assert doctor.diagnose(factory.settings, clock=later)["ok"] is True
    with factory.tenant_engine().begin() as conn:
        conn.execute(sa.text("UPDATE serial_outbox SET published_at = NULL, parked_at = CURRENT_TIMESTAMP, "
                             "attempts = 8, last_error = 'refused' WHERE id = 1"))
    code, body = factory.cli("doctor")
    assert code == 3 and list(failing(body["data"])) == [("outbox_parked", "atelier")]
    assert "--retry-parked" in body["error"]["hint"]


def test_a_stored_graph_that_is_no_longer_a_dag_fails(factory):
    with factory.tenant_engine().begin() as conn:  # qc -> cut closes a cycle behind the validator's back
        ids = dict(conn.execute(sa.text("SELECT node_code, id FROM routing_node")).all())
        conn.execute(sa.text("INSERT INTO routing_edge (graph_id, from_node_id, to_node_id) "
                             "SELECT graph_id, :a, :b FROM routing_node WHERE id = :a"),
                     {"a": ids["edge"], "b": ids["stitch"]})
    code, body = factory.cli("doctor", "--tenant", "atelier")
    assert code == 3
    broken = failing(body["data"])[("graphs_valid", "atelier")]
    assert "bag v1" in broken["detail"] and "cycle" in broken["detail"]
    assert broken["hint"].startswith("create a corrected version: hatthasilpa graph create --tenant atelier")


def test_an_unmigrated_tenant_database_fails_and_its_dependent_checks_say_why(factory):
    with factory.tenant_engine().begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0000'"))
    code, body = factory.cli("doctor")
    assert code == 3
    bad = failing(body["data"])
    assert set(bad) == {(name, "atelier") for name in TENANT_CHECKS if name != "serial_flag"}
    assert bad[("tenant_migrations", "atelier")]["hint"] == "hatthasilpa db upgrade"
    assert bad[("graphs_valid", "atelier")]["detail"].startswith("not checked")


def test_unreachable_core_and_unknown_tenant(factory, monkeypatch):
    code, body = factory.cli("doctor", "--tenant", "ghost")
    assert code == 2 and body["error"]["code"] == "NOT_FOUND"
    monkeypatch.setenv("HATTHASILPA_CORE_URL", "postgresql+psycopg://postgres@127.0.0.1:1/none")
    code, body = factory.cli("doctor")
    assert code == 3
    assert failing(body["data"])[("core_reachable", None)]["hint"].startswith("check HATTHASILPA_CORE_URL")


def test_a_missing_sqlite_store_is_reported_and_not_created(sqlite_factory, tmp_path, monkeypatch):
    monitor_file = tmp_path / "nowhere" / "monitor.db"
    monkeypatch.setenv("HATTHASILPA_MONITOR_URL", f"sqlite:///{monitor_file}")
    code, body = sqlite_factory.cli("doctor")
    assert code == 3
    bad = failing(body["data"])[("monitor_migrations", None)]
    assert "does not exist" in bad["detail"] and bad["hint"] == "hatthasilpa db upgrade"
    assert not os.path.exists(monitor_file)
