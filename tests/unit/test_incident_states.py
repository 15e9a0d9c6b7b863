"""The incident state machine as data: every state reachable, resolved final, refusals named."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from checks.incidents import INCIDENT_TRANSITIONS, IncidentState, after_mute, move
from checks.schema import INCIDENT_STATES
from lifecycle.errors import InvalidTransition


def test_the_table_speaks_of_every_state_and_resolved_is_final():
    assert [s.value for s in IncidentState] == list(INCIDENT_STATES)
    reached = {dst for (_, dst) in INCIDENT_TRANSITIONS} | {IncidentState.OPEN}
    assert reached == set(IncidentState)
    assert not [dst for (src, dst) in INCIDENT_TRANSITIONS if src == IncidentState.RESOLVED]
    assert all((s, IncidentState.RESOLVED) in INCIDENT_TRANSITIONS for s in IncidentState
               if s != IncidentState.RESOLVED)


@pytest.mark.parametrize("target", [IncidentState.OPEN, IncidentState.ACKNOWLEDGED, IncidentState.MUTED])
def test_a_resolved_incident_moves_nowhere(target):
    with pytest.raises(InvalidTransition) as refused:
        move(SimpleNamespace(id=7, state="resolved"), target)
    assert "incident 7" in refused.value.message and refused.value.hint == "resolved is final"


def test_a_mute_returns_to_the_state_it_held_back():
    assert after_mute(SimpleNamespace(acknowledged_at=None)) == IncidentState.OPEN
    assert after_mute(SimpleNamespace(acknowledged_at="2026-11-29")) == IncidentState.ACKNOWLEDGED
    with pytest.raises(InvalidTransition):
        move(SimpleNamespace(id=1, state="acknowledged"), IncidentState.ACKNOWLEDGED)
