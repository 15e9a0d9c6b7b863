"""The regression checklist is enforced by tests that exist: every test named in
docs/regression-checklist.md is defined where the page says, and the pull request
template carries every line of the page."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHECKLIST = ROOT / "docs" / "regression-checklist.md"
TEMPLATE = ROOT / ".github" / "pull_request_template.md"
ROW = re.compile(r"^\| (?P<line>[^|]+?) \| (?P<tests>`tests/.+) \|$")
TEST = re.compile(r"`(?P<path>tests/[\w/]+\.py)::(?P<name>\w+)`")


def rows() -> list[tuple[str, list[tuple[str, str]]]]:
    out = []
    for text in CHECKLIST.read_text(encoding="utf-8").splitlines():
        match = ROW.match(text)
        if match:
            out.append((match["line"], [(m["path"], m["name"]) for m in TEST.finditer(match["tests"])]))
    return out


def defined_tests(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {node.name for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test_")}


def test_the_page_lists_every_line_of_sections_9_and_11_5():
    assert len(rows()) == 18
    assert all(tests for _, tests in rows())


def test_every_listed_test_exists():
    missing = [f"{path}::{name}" for _, tests in rows() for path, name in tests
               if not (ROOT / path).is_file() or name not in defined_tests(ROOT / path)]
    assert missing == [], f"docs/regression-checklist.md names tests that do not exist: {missing}"


def test_the_pull_request_template_carries_every_line():
    template = TEMPLATE.read_text(encoding="utf-8")
    absent = [line for line, _ in rows() if f"- [ ] {line}" not in template]
    assert absent == []
