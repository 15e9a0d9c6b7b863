"""Model-based proof on PostgreSQL: random lifecycle sequences never make a check fire.

A Hypothesis state machine drives jobs through the lifecycle services (create, start,
spawn, cancel, restore) and operators through sessions (start, pause, resume,
complete); serials are issued, voided and completed alongside. After every step all
twenty checks report zero rows and no error. The second property: on a floor with such
random activity, any single corruption of the fault matrix makes at least its own check
fire on the rows it corrupted (the exact matrix, on both backends, is
``test_check_faults.py``).
"""

from __future__ import annotations

import itertools
import json

from hypothesis import HealthCheck, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from checks import get
from lifecycle import queue, services
from lifecycle.db import dispose_engine
from lifecycle.errors import HatthasilpaError
from tests.conftest import LINEAR_GRAPH
from tests.faults import FAULTS
from tests.floor import Floor, _new_job, _run, build_clean_floor, checks_target_run, complete, issue_serials, pause, \
    void_scrapped_serials, work_on

NEXT = {"cut": "stitch", "stitch": "edge", "edge": "qc", "qc": None}


def floorwalk(stores, graph, tenants, clean_floor: bool = False):
    """A state machine class walking a fresh tenant (optionally starting from the clean floor)."""

    class Floorwalk(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.code = f"walk{next(tenants)}"
            stores.add_tenant(self.code)
            stores.ok("graph", "create", "--tenant", self.code, "--code", "bag", "--file", graph)
            self.floor = build_clean_floor(stores, self.code) if clean_floor else Floor(stores, tenant_code=self.code)
            self.jobs: dict[str, str] = {}  # job code -> production mode, jobs of this walk only
            self.operators = itertools.count()

        def teardown(self) -> None:  # give the example's pooled connections back
            dispose_engine(stores.settings.tenant_url(self.code))

        def _try(self, action, job: str) -> bool:
            try:
                _run(stores, action, job, tenant=self.code)
                return True
            except HatthasilpaError:
                return False

        def _sessions(self, status: str) -> list[int]:
            """This walk's sessions in a status (never the clean floor's own)."""
            rows = self.floor.tenant_sql(
                "SELECT s.id, j.job_code FROM token_work_session s JOIN flow_token t ON t.id = s.token_id "
                "JOIN hatthasilpa_job j ON j.id = t.job_id WHERE s.status = :s ORDER BY s.id", s=status)
            return [session for session, job in rows if job in self.jobs]

        @rule(quantity=st.integers(1, 3), mode=st.sampled_from(["piece", "batch"]))
        def create_job(self, quantity, mode):
            code = f"J{len(self.jobs)}"
            _new_job(stores, code, "TOTE", quantity, mode, tenant=self.code)
            self.jobs[code] = mode

        @precondition(lambda self: self.jobs)
        @rule(data=st.data(), action=st.sampled_from(["start", "spawn", "cancel", "restore"]))
        def job_command(self, data, action):
            job = data.draw(st.sampled_from(sorted(self.jobs)))
            use_case = {"start": services.start_job, "spawn": services.spawn_tokens,
                        "cancel": services.cancel_job, "restore": services.restore_job}[action]
            if self._try(use_case, job):
                if action in ("start", "spawn") and self.jobs[job] == "piece":
                    issue_serials(self.floor, job)
                if action == "cancel":
                    void_scrapped_serials(self.floor, job)

        @rule(data=st.data())
        def session_start(self, data):
            with stores.uow(self.code) as uow:
                ready = [t for t in queue.read_queue(uow)["tokens"]
                         if t["job_code"] in self.jobs and t["status"] == "ready"]
            if ready:
                token = data.draw(st.sampled_from(ready))
                work_on(self.floor, token["token_id"], f"walker{next(self.operators)}")

        @rule(data=st.data(), move=st.sampled_from(["pause", "resume", "complete"]))
        def session_move(self, data, move):
            sessions = self._sessions("paused" if move == "resume" else "active")
            if not sessions:
                return
            session = data.draw(st.sampled_from(sessions))
            if move == "complete":
                node = self.floor.tenant_sql(
                    "SELECT n.node_code FROM token_work_session s JOIN flow_token t ON t.id = s.token_id "
                    "JOIN routing_node n ON n.id = t.current_node_id WHERE s.id = :s", s=session).scalar_one()
                complete(self.floor, session, NEXT[node])
            else:
                pause(self.floor, session, paused=move == "pause")

    return Floorwalk


def test_lifecycle_sequences_keep_every_check_at_zero(pg_factory, tmp_path):
    graph = tmp_path / "bag.json"
    graph.write_text(json.dumps(LINEAR_GRAPH))

    class Clean(floorwalk(pg_factory, graph, itertools.count())):
        @invariant()
        def every_check_reports_zero(self):
            results = checks_target_run(self.floor)
            assert len(results) == 20
            assert {c: (r.count, r.error, r.sample[:2]) for c, r in results.items() if r.count or r.error} == {}

    run_state_machine_as_test(Clean, settings=SETTINGS)


def test_any_single_corruption_makes_its_own_check_fire(pg_factory, tmp_path):
    graph = tmp_path / "bag.json"
    graph.write_text(json.dumps(LINEAR_GRAPH))

    class Corrupted(floorwalk(pg_factory, graph, itertools.count(), clean_floor=True)):
        corrupted = None

        @precondition(lambda self: self.corrupted is None)
        @rule(check=st.sampled_from(sorted(FAULTS)))
        def corrupt(self, check):
            self.corrupted = (check, FAULTS[check].apply(self.floor))

        @invariant()
        def the_corrupted_check_fires(self):
            results = checks_target_run(self.floor)
            assert [c for c, r in results.items() if r.error] == []
            if self.corrupted is None:
                assert [c for c, r in results.items() if r.count] == []
                return
            check, expected = self.corrupted
            key = get(check).keys[0]
            assert expected <= {row[key] for row in results[check].sample}, check

    run_state_machine_as_test(Corrupted, settings=SETTINGS)


SETTINGS = settings(max_examples=12, stateful_step_count=12, deadline=None, derandomize=True,
                    suppress_health_check=list(HealthCheck))
