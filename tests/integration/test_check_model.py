"""Model-based proof on PostgreSQL: random lifecycle sequences never make a check fire.

A Hypothesis state machine drives a fresh tenant through the real use cases only: jobs
through ``lifecycle.services`` (create, start, spawn, cancel, restore), managers through
``lifecycle.assignments.plan``, operators through ``lifecycle.sessions`` (start, pause,
resume, complete) from a small pool so that they collide. A command the current state
refuses is fine only with the refusal the lifecycle documents for it (``REFUSALS``); any
other error fails the walk. After every step all twenty checks report zero rows and no
error. Each kind of command must have succeeded somewhere in the run, so a use case that
silently refused everything cannot pass.

The second property: on a floor with such random activity, any single corruption of the
fault matrix makes at least its own check fire on the rows it corrupted (the exact matrix,
on both backends, is ``test_check_faults.py``); the run must draw several kinds of fault.

``make test`` runs ``HATTHASILPA_MODEL_EXAMPLES`` (default 30) random walks and half as many
corrupted ones; for the full run, e.g.
``HATTHASILPA_MODEL_EXAMPLES=300 pytest -s tests/integration/test_check_model.py``.
"""

from __future__ import annotations

import itertools
import json
import os
from collections import Counter

import sqlalchemy as sa
from hypothesis import HealthCheck, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from checks import get
from lifecycle import assignments, queue, services, sessions
from lifecycle.db import dispose_engine
from lifecycle.errors import InvalidTransition, MixedTokenStates, OperatorBusy, TokenBusy
from lifecycle.schema import flow_token, hatthasilpa_job, token_work_session
from tests.conftest import LINEAR_GRAPH
from tests.faults import FAULTS
from tests.floor import Floor, _new_job, build_clean_floor, checks_target_run, settle_serials

EXAMPLES = int(os.environ.get("HATTHASILPA_MODEL_EXAMPLES", "30"))
OPERATORS = ["nok", "som", "ploy"]  # few enough that starts collide on a busy operator
NODES = [node["code"] for node in LINEAR_GRAPH["nodes"]]

# the only refusals a command may meet on a consistent floor; anything else fails the walk
REFUSALS = {
    "start": (InvalidTransition,),  # a cancelled or completed job
    "spawn": (InvalidTransition, MixedTokenStates),  # not in progress; a set with live and scrapped tokens
    "cancel": (InvalidTransition,),  # already cancelled, or completed
    "restore": (InvalidTransition,),  # not cancelled
    "plan": (InvalidTransition,),  # a job neither planned nor in progress
    "session_start": (TokenBusy, OperatorBusy),  # assigned to another operator; operator running elsewhere
    "resume": (OperatorBusy,),  # the operator started another session meanwhile
}
KINDS = ("create", "start", "spawn", "cancel", "restore", "plan", "session_start", "pause", "resume", "complete")


