"""Every command fed Hypothesis-generated hostile arguments.

One argument of a valid command line is replaced by a hostile value — odd unicode, NUL
bytes, huge and negative numbers, SQL fragments and path separators, a trailing newline,
malformed JSON and oversized graphs for ``--file`` — and the command must:

- print exactly one JSON envelope on stdout (``ok`` false, an error code that is not
  ``INTERNAL``), monitor commands included: their readable table is for success only;
- exit 2 (bad input) or 3 (refused);
- print no traceback on stdout or stderr;
- write nothing: the full contents of every store (core, monitor, the tenant) are
  compared after each case.

``make test`` runs a few cases per command; ``HATTHASILPA_FUZZ_EXAMPLES=N`` runs N per
command and backend (the full run in docs/reliability.md uses 80: over 2,000 cases).
Each test prints how many cases it ran.
"""

from __future__ import annotations

import io
import json
import os
import string
from contextlib import redirect_stderr, redirect_stdout

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from hatthasilpa import cli
from lifecycle import graphs
from lifecycle.db import TENANT_CODE_RE
from lifecycle.errors import ValidationError
from tests.contents import dump_all

EXAMPLES = int(os.environ.get("HATTHASILPA_FUZZ_EXAMPLES", "6"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                           HealthCheck.filter_too_much])

HOSTILE = [
    "", " ", "\n", "acme\n", "a\x00b", "\x00", "x'; DROP TABLE tenant; --", "1 OR 1=1", "\"quoted\"", "a;b",
    "../../etc/passwd", "a/b", "a\\b", "/", "..", "%s", "{tenant}", "$(reboot)", "`id`", "ÅCME", "ａｃｍｅ",
    "\u202eemca", "😀", "a" * 65, "a" * 300, "-x", "--help-me", "tab\there", "\r\n", "NULL", "None",
]
ODD_TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=70)


def not_matching(pattern):
    return st.one_of(st.sampled_from(HOSTILE), ODD_TEXT).filter(lambda s: not pattern.fullmatch(s))


BAD_CODE = not_matching(graphs.CODE_RE)
BAD_TENANT = not_matching(TENANT_CODE_RE)
BAD_NUMBER = st.one_of(
    st.integers(max_value=0).map(str),
    st.integers(min_value=2**63, max_value=10**40).map(str),
    st.sampled_from(["1_000", "١٢", "１２", " 5", "5 ", "nan", "inf", "-inf", "", "1e3", "0x10", "9" * 5000, "+",
                     "5\n", "3.5", "-1", "0"]),
    ODD_TEXT.filter(lambda s: not (s.isascii() and s.strip().lstrip("-").isdigit())),
)
BAD_SECONDS = st.sampled_from(["-1", "0", "nan", "inf", "-inf", "1e999", "NaN", "", "abc", "1_0", "٣"])
BAD_KEY = st.one_of(st.sampled_from([" ", "  ", " k", "k ", "\t", "a\x00b", "k" * 129, "\n"]),
                    st.text(min_size=1, max_size=10).map(lambda s: " " + s))


def _graph_document():
    json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | ODD_TEXT,
                               lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ODD_TEXT, inner, max_size=4),
                               max_leaves=12)
    nodes = st.lists(st.fixed_dictionaries({"code": st.one_of(BAD_CODE, st.sampled_from(["cut", "qc"])),
                                            "kind": st.sampled_from(["start", "work", "end", "START", "", 1])}),
                     max_size=5)
    graphish = st.fixed_dictionaries({"nodes": nodes, "edges": st.lists(st.lists(ODD_TEXT, max_size=3), max_size=4)})
    return st.one_of(json_values, graphish).map(lambda d: json.dumps(d).encode())


def _not_a_graph(content: bytes) -> bool:
    try:
        graphs.parse_graph(json.loads(content.decode("utf-8")))
    except (ValidationError, ValueError, RecursionError):
        return True
    return False


BIG_GRAPH = json.dumps({"nodes": [{"code": f"n{i}", "kind": "start" if i == 0 else "end" if i == 9_999 else "work"}
                                  for i in range(10_000)],
                        "edges": [[f"n{i}", f"n{i + 1}"] for i in range(9_999)]}).encode()
GRAPH_CONTENT = st.one_of(
    st.binary(max_size=200),
    st.text(alphabet=string.printable, max_size=120).map(str.encode),  # mostly malformed JSON
    _graph_document(),
    st.sampled_from([b"[" * 50_000, b'{"nodes": ' + b"9" * 5000 + b"}", b"\xff\xfe\x00", BIG_GRAPH, b""]),
).filter(_not_a_graph)


