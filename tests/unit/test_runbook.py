"""The runbook the alerts link to (`docs/runbook.md#<check>`) covers the whole catalogue."""

from __future__ import annotations

import re
from pathlib import Path

from checks import catalogue
from reconcile.repairs import REPAIRS

RUNBOOK = Path(__file__).resolve().parents[2] / "docs" / "runbook.md"


def sections() -> dict[str, str]:
    text = RUNBOOK.read_text()
    parts = re.split(r"^## (\S+)\s*$", text, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2]))


def test_every_check_has_a_section_with_its_alert_and_action():
    found = sections()
    for check in catalogue.all_checks():
        assert check.id in found, f"docs/runbook.md has no section '## {check.id}'"
        body = found[check.id]
        alert = "HatthasilpaCriticalIntegrityViolation" if check.severity.value == "critical" \
            else "HatthasilpaIntegrityViolation"
        assert f"**Alert:** {alert}" in body, check.id
        assert "**On the floor:**" in body and "**Likely cause:**" in body, check.id
        if check.id in REPAIRS:
            assert f"**Repair (`{REPAIRS[check.id].action}`):**" in body, check.id
        else:
            assert "**Manual procedure (no automatic action):**" in body, check.id