def floorwalk(stores, graph, tenants, done: Counter, refused: Counter, clean_floor: bool = False):
    """A state machine class walking a fresh tenant (optionally starting from the clean floor);
    ``done`` and ``refused`` count the commands of every walk by kind."""

    class Floorwalk(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.code = f"walk{next(tenants)}"
            stores.add_tenant(self.code)
            stores.ok("graph", "create", "--tenant", self.code, "--code", "bag", "--file", graph)
            self.floor = build_clean_floor(stores, self.code) if clean_floor else Floor(stores, tenant_code=self.code)
            self.jobs: dict[str, str] = {}  # job code -> production mode, jobs of this walk only
            if not clean_floor:  # every walk starts with one job in progress, so its steps go to working it
                _new_job(stores, "J0", "TOTE", 2, "piece", tenant=self.code)
                with stores.uow(self.code) as uow:
                    services.start_job(uow, "J0")
                    uow.commit()
                settle_serials(self.floor)
                self.jobs["J0"] = "piece"

        def teardown(self) -> None:  # give the example's pooled connections back
            dispose_engine(stores.settings.tenant_url(self.code))

        def _do(self, kind: str, use_case, *args):
            """Run one use case in its own unit of work; None when refused as ``REFUSALS`` allows."""
            try:
                with stores.uow(self.code) as uow:
                    result = use_case(uow, *args)
                    uow.commit()
            except REFUSALS.get(kind, ()):
                refused[kind] += 1
                return None
            done[kind] += 1
            return result

        def _tokens(self, *statuses: str) -> list[dict]:
            """This walk's tokens in the given statuses (never the clean floor's own), with who holds them."""
            query = (sa.select(flow_token.c.id, token_work_session.c.operator_id)
                     .join(hatthasilpa_job, hatthasilpa_job.c.id == flow_token.c.job_id)
                     .outerjoin(token_work_session, sa.and_(token_work_session.c.token_id == flow_token.c.id,
                                                            token_work_session.c.status.in_(["active", "paused"])))
                     .where(hatthasilpa_job.c.job_code.in_(list(self.jobs)), flow_token.c.status.in_(statuses))
                     .order_by(flow_token.c.id))
            with self.floor.tenant.connect() as conn:
                return [{"token_id": t, "operator": op} for t, op in conn.execute(query)]

        @precondition(lambda self: len(self.jobs) < 3)  # few jobs, so the steps go to working them
        @rule(quantity=st.integers(1, 3), mode=st.sampled_from(["piece", "batch"]))
        def create_job(self, quantity, mode):
            code = f"J{len(self.jobs)}"
            _new_job(stores, code, "TOTE", quantity, mode, tenant=self.code)
            self.jobs[code] = mode
            done["create"] += 1

        @precondition(lambda self: self.jobs)
        @rule(data=st.data(), action=st.sampled_from(["start", "spawn", "cancel", "restore", "plan"]))
        def job_command(self, data, action):
            job = data.draw(st.sampled_from(sorted(self.jobs)))
            if action == "plan":  # a manager plans one node of the job for an operator
                self._do("plan", assignments.plan, job, data.draw(st.sampled_from(NODES)),
                         data.draw(st.sampled_from(OPERATORS)))
                return
            use_case = {"start": services.start_job, "spawn": services.spawn_tokens,
                        "cancel": services.cancel_job, "restore": services.restore_job}[action]
            if self._do(action, use_case, job) is not None and action != "restore":
                settle_serials(self.floor)  # issued or voided serials reach core, as the relay does

        @precondition(lambda self: self._tokens("ready", "active", "paused"))
        @rule(data=st.data())
        def operator_command(self, data):
            """One of the session commands that has a token to act on: start (from the work queue,
            as an operator picks), pause, resume or complete (by the session's operator)."""
            with stores.uow(self.code) as uow:
                ready = [t for t in queue.read_queue(uow)["tokens"]
                         if t["job_code"] in self.jobs and t["status"] == "ready"]
            held = {"pause": self._tokens("active"), "resume": self._tokens("paused"),
                    "complete": self._tokens("active")}
            moves = (["session_start"] if ready else []) + [move for move, tokens in held.items() if tokens]
            if not moves:  # ready tokens the work queue does not offer: nothing an operator can take
                return
            move = data.draw(st.sampled_from(moves))
            if move == "session_start":
                token = data.draw(st.sampled_from(ready))
                self._do(move, sessions.start, token["token_id"], data.draw(st.sampled_from(OPERATORS)))
                return
            token = data.draw(st.sampled_from(held[move]))
            use_case = {"pause": sessions.pause, "resume": sessions.resume, "complete": sessions.complete}[move]
            if self._do(move, use_case, token["token_id"], token["operator"]) is not None and move == "complete":
                settle_serials(self.floor)  # a completed piece's serial reaches core

    return Floorwalk


def test_lifecycle_sequences_keep_every_check_at_zero(pg_factory, tmp_path):
    graph = tmp_path / "bag.json"
    graph.write_text(json.dumps(LINEAR_GRAPH))
    done, refused = Counter(), Counter()

    class Clean(floorwalk(pg_factory, graph, itertools.count(), done, refused)):
        @invariant()
        def every_check_reports_zero(self):
            results = checks_target_run(self.floor)
            assert len(results) == 20
            assert {c: (r.count, r.error, r.sample[:2]) for c, r in results.items() if r.count or r.error} == {}

    run_state_machine_as_test(Clean, settings=SETTINGS)
    print(f"\nmodel walks: done {dict(done)}, refused {dict(refused)}")
    assert [kind for kind in KINDS if not done[kind]] == [], (done, refused)  # every use case really ran


def test_any_single_corruption_makes_its_own_check_fire(pg_factory, tmp_path):
    graph = tmp_path / "bag.json"
    graph.write_text(json.dumps(LINEAR_GRAPH))
    drawn = Counter()

    class Corrupted(floorwalk(pg_factory, graph, itertools.count(), Counter(), Counter(), clean_floor=True)):
        corrupted = None

        @precondition(lambda self: self.corrupted is None)
        @rule(check=st.sampled_from(sorted(FAULTS)))
        def corrupt(self, check):
            self.corrupted = (check, FAULTS[check].apply(self.floor))
            drawn[check] += 1

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

    run_state_machine_as_test(Corrupted, settings=CORRUPTED_SETTINGS)
    print(f"\nfaults drawn: {dict(drawn)}")
    assert len(drawn) >= min(5, EXAMPLES // 6), drawn  # several kinds of corruption, not one over and over


# random walks (a failure prints the blob that replays it); no example database in the working tree
SETTINGS = settings(max_examples=EXAMPLES, stateful_step_count=10, deadline=None, database=None, print_blob=True,
                    suppress_health_check=list(HealthCheck))
# each example builds the whole clean floor first: half as many walks, a few steps after the corruption
CORRUPTED_SETTINGS = settings(SETTINGS, max_examples=max(1, EXAMPLES // 2), stateful_step_count=4)