# command name -> a strategy of argument lists, each with one hostile value in it
def _commands(token: str, plan: str) -> dict:
    t = "atelier"
    return {
        "tenant add": st.one_of(BAD_TENANT.map(lambda v: ["tenant", "add", v]),
                                st.sampled_from(["", " ", "n" * 129, "a\x00b", "\n"]).map(
                                    lambda v: ["tenant", "add", "other", "--name", v])),
        "flag set": st.one_of(BAD_TENANT.map(lambda v: ["flag", "set", v, "FF_SERIAL_STD_HAT", "on"]),
                              ODD_TEXT.filter(lambda v: v != "FF_SERIAL_STD_HAT").map(
                                  lambda v: ["flag", "set", t, v, "on"]),
                              ODD_TEXT.filter(lambda v: v not in ("on", "off")).map(
                                  lambda v: ["flag", "set", t, "FF_SERIAL_STD_HAT", v])),
        "graph create": st.one_of(BAD_CODE.map(lambda v: ["graph", "create", "--tenant", t, "--code", v, "--file", "{graph}"]),
                                  BAD_TENANT.map(lambda v: ["graph", "create", "--tenant", v, "--code", "g", "--file", "{graph}"]),
                                  GRAPH_CONTENT.map(lambda c: ["graph", "create", "--tenant", t, "--code", "g", "--file", c]),
                                  st.sampled_from(["/nonexistent/x.json", "/", "a\x00b", "", "/dev/zero"]).map(
                                      lambda p: ["graph", "create", "--tenant", t, "--code", "g", "--file", p])),
        "job create": st.one_of(
            BAD_CODE.map(lambda v: _job_create(code=v)), BAD_CODE.map(lambda v: _job_create(sku=v)),
            BAD_NUMBER.map(lambda v: _job_create(quantity=v)), BAD_CODE.map(lambda v: _job_create(graph=v)),
            BAD_TENANT.map(lambda v: _job_create(tenant=v)),
            ODD_TEXT.filter(lambda v: v not in ("piece", "batch")).map(lambda v: _job_create(mode=v))),
        "job verbs": st.one_of(
            st.tuples(st.sampled_from(["start", "cancel", "restore", "archive", "show"]), BAD_CODE).map(
                lambda a: ["job", a[0], "--tenant", t, a[1]]),
            st.tuples(st.sampled_from(["start", "cancel", "restore", "archive"]), BAD_KEY).map(
                lambda a: ["job", a[0], "--tenant", t, "J-FUZZ", f"--idempotency-key={a[1]}"])),
        "job list": st.one_of(BAD_TENANT.map(lambda v: ["job", "list", "--tenant", v]),
                              ODD_TEXT.filter(lambda v: v not in ("planned", "in_progress", "completed", "cancelled",
                                                                  "archived")).map(
                                  lambda v: ["job", "list", "--tenant", t, f"--status={v}"])),
        "token": st.one_of(BAD_CODE.map(lambda v: ["token", "spawn", "--tenant", t, v]),
                           BAD_KEY.map(lambda v: ["token", "spawn", "--tenant", t, "J-FUZZ", f"--idempotency-key={v}"]),
                           BAD_NUMBER.map(lambda v: ["token", "show", "--tenant", t, v])),
        "assign plan": st.one_of(BAD_CODE.map(lambda v: ["assign", "plan", "--tenant", t, "J-FUZZ", "--node", "cut", "--operator", v]),
                                 BAD_CODE.map(lambda v: ["assign", "plan", "--tenant", t, "J-FUZZ", "--node", v, "--operator", "op1"])),
        "session": st.one_of(
            st.tuples(st.sampled_from(["start", "pause", "resume", "complete"]), BAD_CODE).map(
                lambda a: ["session", a[0], "--tenant", t, token, "--operator", a[1]]),
            st.tuples(st.sampled_from(["start", "pause", "resume", "complete"]), BAD_NUMBER).map(
                lambda a: ["session", a[0], "--tenant", t, a[1], "--operator", "op1"]),
            BAD_CODE.map(lambda v: ["session", "complete", "--tenant", t, token, "--operator", "op1", "--next", v])),
        "work-queue": st.one_of(BAD_TENANT.map(lambda v: ["work-queue", "--tenant", v]),
                                BAD_NUMBER.map(lambda v: ["work-queue", "--tenant", t, f"--limit={v}"])),
        "outbox relay": st.one_of(BAD_TENANT.map(lambda v: ["outbox", "relay", "--tenant", v]),
                                  BAD_NUMBER.map(lambda v: ["outbox", "relay", f"--batch-size={v}"]),
                                  BAD_NUMBER.map(lambda v: ["outbox", "relay", f"--max-attempts={v}"]),
                                  BAD_SECONDS.map(lambda v: ["outbox", "relay", "--follow", f"--interval={v}"])),
        "check run": st.one_of(
            BAD_TENANT.map(lambda v: ["check", "run", "--tenant", v]),
            ODD_TEXT.map(lambda v: ["check", "run", "--check", f"x{v}"]),
            BAD_NUMBER.map(lambda v: ["check", "run", f"--sample={v}"]),
            BAD_SECONDS.map(lambda v: ["check", "run", f"--timeout={v}"]),
            ODD_TEXT.map(lambda v: ["check", "run", f"--fail-on=x{v}"])).flatmap(
                lambda argv: st.sampled_from([argv, argv + ["--json"]])),
        "check list": ODD_TEXT.map(lambda v: ["check", "list", f"--x{v}"]),
        "metrics serve": st.one_of(
            BAD_NUMBER.filter(lambda v: not (v.isascii() and v.isdigit() and len(v) < 6 and 0 < int(v) < 65536)).map(
                lambda v: ["metrics", "serve", f"--port={v}"]),
            st.integers(min_value=65536, max_value=10**6).map(lambda v: ["metrics", "serve", "--port", str(v)])),
        "repair plan": st.one_of(BAD_TENANT.map(lambda v: ["repair", "plan", "--tenant", v, "--json"]),
                                 ODD_TEXT.map(lambda v: ["repair", "plan", "--tenant", t, "--check", f"x{v}"]),
                                 BAD_NUMBER.map(lambda v: ["repair", "plan", "--tenant", t, f"--row-cap={v}"])),
        "repair plan ids": st.one_of(
            st.tuples(st.sampled_from(["show", "apply"]), st.one_of(st.sampled_from(HOSTILE), ODD_TEXT)).map(
                lambda a: ["repair", a[0], a[1]]),
            st.one_of(st.sampled_from(HOSTILE), ODD_TEXT).map(lambda v: ["repair", "approve", v, "--by", "nok"]),
            BAD_NUMBER.map(lambda v: ["repair", "apply", plan, "--execute", f"--max-rows={v}"]),
            BAD_NUMBER.map(lambda v: ["repair", "apply", plan, "--execute", f"--batch-size={v}"]),
            st.sampled_from(["", " ", "\x00", "a" * 65]).map(lambda v: ["repair", "approve", plan, f"--by={v}"])),
        "actor": st.sampled_from(["", " ", "\x00", "a" * 65, "\n"]).map(
            lambda v: [f"--actor={v}", "job", "start", "--tenant", t, "J-FUZZ"]),
        "doctor": BAD_TENANT.map(lambda v: ["doctor", "--tenant", v]),
    }


