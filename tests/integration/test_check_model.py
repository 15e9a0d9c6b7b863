"""Model-based proof on PostgreSQL: random lifecycle sequences never make a check fire.

A Hypothesis state machine drives jobs through the lifecycle services (create, start,
spawn, cancel, restore) and operators through sessions (start, pause, resume,
complete); serials are issued, voided and completed alongside. After every step all
twenty checks report zero rows and no error. (The converse — each corruption makes its
own check fire — is the fault matrix, ``test_check_faults.py``, on both backends.)
"""

from __future__ import annotations

import itertools
import json

from hypothesis import HealthCheck, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test
import sqlalchemy as sa

from lifecycle import queue, services
from lifecycle.db import dispose_engine
from lifecycle.errors import HatthasilpaError
from tests.conftest import LINEAR_GRAPH
from tests.floor import Floor, _act, _job, checks_target_run, complete, issue_serials, pause, \
    void_scrapped_serials, work_on

NEXT = {"cut": "stitch", "stitch": "edge", "edge": "qc", "qc": None}


def test_lifecycle_sequences_keep_every_check_at_zero(pg_factory, tmp_path):
    stores = pg_factory
    graph = tmp_path / "bag.json"
    graph.write_text(json.dumps(LINEAR_GRAPH))
    tenants = itertools.count()

    class Floorwalk(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.code = f"walk{next(tenants)}"
            stores.add_tenant(self.code)
            stores.ok("graph", "create", "--tenant", self.code, "--code", "bag", "--file", graph)
            self.floor = Floor(stores, tenant_code=self.code)
            self.jobs: dict[str, str] = {}  # job code -> production mode
            self.operators = itertools.count()

        def teardown(self) -> None:  # give the example's pooled connections back
            dispose_engine(stores.settings.tenant_url(self.code))

        def _try(self, action, job: str) -> bool:
            try:
                _act(stores, action, job, tenant=self.code)
                return True
            except HatthasilpaError:
                return False

        def _sessions(self, status: str) -> list[int]:
            return [r[0] for r in self.floor.tenant_sql(
                "SELECT id FROM token_work_session WHERE status = :s ORDER BY id", s=status)]

        @rule(quantity=st.integers(1, 3), mode=st.sampled_from(["piece", "batch"]))
        def create_job(self, quantity, mode):
            code = f"J{len(self.jobs)}"
            _job(stores, code, "TOTE", quantity, mode, tenant=self.code)
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
                ready = queue.read_queue(uow)["tokens"]
            if ready:
                token = data.draw(st.sampled_from(ready))
                work_on(self.floor, token["token_id"], f"op{next(self.operators)}")

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

        @invariant()
        def every_check_reports_zero(self):
            results = checks_target_run(self.floor)
            assert len(results) == 20
            assert {c: (r.count, r.error, r.sample[:2]) for c, r in results.items() if r.count or r.error} == {}

    run_state_machine_as_test(Floorwalk, settings=settings(
        max_examples=12, stateful_step_count=12, deadline=None, derandomize=True,
        suppress_health_check=list(HealthCheck)))
