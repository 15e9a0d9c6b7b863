"""Write the state diagrams of ``lifecycle.states`` into ``docs/state-machines.md``.

``render`` draws any list of machines; the monitor adds its incident machine and writes
the file (``python -m checks.statedocs``, or ``make docs``) after a transition table
changes; ``tests/unit/test_statedocs.py`` fails while the committed file is stale.
"""

from __future__ import annotations

import sys
from pathlib import Path

from .states import (INITIAL, INSTANCE_TRANSITIONS, JOB_TRANSITIONS, SERIAL_TRANSITIONS, TOKEN_TRANSITIONS, InstanceStatus,
                     JobStatus, SerialStatus, TokenStatus)

DOC = Path(__file__).resolve().parent.parent / "docs" / "state-machines.md"

MACHINES = [
    ("Job", JobStatus, JOB_TRANSITIONS, "`hatthasilpa_job.status`. Any other move is refused with "
                                        "`INVALID_TRANSITION` and writes nothing."),
    ("Graph instance", InstanceStatus, INSTANCE_TRANSITIONS,
     "`job_graph_instance.status`. At most one `active` instance per job; an archived instance is never reused."),
    ("Token", TokenStatus, TOKEN_TRANSITIONS,
     "`flow_token.status`. Every move goes through `lifecycle.tokens.move`, which refuses one this diagram "
     "does not show (`INVALID_TRANSITION`, nothing written) and appends a `token_event`; the repair moves are "
     "drawn too. `scrapped` is final, enforced by a database trigger."),
    ("Serial", SerialStatus, SERIAL_TRANSITIONS,
     "`serial_registry.status`, tenant and core. Every change bumps the serial's `version` and writes a "
     "`serial_outbox` row in the same transaction; a voided number is never reused."),
]


def mermaid(enum_cls, table: dict) -> str:
    initial = INITIAL.get(enum_cls, next(iter(enum_cls)))  # else the enum's first member
    lines = ["```mermaid", "stateDiagram-v2", f"    [*] --> {initial.value}"]
    for (src, dst), label in table.items():
        lines.append(f"    {src.value} --> {dst.value}: {label}")
    finals = [s for s in enum_cls if not any(src == s for (src, _) in table)]
    lines += [f"    {s.value} --> [*]" for s in finals]
    lines.append("```")
    return "\n".join(lines)


GENERATED = ("Generated from `lifecycle/states.py` and `checks/incidents.py` by `python -m checks.statedocs` "
             "(`make docs`); do not edit by hand.")


def render(machines=MACHINES) -> str:
    parts = ["# State machines", "", GENERATED, ""]
    for title, enum_cls, table, note in machines:
        parts += [f"## {title}", "", note, "", mermaid(enum_cls, table), ""]
    return "\n".join(parts)
