"""Great Expectations suites through GX's SQL data source, one run per backend."""

from __future__ import annotations

from checks import gx, store
from tests.faults import drop_serial_primary_key
from tests.floor import TENANT, build_clean_floor


def test_gx_suites_find_column_rule_breaks_and_build_data_docs(factory, tmp_path, monkeypatch):
    floor = build_clean_floor(factory)
    drop_serial_primary_key(floor)  # a legacy registry: serial codes no longer unique
    shared = floor.serial_of(floor.ids["r1"])
    floor.tenant_sql("INSERT INTO serial_registry (serial_code, tenant_code, sku, job_id, token_id, mode, status, "
                     "version, created_at, updated_at) VALUES (:c, :t, 'TOTE', :j, :k, 'STD', 'issued', 1, "
                     "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
                     c=shared, t=TENANT, j=floor.ids["job:J-BATCH"], k=floor.ids["batch_tokens"][0])
    site = tmp_path / "data_docs"
    monkeypatch.setenv("HATTHASILPA_GX_DOCS_DIR", str(site))
    data = factory.ok("check", "run", "--tenant", TENANT, "--check", "orphan_token", "--gx", "--json")
    assert data["gx"]["data_docs"] == str(site.resolve() / "index.html")
    assert data["results"][0]["check"] == "orphan_token" and data["violations"] == 2
    by_check = {r["check"]: r for r in data["results"][1:]}
    assert sorted(by_check) == sorted(gx.GX_PREFIX + t for t in gx.SUITES)
    assert [c for c, r in by_check.items() if r["error"]] == []
    assert {c for c, r in by_check.items() if r["count"]} == {"gx.serial_registry"}
    failure, = by_check["gx.serial_registry"]["sample"]
    assert failure["expectation"] == "expect_column_values_to_be_unique" and failure["column"] == "serial_code"
    assert failure["unexpected_count"] == 2 and shared in failure["examples"]
    assert (site / "index.html").exists()
    assert list(site.glob("validations/gx/serial_registry/**/*.html"))
    latest = {f["check_id"]: f for f in store.latest_results(factory.settings.monitor_url, TENANT)}
    assert latest["gx.serial_registry"]["count"] == 2 and latest["gx.flow_token"]["count"] == 0
