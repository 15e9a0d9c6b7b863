"""The catalogue: every check, in the order of ``docs/checks.md``, keyed by id."""

from __future__ import annotations

from types import MappingProxyType

from lifecycle.errors import ValidationError

from . import instances, serials, sessions, tokens
from .model import GX_PREFIX, Cadence, Check

CHECK_IDS = (
    "orphan_token", "multi_spawn_instance", "token_count_mismatch", "mixed_token_states",
    "scrapped_token_resurrected", "work_queue_pollution", "multiple_active_instances",
    "cancelled_job_not_clean", "session_without_assignment", "assignment_without_token",
    "duplicate_open_session", "session_on_dead_token", "stale_open_session", "serial_missing_in_core",
    "serial_missing_in_tenant", "serial_field_mismatch", "serial_outbox_lag",
    "temp_serial_on_production_tenant", "duplicate_serial", "token_without_serial",
)

_by_id = {c.id: c for c in tokens.CHECKS + instances.CHECKS + sessions.CHECKS + serials.CHECKS}
CATALOGUE: "MappingProxyType[str, Check]" = MappingProxyType({cid: _by_id[cid] for cid in CHECK_IDS})


def all_checks() -> list[Check]:
    return list(CATALOGUE.values())


def get(check_id: str) -> Check:
    try:
        return CATALOGUE[check_id]
    except KeyError:
        raise ValidationError(f"unknown check {check_id!r}", hint="list them: hatthasilpa check list") from None


def select(check_ids: list[str] | None = None, fast_only: bool = False) -> list[Check]:
    """The named checks (every check when None), validated; ``fast_only`` drops history readers."""
    chosen = [get(cid) for cid in dict.fromkeys(check_ids)] if check_ids else all_checks()
    return [c for c in chosen if c.fast] if fast_only else chosen


def cadence_of(check_id: str) -> Cadence:
    """How often the schedules run a check id of the monitor store: a catalogue check at its
    cadence, a Great Expectations suite (``gx.<table>``) nightly."""
    if check_id.startswith(GX_PREFIX):
        return Cadence.NIGHTLY
    check = CATALOGUE.get(check_id)
    return check.cadence if check is not None else Cadence.LIVE
