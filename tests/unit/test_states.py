"""The state machines are data; the guard reads the table."""

import pytest

from lifecycle.errors import InvalidTransition
from lifecycle.states import JOB_TRANSITIONS, JobStatus, require_job_transition, sources


def test_job_table_matches_spec_4_1():
    assert set(JOB_TRANSITIONS) == {
        (JobStatus.PLANNED, JobStatus.IN_PROGRESS), (JobStatus.IN_PROGRESS, JobStatus.COMPLETED),
        (JobStatus.PLANNED, JobStatus.CANCELLED), (JobStatus.IN_PROGRESS, JobStatus.CANCELLED),
        (JobStatus.CANCELLED, JobStatus.PLANNED), (JobStatus.COMPLETED, JobStatus.ARCHIVED),
        (JobStatus.CANCELLED, JobStatus.ARCHIVED)}


@pytest.mark.parametrize("src", list(JobStatus))
@pytest.mark.parametrize("dst", list(JobStatus))
def test_guard_allows_exactly_the_table(src, dst):
    if (src, dst) in JOB_TRANSITIONS:
        require_job_transition(src, dst, "J")
    else:
        with pytest.raises(InvalidTransition) as info:
            require_job_transition(src, dst, "J")
        assert info.value.code == "INVALID_TRANSITION" and info.value.hint


def test_sources_reads_the_table():
    assert set(sources(JOB_TRANSITIONS, JobStatus.CANCELLED)) == {JobStatus.PLANNED, JobStatus.IN_PROGRESS}
