"""Named fault points, so crash tests can kill a process at an exact place.

``fault_point(name)`` does nothing unless the environment variable
``HATTHASILPA_FAULT_POINT`` names it; then it sends SIGKILL to its own process — no
cleanup, no rollback, no ``finally`` — exactly like ``kill -9`` or a lost machine.
``NAME@N`` fires on the N-th time the point is reached (default the first); several
points may be listed, comma-separated. Production never sets the variable.

Points (where each sits is documented at its call):

- ``relay.after_claim`` — outbox rows claimed, nothing written to core yet.
- ``relay.mid_batch`` — part of a batch upserted in the open core transaction.
- ``relay.after_core_upsert`` — core committed, the tenant rows not yet marked published.
- ``relay.after_mark`` — the batch marked published and committed.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

ENV = "HATTHASILPA_FAULT_POINT"
POINTS = ("relay.after_claim", "relay.mid_batch", "relay.after_core_upsert", "relay.after_mark")

_hits: Counter = Counter()


def armed(environ: dict | None = None) -> dict[str, int]:
    """The armed points and the hit on which each fires."""
    spec = (os.environ if environ is None else environ).get(ENV, "")
    points = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, _, nth = item.partition("@")
        points[name] = int(nth) if nth else 1
    return points


def fault_point(name: str) -> None:
    if name not in POINTS:
        raise ValueError(f"unknown fault point {name!r}")
    fire_on = armed().get(name)
    if fire_on is None:
        return
    _hits[name] += 1
    if _hits[name] == fire_on:
        os.kill(os.getpid(), signal.SIGKILL)
