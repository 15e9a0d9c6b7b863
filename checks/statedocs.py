"""Write ``docs/state-machines.md``: the lifecycle's machines and the incident machine.

Run ``python -m checks.statedocs`` (or ``make docs``) after changing a transition table.
"""

from __future__ import annotations

import sys

from lifecycle import statedocs

from .incidents import INCIDENT_TRANSITIONS, IncidentState

DOC = statedocs.DOC

MACHINES = statedocs.MACHINES + [
    ("Incident", IncidentState, INCIDENT_TRANSITIONS,
     "`incident.state` in the monitor store, one unresolved incident per (tenant, check). A recorded run "
     "opens it, keeps it and resolves it; `incident ack|mute|unmute` move it. A mute also ends by itself at "
     "`muted_until`, and early when a run finds more rows than at muting. Any other move is refused with "
     "`INVALID_TRANSITION` and writes nothing; `resolved` is final."),
]


def render() -> str:
    return statedocs.render(MACHINES)


def main() -> int:
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(render(), encoding="utf-8")
    print(f"wrote {DOC}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