def _job_create(code="J-NEW", sku="TOTE", quantity="2", graph="bag", tenant="atelier", mode="piece") -> list:
    return ["job", "create", "--tenant", tenant, "--code", code, "--sku", sku, f"--quantity={quantity}",
            "--graph", graph, f"--mode={mode}"]


COMMANDS = sorted(_commands("1", "p").keys())
CASES_RUN: dict[str, int] = {}


@pytest.fixture
def fuzz_floor(factory):
    """The factory with a job in progress (J-FUZZ), one token and an unapproved plan to aim at."""
    factory.ok("job", "create", "--tenant", "atelier", "--code", "J-FUZZ", "--sku", "TOTE", "--quantity", 2,
               "--graph", "bag")
    token = factory.ok("job", "start", "--tenant", "atelier", "J-FUZZ")["token_ids"][0]
    factory.ok("session", "start", "--tenant", "atelier", token, "--operator", "op1")
    plan = factory.ok("repair", "plan", "--tenant", "atelier", "--json")["plan_id"]
    return factory, str(token), plan


def run_hostile(stores, argv: list, tmp_path) -> None:
    args = []
    for arg in argv:
        if isinstance(arg, bytes):  # a graph file's content
            path = tmp_path / "fuzz-graph.json"
            path.write_bytes(arg)
            arg = str(path)
        args.append(arg.replace("{graph}", str(tmp_path / "missing.json")) if isinstance(arg, str) else arg)
    before = dump_all(stores)
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        status = cli.main(args)
    lines = out.getvalue().splitlines()
    assert len(lines) == 1, (args, out.getvalue())
    body = json.loads(lines[0])
    assert set(body) == {"ok", "data", "error", "meta"} and body["ok"] is False, (args, body)
    assert status in (2, 3) and body["error"]["code"] != "INTERNAL", (args, status, body["error"])
    assert "Traceback" not in out.getvalue() + err.getvalue(), (args, err.getvalue())
    assert dump_all(stores) == before, f"{args!r} wrote to a store"


@pytest.mark.parametrize("command", COMMANDS)
def test_hostile_arguments_get_one_envelope_exit_2_or_3_and_write_nothing(fuzz_floor, tmp_path, command):
    stores, token, plan = fuzz_floor
    ran = []

    @SETTINGS
    @given(argv=_commands(token, plan)[command])
    def case(argv):
        run_hostile(stores, argv, tmp_path)
        ran.append(argv)

    case()
    key = f"{command} [{stores.backend}]"
    CASES_RUN[key] = len(ran)
    print(f"\nfuzz {key}: {len(ran)} cases")
    assert ran, "Hypothesis ran no case"
