"""Regression tests of hostile input: each defect a probe of the CLI found, pinned.

Every refusal here must be ``VALIDATION_ERROR`` (exit 2) or a refusal (exit 3), never
``INTERNAL``, and a dump of every store must be unchanged afterwards — an UPDATE is
caught as well as an INSERT.
"""

from __future__ import annotations

import io
import json
import logging
import threading
import urllib.request
from contextlib import redirect_stderr, redirect_stdout

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from checks import metrics
from hatthasilpa import cli, demo
from lifecycle import constraints, graphs
from lifecycle.db import Settings, display_url, get_engine
from tests.conftest import LINEAR_GRAPH
from tests.contents import dump_all


def refused(stores, *args, code="VALIDATION_ERROR", exit_code=2) -> dict:
    before = dump_all(stores)
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        status = cli.main([str(a) for a in args])
    lines = out.getvalue().splitlines()
    assert len(lines) == 1, out.getvalue()
    body = json.loads(lines[0])
    assert (status, body["error"]["code"]) == (exit_code, code), body
    assert "Traceback" not in out.getvalue() + err.getvalue()
    assert dump_all(stores) == before, "a refused command wrote to a store"
    return body["error"]


# --------------------------------------------------------------------------- tenant codes
def test_a_tenant_code_is_one_tenant_whatever_its_case(stores):
    stores.add_tenant("acme")
    error = refused(stores, "tenant", "add", "ACME", code="CONFLICT", exit_code=3)
    assert "acme" in error["message"]
    refused(stores, "tenant", "add", "Acme", code="CONFLICT", exit_code=3)
    assert stores.ok("tenant", "add", "acme", "--name", "Acme Leather")["created"] is False  # same code: an update


def test_the_core_database_refuses_a_case_variant_by_its_index(stores):
    stores.add_tenant("acme")
    with pytest.raises(IntegrityError) as caught, get_engine(stores.settings.core_url).begin() as conn:
        conn.execute(sa.text("INSERT INTO tenant (tenant_code, name, is_test_tenant) VALUES ('ACME', 'x', false)"))
    assert constraints.violated_constraint(caught.value) == "ux_tenant_code_ci"
    assert constraints.refusal(caught.value).code == "CONFLICT"


# --------------------------------------------------------------------------- full matches
@pytest.mark.parametrize("field", ["tenant", "graph", "node", "job", "sku", "operator"])
def test_identifiers_with_a_final_newline_are_refused(factory, tmp_path, field):
    stores = factory
    if field == "tenant":
        refused(stores, "tenant", "add", "acme\n")
    elif field in ("graph", "node"):
        doc = json.loads(json.dumps(LINEAR_GRAPH))
        if field == "node":
            doc["nodes"][1]["code"] = "stitch\n"
            doc["edges"] = [[a + ("\n" if a == "stitch" else ""), b + ("\n" if b == "stitch" else "")]
                            for a, b in doc["edges"]]
        path = tmp_path / "g.json"
        path.write_text(json.dumps(doc))
        refused(stores, "graph", "create", "--tenant", "atelier", "--code", "bag2\n" if field == "graph" else "bag2",
                "--file", path)
    elif field in ("job", "sku"):
        refused(stores, "job", "create", "--tenant", "atelier", "--code", "J-1\n" if field == "job" else "J-1",
                "--sku", "BAG\n" if field == "sku" else "BAG", "--quantity", 1, "--graph", "bag")
    else:
        stores.ok("job", "create", "--tenant", "atelier", "--code", "J-1", "--sku", "BAG", "--quantity", 1,
                  "--graph", "bag")
        token = stores.ok("job", "start", "--tenant", "atelier", "J-1")["token_ids"][0]
        refused(stores, "session", "start", "--tenant", "atelier", token, "--operator", "op\n")


# --------------------------------------------------------------------------- passwords
def test_store_urls_are_printed_with_the_password_masked(pg_stores):
    url = pg_stores.settings.core_url.replace("postgres@", "postgres:s3cret-pw@", 1)
    assert "s3cret-pw" not in display_url(url) and "***" in display_url(url)
    pg_stores.add_tenant("atelier")
    settings = Settings(core_url=url, tenant_url_template=pg_stores.settings.tenant_url_template,
                        monitor_url=pg_stores.settings.monitor_url)  # trust auth: the password is not checked
    data = demo.summary(settings)
    assert "s3cret-pw" not in json.dumps(data) and "s3cret-pw" not in demo.render(data)
    assert data["core_url"] == display_url(url)


# --------------------------------------------------------------------------- bad input, not INTERNAL
def _graph_file(tmp_path, content: bytes):
    path = tmp_path / "hostile.json"
    path.write_bytes(content)
    return path


