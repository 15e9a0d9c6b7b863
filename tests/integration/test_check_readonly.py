"""On PostgreSQL the checks run through a role that has only CONNECT, USAGE and SELECT (README's GRANTs)."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from sqlalchemy.engine import make_url

from checks import run_checks
from hatthasilpa import settings as app_settings
from lifecycle.db import dispose_engine
from tests.faults import FAULTS
from tests.floor import TENANT, build_clean_floor

GRANTS = """
GRANT CONNECT ON DATABASE "{db}" TO "{role}";
GRANT USAGE ON SCHEMA public TO "{role}";
GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{role}";
"""


def _admin_to(admin_url: str, db: str):
    return psycopg.connect(admin_url.rsplit("/", 1)[0] + f"/{db}", autocommit=True)


@pytest.fixture
def reader(pg_factory, pg_admin_url, monkeypatch):
    """A SELECT-only role on the tenant and core databases, wired in through the checks' URL settings."""
    admin_url = pg_admin_url[0]
    settings = pg_factory.settings
    role = f"hs_reader_{uuid.uuid4().hex[:8]}"
    urls = {"core": settings.core_url, "tenant": settings.tenant_url(TENANT)}
    dbs = [make_url(u).database for u in urls.values()]
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE ROLE "{role}" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE')
    for db in dbs:
        with _admin_to(admin_url, db) as conn:
            conn.execute(f'REVOKE ALL ON DATABASE "{db}" FROM PUBLIC')
            conn.execute(GRANTS.format(db=db, role=role))
    as_role = {k: make_url(u).set(username=role).render_as_string(hide_password=False) for k, u in urls.items()}
    template = make_url(settings.tenant_url_template.replace("{tenant}", "TENANTX")).set(username=role)
    monkeypatch.setenv("HATTHASILPA_CHECKS_CORE_URL", as_role["core"])
    monkeypatch.setenv("HATTHASILPA_CHECKS_TENANT_URL_TEMPLATE",
                       template.render_as_string(hide_password=False).replace("TENANTX", "{tenant}"))
    yield role, as_role
    for url in as_role.values():
        dispose_engine(url)
    for db in dbs:
        with _admin_to(admin_url, db) as conn:
            conn.execute(f'DROP OWNED BY "{role}"')
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP ROLE "{role}"')


def test_all_checks_pass_under_the_select_only_role(pg_factory, reader):
    floor = build_clean_floor(pg_factory)
    settings = app_settings.for_checks()
    assert reader[0] in settings.core_url and reader[0] in settings.tenant_url(TENANT)
    clean = run_checks(settings, tenants=[TENANT])
    assert len(clean.results) == 20
    assert [(r.check, r.count, r.error) for r in clean.results if r.count or r.error] == []
    expected = FAULTS["orphan_token"].apply(floor)
    found = run_checks(settings, tenants=[TENANT], check_ids=["orphan_token"], sample_size=100).results[0]
    assert found.error is None and {row["token_id"] for row in found.sample} == expected


def test_a_write_through_the_select_only_role_fails(pg_factory, reader):
    build_clean_floor(pg_factory)
    role, as_role = reader
    for store, table in (("tenant", "flow_token"), ("core", "serial_registry")):
        url = make_url(as_role[store])
        with psycopg.connect(host=url.host, port=url.port, user=role, dbname=url.database, autocommit=True) as conn:
            assert conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] > 0
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f"UPDATE {table} SET created_at = created_at")


def test_a_scheduled_materialization_reads_through_the_select_only_role(pg_factory, reader, monkeypatch):
    """The definitions' own resources take the checks' read-only URLs from the environment: with the
    normal tenant and core URLs pointing at databases that do not exist, the scheduled run still
    reads every check through the role (and writes only the monitor store)."""
    from dagster import build_schedule_context, instance_for_test

    from pipelines.definitions import defs
    from pipelines.schedules import integrity_schedule

    floor = build_clean_floor(pg_factory)
    expected = FAULTS["orphan_token"].apply(floor)
    nowhere = make_url(pg_factory.settings.core_url).set(database="hs_no_such_database")
    monkeypatch.setenv("HATTHASILPA_CORE_URL", nowhere.render_as_string(hide_password=False))
    monkeypatch.setenv("HATTHASILPA_TENANT_URL_TEMPLATE", nowhere.render_as_string(hide_password=False))
    monkeypatch.setenv("HATTHASILPA_MONITOR_URL", pg_factory.settings.monitor_url)
    with instance_for_test() as instance:
        instance.add_dynamic_partitions("tenant", [TENANT])
        (request,) = list(integrity_schedule(build_schedule_context(instance=instance)))
        result = defs.resolve_job_def("integrity_job").execute_in_process(
            instance=instance, partition_key=request.partition_key, tags=request.tags)
    assert result.success
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert [name for name, e in evaluations.items() if "error" in e.metadata] == []
    assert evaluations["orphan_token"].metadata["count"].value == len(expected)
