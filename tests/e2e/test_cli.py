"""The CLI as a user drives it: the real console script in a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import LINEAR_GRAPH

EXE = shutil.which("hatthasilpa", path=str(Path(sys.executable).parent)) or "hatthasilpa"
ENVELOPE_KEYS = {"ok", "data", "error", "meta"}


def hs(stores, *args, cwd=None, env_extra=None):
    env = {**os.environ, "HATTHASILPA_CORE_URL": stores.settings.core_url,
           "HATTHASILPA_TENANT_URL_TEMPLATE": stores.settings.tenant_url_template,
           "HATTHASILPA_MONITOR_URL": stores.settings.monitor_url, **(env_extra or {})}
    proc = subprocess.run([EXE, *map(str, args)], capture_output=True, text=True, env=env, cwd=cwd, timeout=120)
    lines = proc.stdout.splitlines()
    assert len(lines) == 1, f"stdout must be exactly one JSON object, got {proc.stdout!r} (stderr {proc.stderr!r})"
    body = json.loads(lines[0])
    assert set(body) == ENVELOPE_KEYS
    assert set(body["meta"]) >= {"request_id", "took_ms"}
    assert body["ok"] is (proc.returncode == 0)
    if body["ok"]:
        assert body["error"] is None
    else:
        assert body["data"] is None and set(body["error"]) >= {"code", "message", "hint"}
    return proc.returncode, body


def test_seed_2_7_flow_end_to_end(stores, tmp_path):
    stores.add_tenant("atelier")
    graph = tmp_path / "g.json"
    graph.write_text(json.dumps(LINEAR_GRAPH))
    assert hs(stores, "graph", "create", "--tenant", "atelier", "--code", "bag", "--file", graph)[0] == 0
    assert hs(stores, "job", "create", "--tenant", "atelier", "--code", "J-27", "--sku", "TOTE",
              "--quantity", 5, "--graph", "bag")[0] == 0
    first = hs(stores, "job", "start", "--tenant", "atelier", "J-27")[1]["data"]
    assert first["spawned"] and len(first["token_ids"]) == 5
    cancel = hs(stores, "job", "cancel", "--tenant", "atelier", "J-27")[1]["data"]
    assert sorted(cancel["scrapped_token_ids"]) == sorted(first["token_ids"])
    assert hs(stores, "job", "restore", "--tenant", "atelier", "J-27")[1]["data"]["status"] == "planned"
    second = hs(stores, "job", "start", "--tenant", "atelier", "J-27")[1]["data"]
    assert second["spawned"] and second["instance_id"] != first["instance_id"]
    assert not set(second["token_ids"]) & set(first["token_ids"])
    queue = hs(stores, "work-queue", "--tenant", "atelier")[1]["data"]["tokens"]
    assert sorted(t["token_id"] for t in queue) == sorted(second["token_ids"])
    assert all({"token_id", "job_code", "node", "status"} <= set(t) and t["status"] == "ready" for t in queue)
    shown = hs(stores, "job", "show", "--tenant", "atelier", "J-27")[1]["data"]
    assert [i["status"] for i in shown["instances"]] == ["archived", "active"]


def test_every_command_prints_one_envelope_on_success_and_failure(stores, tmp_path):
    graph = tmp_path / "g.json"
    graph.write_text(json.dumps(LINEAR_GRAPH))
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{nodes: [")
    stores.add_tenant("atelier")
    calls = [
        (0, ["db", "upgrade"]),
        (0, ["tenant", "add", "lab", "--name", "Lab", "--test"]) if not stores.is_postgres else None,
        (2, ["tenant", "add", "bad code"]),
        (0, ["tenant", "list"]),
        (0, ["flag", "set", "atelier", "FF_SERIAL_STD_HAT", "on"]),
        (2, ["flag", "set", "atelier", "FF_SERIAL_STD_HAT", "maybe"]),
        (2, ["flag", "set", "nobody", "FF_SERIAL_STD_HAT", "on"]),
        (0, ["graph", "create", "--tenant", "atelier", "--code", "bag", "--file", graph]),
        (2, ["graph", "create", "--tenant", "atelier", "--code", "bag", "--file", bad_json]),
        (2, ["graph", "create", "--tenant", "atelier", "--code", "bag", "--file", tmp_path / "missing.json"]),
        (0, ["job", "create", "--tenant", "atelier", "--code", "J1", "--sku", "S", "--quantity", 2, "--graph", "bag"]),
        (3, ["job", "create", "--tenant", "atelier", "--code", "J1", "--sku", "S", "--quantity", 2, "--graph", "bag"]),
        (2, ["job", "create", "--tenant", "atelier", "--code", "J2", "--sku", "S", "--quantity", "x", "--graph", "bag"]),
        (0, ["job", "show", "--tenant", "atelier", "J1"]),
        (0, ["job", "show", "--tenant", "atelier", "J1", "--idempotency-key", "read-1"]),
        (0, ["job", "list", "--tenant", "atelier"]),
        (3, ["token", "spawn", "--tenant", "atelier", "J1"]),
        (0, ["job", "start", "--tenant", "atelier", "J1", "--idempotency-key", "k"]),
        (0, ["token", "spawn", "--tenant", "atelier", "J1"]),
        (0, ["work-queue", "--tenant", "atelier", "--node", "cut"]),
        (2, ["work-queue", "--tenant", "nobody"]),
        (0, ["job", "cancel", "--tenant", "atelier", "J1"]),
        (3, ["job", "start", "--tenant", "atelier", "J1"]),
        (0, ["job", "restore", "--tenant", "atelier", "J1"]),
        (0, ["job", "cancel", "--tenant", "atelier", "J1"]),
        (0, ["job", "archive", "--tenant", "atelier", "J1"]),
        (2, ["job", "show", "--tenant", "atelier", "NOPE"]),
        (2, ["job"]),
        (2, ["no-such-command"]),
    ]
    for expected, args in filter(None, calls):
        code, body = hs(stores, *args)
        assert code == expected, (args, body)


def test_unreachable_database_is_an_internal_error_envelope_without_traceback_on_stdout(stores):
    code, body = hs(stores, "tenant", "list",
                    env_extra={"HATTHASILPA_CORE_URL": "postgresql+psycopg://postgres@127.0.0.1:1/none"})
    assert code == 1 and body["error"]["code"] == "INTERNAL"
    assert "Traceback" not in json.dumps(body)


@pytest.mark.parametrize("case", ["negative quantity", "zero quantity", "unknown graph", "cyclic graph",
                                  "two start nodes", "unknown job", "invalid transition", "malformed json",
                                  "bad mode", "unknown tenant"])
def test_bad_input_gets_the_right_code_and_writes_nothing(factory, tmp_path, case):
    factory.ok("job", "create", "--tenant", "atelier", "--code", "J1", "--sku", "S", "--quantity", 1, "--graph", "bag")
    cyclic = tmp_path / "cyclic.json"
    cyclic.write_text(json.dumps({"nodes": [{"code": "a", "kind": "start"}, {"code": "b", "kind": "work"},
                                            {"code": "c", "kind": "work"}, {"code": "d", "kind": "end"}],
                                  "edges": [["a", "b"], ["b", "c"], ["c", "b"], ["c", "d"]]}))
    two_starts = tmp_path / "two.json"
    two_starts.write_text(json.dumps({"nodes": [{"code": "a", "kind": "start"}, {"code": "b", "kind": "start"},
                                                {"code": "d", "kind": "end"}], "edges": [["a", "d"], ["b", "d"]]}))
    malformed = tmp_path / "malformed.json"
    malformed.write_text('{"nodes": [}')
    new_job = ["job", "create", "--tenant", "atelier", "--code", "J2", "--sku", "S", "--graph"]
    cases = {
        "negative quantity": (2, "VALIDATION_ERROR", new_job + ["bag", "--quantity", "-3"]),
        "zero quantity": (2, "VALIDATION_ERROR", new_job + ["bag", "--quantity", "0"]),
        "unknown graph": (2, "NOT_FOUND", new_job + ["nope", "--quantity", "3"]),
        "bad mode": (2, "VALIDATION_ERROR", new_job + ["bag", "--quantity", "3", "--mode", "bulk"]),
        "cyclic graph": (2, "VALIDATION_ERROR", ["graph", "create", "--tenant", "atelier", "--code", "g2", "--file", cyclic]),
        "two start nodes": (2, "VALIDATION_ERROR", ["graph", "create", "--tenant", "atelier", "--code", "g2", "--file", two_starts]),
        "malformed json": (2, "VALIDATION_ERROR", ["graph", "create", "--tenant", "atelier", "--code", "g2", "--file", malformed]),
        "unknown job": (2, "NOT_FOUND", ["job", "start", "--tenant", "atelier", "NOPE"]),
        "invalid transition": (3, "INVALID_TRANSITION", ["job", "restore", "--tenant", "atelier", "J1"]),
        "unknown tenant": (2, "NOT_FOUND", ["job", "start", "--tenant", "ghost", "J1"]),
    }
    exit_code, error_code, args = cases[case]
    before = factory.contents()
    code, body = factory.cli(*args)
    assert (code, body["error"]["code"]) == (exit_code, error_code), body
    assert body["error"]["message"] and body["error"]["hint"]
    assert factory.contents() == before


def test_logs_go_to_stderr_only(stores):
    stores.add_tenant("atelier")
    proc = subprocess.run([EXE, "-v", "tenant", "list"], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "HATTHASILPA_CORE_URL": stores.settings.core_url})
    assert len(proc.stdout.splitlines()) == 1 and json.loads(proc.stdout)["ok"] is True
    assert "succeeded" in proc.stderr and "succeeded" not in proc.stdout