@pytest.mark.parametrize("content", [
    b'{"nodes": [{"code": "\xff\xfe", "kind": "start"}], "edges": []}',        # not UTF-8
    b"[" * 100_000 + b"]" * 100_000,                                             # nested past the stack
    b'{"nodes": [], "edges": [], "n": ' + b"9" * 5000 + b"}",                    # past int's digit limit
    b"\x00\x01",                                                                  # binary
], ids=["not-utf8", "deep-nesting", "5000-digits", "binary"])
def test_a_hostile_graph_file_is_a_validation_error(factory, tmp_path, content):
    refused(factory, "graph", "create", "--tenant", "atelier", "--code", "g2", "--file", _graph_file(tmp_path, content))


def test_a_graph_past_the_size_limit_is_refused_and_one_at_the_limit_is_inserted_in_bulk(factory, tmp_path):
    def chain(n: int) -> dict:
        nodes = [{"code": f"n{i}", "kind": "start" if i == 0 else "end" if i == n - 1 else "work"} for i in range(n)]
        return {"nodes": nodes, "edges": [[f"n{i}", f"n{i + 1}"] for i in range(n - 1)]}

    path = tmp_path / "big.json"
    path.write_text(json.dumps(chain(10_000)))
    refused(factory, "graph", "create", "--tenant", "atelier", "--code", "big", "--file", path)
    path.write_text(json.dumps(chain(graphs.MAX_NODES)))
    data = factory.ok("graph", "create", "--tenant", "atelier", "--code", "big", "--file", path)
    assert len(data["nodes"]) == graphs.MAX_NODES
    assert factory.scalar("SELECT count(*) FROM routing_node WHERE graph_id = :g", g=data["graph_id"]) == graphs.MAX_NODES
    assert factory.scalar("SELECT count(*) FROM routing_edge WHERE graph_id = :g", g=data["graph_id"]) == graphs.MAX_NODES - 1


def test_numbers_names_and_ports_out_of_range_are_validation_errors(factory):
    refused(factory, "session", "start", "--tenant", "atelier", "9" * 20, "--operator", "op")   # past 64 bits
    refused(factory, "token", "show", "--tenant", "atelier", str(2**64))
    refused(factory, "tenant", "add", "other", "--name", "n" * 129)
    refused(factory, "tenant", "add", "other", "--name", "bad\x00name")
    refused(factory, "--actor", "a" * 65, "job", "create", "--tenant", "atelier", "--code", "J-9", "--sku", "S",
            "--quantity", 1, "--graph", "bag")
    refused(factory, "metrics", "serve", "--port", 70000)
    refused(factory, "metrics", "serve", "--port", 0)


@pytest.mark.parametrize("timeout", ["-1", "0", "nan", "inf", "-inf", "1e999", "NaN"])
def test_check_run_refuses_a_timeout_that_is_not_a_positive_finite_number(factory, timeout):
    refused(factory, "check", "run", f"--timeout={timeout}", "--json")


@pytest.mark.parametrize("key", [" ", "  ", " key", "key ", "\t", "a\x00b", "k" * 129])
def test_a_blank_or_padded_idempotency_key_is_refused(factory, key):
    factory.ok("job", "create", "--tenant", "atelier", "--code", "J-1", "--sku", "BAG", "--quantity", 1,
               "--graph", "bag")
    refused(factory, "job", "start", "--tenant", "atelier", "J-1", f"--idempotency-key={key}")


@pytest.mark.parametrize("quantity", ["١٢", "1_000", " 12", "12 ", "+-1", "１２", "0x10"])
def test_quantity_takes_ascii_digits_only(factory, quantity):
    refused(factory, "job", "create", "--tenant", "atelier", "--code", "J-1", "--sku", "BAG",
            f"--quantity={quantity}", "--graph", "bag")


# --------------------------------------------------------------------------- /metrics with the store away
def test_metrics_answer_with_exporter_health_while_the_monitor_store_is_down(caplog):
    down = "postgresql+psycopg://postgres@127.0.0.1:1/nowhere"  # nothing listens on port 1
    settings = Settings(core_url=down, tenant_url_template=down + "_{tenant}", monitor_url=down)
    server = metrics.make_metrics_server(settings, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with caplog.at_level(logging.ERROR, logger="checks.metrics"):
            with urllib.request.urlopen(f"http://127.0.0.1:{server.server_port}/metrics", timeout=30) as response:
                status, body = response.status, response.read().decode()
    finally:
        server.shutdown()
        server.server_close()
    assert status == 200
    assert "hatthasilpa_metrics_exporter_up 1.0" in body
    sources = [s.__name__.removesuffix("_families") for s in metrics.SOURCES]
    assert all(f'hatthasilpa_metrics_source_error{{source="{s}"}} 1.0' in body for s in sources), body
    failures = [r for r in caplog.records if r.name == "checks.metrics" and "unavailable" in r.getMessage()]
    assert len(failures) == len(sources) and all(r.exc_info is None and "\n" not in r.getMessage() for r in failures)
