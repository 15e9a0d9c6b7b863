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
- ``spawn.after_instance`` — a start has its (possibly new) active instance, no tokens yet.
- ``spawn.mid_tokens`` — the token rows inserted, their ``spawned`` events not yet.
- ``spawn.after_serials`` — tokens and their serials (with outbox rows) written, uncommitted.
- ``cancel.after_scrap`` — a cancel's tokens scrapped and serials voided, instances not yet archived.
- ``session_start.after_assignment`` — the operator's assignment written, the session not yet.
- ``session_complete.after_routing`` — the session closed and the token routed, uncommitted.
- ``repair.mid_batch`` — a repair row applied and audited in the batch's open transaction.
- ``incident.after_update`` — a run resolved an incident, its findings not yet written (the
  monitor store's one transaction of ``check run``).
- ``repair.after_tenant_commit`` — every batch committed in the tenant, the audit not yet copied
  to the monitor store.

Every point but ``relay.after_core_upsert``, ``relay.after_mark`` and
``repair.after_tenant_commit`` sits inside one open transaction, so a kill there leaves
nothing of the operation; those three sit between two commits, and the next run completes
what the first one started (``tests/e2e/test_fault_points.py``, ``tests/e2e/test_outbox_crash.py``).
"""

from __future__ import annotations

import os
import signal
from collections import Counter

ENV = "HATTHASILPA_FAULT_POINT"
POINTS = ("relay.after_claim", "relay.mid_batch", "relay.after_core_upsert", "relay.after_mark",
          "spawn.after_instance", "spawn.mid_tokens", "spawn.after_serials", "cancel.after_scrap",
          "session_start.after_assignment", "session_complete.after_routing",
          "repair.mid_batch", "repair.after_tenant_commit", "incident.after_update")

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
