"""The committed state diagrams are generated from the code and must match it."""

from checks import statedocs
from checks.incidents import INCIDENT_TRANSITIONS
from lifecycle.states import JOB_TRANSITIONS


def test_committed_state_docs_match_the_code():
    assert statedocs.DOC.read_text(encoding="utf-8") == statedocs.render(), \
        "docs/state-machines.md is stale: run `make docs`"


def test_every_job_and_incident_transition_is_drawn():
    text = statedocs.render()
    for (src, dst) in [*JOB_TRANSITIONS, *INCIDENT_TRANSITIONS]:
        assert f"{src.value} --> {dst.value}:" in text
    assert "## Incident" in text and "resolved --> [*]" in text
