"""Alert rules load in Prometheus and their unit tests fire and clear as intended."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"


@pytest.fixture(scope="module")
def promtool():
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is required: `apt-get install prometheus` (Debian) provides it; .ci/run installs it")
    return path


def test_alert_rules_load(promtool):
    proc = subprocess.run([promtool, "check", "rules", str(RULES / "alerts.yml")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "8 rules found" in proc.stdout + proc.stderr


def test_alert_rule_unit_tests_pass(promtool):
    proc = subprocess.run([promtool, "test", "rules", str(RULES / "alerts_test.yml")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_alert_rule_unit_tests_can_fail(promtool, tmp_path):
    """The promtool harness really checks: a wrong expectation fails."""
    (tmp_path / "alerts.yml").write_text((RULES / "alerts.yml").read_text())
    broken = (RULES / "alerts_test.yml").read_text().replace("eval_time: 4m", "eval_time: 9m", 1)
    (tmp_path / "alerts_test.yml").write_text(broken)
    proc = subprocess.run([promtool, "test", "rules", str(tmp_path / "alerts_test.yml")], capture_output=True, text=True)
    assert proc.returncode != 0
