"""Soak with chaos: the whole product under real work on PostgreSQL while processes are SIGKILLed.

    .venv/bin/python benchmarks/soak.py [--minutes 10] [--chaos-interval 20] [--seed N]
                                        [--pg-url postgresql://postgres@127.0.0.1:5432/postgres] [--keep] [--json]

Twelve worker processes drive one production tenant through the real command line
(``hatthasilpa.cli.run``, the function behind the console script, one call per command):

- 8 operators take tokens from their work queue and start, pause, resume and complete
  sessions, picking a successor with ``--next`` where the routing forks;
- a manager creates, starts, cancels, restores and restarts (starts again after a
  restore) jobs, archives finished ones and plans assignments; it starts, cancels and restores
  with an idempotency key, and a manager killed before it saw the answer retries the command
  with the same key when it comes back;
- 2 outbox relays publish serial events to core, side by side;
- the monitor runs every check, then plans, approves (another person: four eyes) and
  applies a repair of whatever the checks found.

Meanwhile this process, the chaos, ``kill -9``s one worker every ``--chaos-interval``
seconds (give or take a quarter; the role is drawn first, then a worker of that role) and
starts it again. Each worker appends one JSON line per command to its log; a refusal
(exit 3: TOKEN_BUSY, OPERATOR_BUSY, INVALID_TRANSITION, CONFLICT …) is expected and
counted, anything else (exit 1 or 2, a check that errored, a worker that dies on its own)
is an error and fails the soak.

At the end the workers are stopped, the relay drains the outbox, and the soak holds the
product to its end conditions: outbox empty, every check of the catalogue zero (and none
errored), the doctor clean, tenant and core serial registries equal, no serial number on
two tokens or issued twice, every serial's status following its token's (issued, completed,
voided), every completed session closed with its worked seconds, and ``audit verify``
clean. Progress goes to stderr every few seconds, the figures to stdout (``--json`` for the
machine-readable report); the exit code is 1 when an end condition fails or a worker erred.
The soak's databases (``hs_soak_<hex>_*``) are dropped at the end unless ``--keep``; the
workers' logs are kept too when the soak fails.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
TENANT = "atelier"
OPERATORS = 8
RELAYS = 2
SKUS = ("TOTE", "WALLET", "STRAP")
PLANNER, APPROVER = "soak-planner", "soak-approver"
# cut → stitch → (edge | paint) → qc: completing on stitch needs --next
GRAPH = {"nodes": [{"code": "cut", "kind": "start"}, {"code": "stitch", "kind": "work"},
                   {"code": "edge", "kind": "work"}, {"code": "paint", "kind": "work"},
                   {"code": "qc", "kind": "end"}],
         "edges": [["cut", "stitch"], ["stitch", "edge"], ["stitch", "paint"], ["edge", "qc"], ["paint", "qc"]]}
SUCCESSORS = {"cut": ["stitch"], "stitch": ["edge", "paint"], "edge": ["qc"], "paint": ["qc"], "qc": []}
NODES = [n["code"] for n in GRAPH["nodes"]]
# every kind a soak of a minute or more runs at least once (the test asserts it)
KINDS = ("job.create", "job.start", "job.restart", "job.cancel", "job.restore", "job.archive", "assign.plan",
         "session.start", "session.pause", "session.resume", "session.complete", "outbox.relay", "check.run",
         "repair.plan", "repair.approve", "repair.apply")


def progress(message: str) -> None:
    print(f"soak {time.strftime('%H:%M:%S')}: {message}", file=sys.stderr, flush=True)


# =========================================================================== workers
class Worker:
    """One worker process: commands through the real CLI, one JSON line per command in its log."""

    def __init__(self, role: str, name: str, log: str, seed: int) -> None:
        self.role, self.name = role, name
        self.rng = random.Random(seed)
        self.log = log
        self.fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.stopping = False
        signal.signal(signal.SIGTERM, self._stop)

    def _stop(self, *_):
        self.stopping = True

    def record(self, **line) -> None:
        # one write(2) per line on an O_APPEND file: a SIGKILL leaves whole lines only
        os.write(self.fd, (json.dumps({"worker": self.name, "role": self.role, **line}, default=str) + "\n").encode())

    def call(self, kind: str, *args, **extra) -> tuple[str, dict | None, dict]:
        """Run one command; return its outcome (ok, refused or error), its data and its log line,
        which the caller may add to before it records it."""
        from hatthasilpa import cli

        code, body, _ = cli.run(["--actor", self.name, *map(str, args)])
        error = (body or {}).get("error") or {}
        line = {"kind": kind, "outcome": {0: "ok", 3: "refused"}.get(code, "error"), **extra}
        if error:
            line["code"] = error.get("code")
        if line["outcome"] == "error":
            line.update(args=list(map(str, args)), message=error.get("message", f"exit {code} without an envelope"))
        return line["outcome"], (body or {}).get("data"), line

    def do(self, kind: str, *args, **extra) -> tuple[str, dict | None]:
        """``call`` and record."""
        outcome, data, line = self.call(kind, *args, **extra)
        self.record(**line)
        return outcome, data

    def read(self, *args) -> dict | None:
        """A read the soak needs to choose its next command (not counted); an error is recorded."""
        outcome, data, line = self.call("read", *args)
        if outcome != "ok":
            self.record(**line)
            return None
        return data

    def pause(self, low: float, high: float) -> None:
        """Think time between commands (pacing, not synchronization)."""
        time.sleep(self.rng.uniform(low, high))

    def run(self) -> None:
        step = getattr(self, f"step_{self.role}")
        while not self.stopping:
            step()


class Operator(Worker):
    """Start, pause, resume and complete sessions; one running session, any number paused."""

    def __init__(self, *a) -> None:
        super().__init__(*a)
        self.active: int | None = None
        self.paused: list[int] = []
        self.sync()

    def sync(self) -> None:
        """Look at the bench: this operator's open sessions as the tenant holds them (after a restart,
        or after a refusal: a cancel may have closed them)."""
        import sqlalchemy as sa

        from hatthasilpa import settings
        from lifecycle.db import get_engine

        with get_engine(settings.load().tenant_url(TENANT)).connect() as conn:
            rows = conn.execute(sa.text("SELECT token_id, status FROM token_work_session "
                                        "WHERE operator_id = :op AND status IN ('active', 'paused') ORDER BY id"),
                                {"op": self.name}).all()
        self.active = next((t for t, s in rows if s == "active"), None)
        self.paused = [t for t, s in rows if s == "paused"]

    def session(self, verb: str, token: int, *more) -> tuple[str, dict | None]:
        outcome, data, line = self.call(f"session.{verb}", "session", verb, "--tenant", TENANT, token,
                                        "--operator", self.name, *more, token=token)
        if outcome == "ok" and verb == "complete":  # what the operator was told: checked at the end
            line.update(session_id=data["session_id"], work_seconds=data["work_seconds"],
                        token_status=data["token_status"], node=data["node"])
        self.record(**line)
        if outcome != "ok":
            self.sync()
        return outcome, data

    def step_operator(self) -> None:
        self.pause(0.05, 0.4)
        roll = self.rng.random()
        if self.active is not None:
            token = self.active
            if roll < 0.7:
                shown = self.read("token", "show", "--tenant", TENANT, token)
                options = SUCCESSORS.get((shown or {}).get("node"), [])
                more = ["--next", self.rng.choice(options)] if len(options) > 1 else []
                if self.session("complete", token, *more)[0] == "ok":
                    self.active = None
            elif self.session("pause", token)[0] == "ok":
                self.paused.append(token)
                self.active = None
        elif self.paused and roll < 0.4:
            token = self.rng.choice(self.paused)
            if self.session("resume", token)[0] == "ok":
                self.paused.remove(token)
                self.active = token
        else:
            queue = self.read("work-queue", "--tenant", TENANT, "--operator", self.name, "--limit", 20)
            tokens = (queue or {}).get("tokens") or []
            if tokens:
                mine = [t for t in tokens if t["assigned_operator"] == self.name]
                token = (mine[0] if mine else self.rng.choice(tokens))["token_id"]
                if self.session("start", token)[0] == "ok":
                    self.active = token


class Manager(Worker):
    """Create, start, cancel, restore, restart and archive jobs; plan assignments. Three steps in
    ten do what it has done least so far, so a short soak still does every kind."""

    WEIGHTS = {"job.create": 20, "job.start": 15, "job.restart": 10, "job.cancel": 10, "job.restore": 10,
               "job.archive": 7, "assign.plan": 28}

    def __init__(self, *a) -> None:
        super().__init__(*a)
        self.restored: set[str] = set()  # to start again (forgotten by a restart: then started as drawn)
        self.done = Counter(ln["kind"] for ln in read_lines([Path(self.log)]) if ln["outcome"] == "ok")
        self.retry_interrupted()

    def record(self, **line) -> None:
        super().record(**line)
        if line["outcome"] == "ok":
            self.done[line["kind"]] += 1

    def retry_interrupted(self) -> None:
        """A manager killed between a command's intent and its result retries it with the same
        idempotency key, as a person would: the retry completes it or replays its first result."""
        lines = read_lines([Path(self.log)])
        intents = [ln for ln in lines if ln["kind"] == "intent"]
        answered = {ln.get("key") for ln in lines if ln["kind"] != "intent"}
        if intents and intents[-1]["key"] not in answered:
            last = intents[-1]
            self.job_command(last["op"], last["verb"], last["job"], key=last["key"], retried=True)

    def job_command(self, kind: str, verb: str, code: str, key: str | None = None, **extra) -> str:
        """``job start|cancel|restore`` with an idempotency key, its intent recorded first."""
        if key is None:
            key = f"{verb}-{code}-{uuid.uuid4().hex[:8]}"
            self.record(kind="intent", outcome="intent", op=kind, verb=verb, job=code, key=key)
        outcome, data, line = self.call(kind, "job", verb, "--tenant", TENANT, code, "--idempotency-key", key,
                                        job=code, key=key, **extra)
        if outcome == "ok":
            line["replayed"] = bool(data.get("replayed"))
            if verb == "start":  # the serials it issued: checked for duplicates at the end
                line.update(token_ids=data["token_ids"], serials=data["serials"], spawned=data["spawned"])
        self.record(**line)
        return outcome

    def step_manager(self) -> None:
        self.pause(0.2, 0.6)
        listed = self.read("job", "list", "--tenant", TENANT)
        if listed is None:
            return
        jobs: dict[str, list[str]] = defaultdict(list)
        for job in listed["jobs"]:
            jobs[job["status"]].append(job["job_code"])
        live, planned, cancelled = jobs["in_progress"], jobs["planned"], jobs["cancelled"]
        restored = sorted(self.restored.intersection(planned))
        feasible = {"job.create": len(live) + len(planned) < 8, "job.start": bool(planned),
                    "job.restart": bool(restored), "job.cancel": bool(live or planned),
                    "job.restore": bool(cancelled), "job.archive": len(jobs["completed"]) + len(cancelled) > 1,
                    "assign.plan": bool(live)}
        options = [kind for kind, ok in feasible.items() if ok]
        if self.rng.random() < 0.3:
            kind = min(options, key=lambda k: (self.done[k], self.rng.random()))
        else:
            kind = self.rng.choices(options, [self.WEIGHTS[k] for k in options])[0]
        if kind == "job.create":
            code = f"J{uuid.uuid4().hex[:10].upper()}"
            self.do(kind, "job", "create", "--tenant", TENANT, "--code", code, "--sku", self.rng.choice(SKUS),
                    "--quantity", self.rng.randint(2, 6), "--graph", "bag", job=code)
        elif kind in ("job.start", "job.restart"):
            code = self.rng.choice(restored if kind == "job.restart" else planned)
            shown = self.read("job", "show", "--tenant", TENANT, code)
            kind = "job.restart" if shown and shown["instances"] else "job.start"  # what it really is
            if self.job_command(kind, "start", code) == "ok":
                self.restored.discard(code)
        elif kind == "job.cancel":
            self.job_command(kind, "cancel", self.rng.choice(live or planned))
        elif kind == "job.restore":
            code = self.rng.choice(cancelled)
            if self.job_command(kind, "restore", code) == "ok":
                self.restored.add(code)
        elif kind == "job.archive":
            code = self.rng.choice(jobs["completed"] + cancelled)
            self.do(kind, "job", "archive", "--tenant", TENANT, code, job=code)
        else:
            code = self.rng.choice(live)
            self.do(kind, "assign", "plan", "--tenant", TENANT, code, "--node", self.rng.choice(NODES),
                    "--operator", f"op-{self.rng.randint(1, OPERATORS)}", job=code)


class Relay(Worker):
    """One relay pass after another (what ``outbox relay --follow`` does, one envelope per pass)."""

    def step_relay(self) -> None:
        outcome, data, line = self.call("outbox.relay", "outbox", "relay", "--tenant", TENANT, "--batch-size", 50)
        if outcome == "ok":
            line.update(published=data["published"], failed=data["failed"])
            if data["failed"]:
                line.update(outcome="error", message=f"core refused {data['failed']} events")
        self.record(**line)
        self.pause(0.2, 0.6)


class Monitor(Worker):
    """``check run``, then a repair of whatever it found: planned by one person, approved by another."""

    def step_monitor(self) -> None:
        self.pause(1.0, 3.0)
        if self.stopping:
            return
        outcome, data, line = self.call("check.run", "check", "run", "--tenant", TENANT, "--json")
        if outcome == "ok":
            results = data["results"]
            errored = {r["check"]: r["error"] for r in results if r["error"]}
            line.update(findings={r["check"]: r["count"] for r in results if r["count"]},
                        samples={r["check"]: r["sample"][:3] for r in results if r["count"]})
            if errored:
                line.update(outcome="error", message=f"checks errored: {errored}")
        self.record(**line)
        if outcome != "ok":
            return
        outcome, plan, line = self.call("repair.plan", "repair", "plan", "--tenant", TENANT, "--by", PLANNER, "--json")
        if outcome == "ok":
            line.update(rows=len(plan["rows"]), guidance=len(plan["guidance"]))
        self.record(**line)
        if outcome != "ok":
            return
        outcome, _ = self.do("repair.approve", "repair", "approve", plan["plan_id"], "--by", APPROVER,
                             "--hash", plan["hash"], "--tenant", TENANT, "--json")
        if outcome != "ok":
            return
        outcome, applied, line = self.call("repair.apply", "repair", "apply", plan["plan_id"], "--execute",
                                           "--tenant", TENANT, "--json")
        if outcome == "ok":
            line.update(applied=applied["applied"], skipped=applied["skipped"])
        self.record(**line)


ROLE_CLASSES = {"operator": Operator, "manager": Manager, "relay": Relay, "monitor": Monitor}


def worker_main(args) -> int:
    ROLE_CLASSES[args.worker](args.worker, args.name, args.log, args.seed).run()
    return 0


# =========================================================================== the stores
def create_stores(admin_url: str, prefix: str):
    from scratch import create_stores as create

    return create(admin_url, prefix, TENANT)


def drop_stores(admin_url: str, prefix: str) -> None:
    from scratch import drop_stores as drop

    drop(admin_url, prefix, TENANT)


def store_env(settings) -> dict:
    env = {**os.environ, "HATTHASILPA_CORE_URL": settings.core_url,
           "HATTHASILPA_TENANT_URL_TEMPLATE": settings.tenant_url_template,
           "HATTHASILPA_MONITOR_URL": settings.monitor_url}
    for name in ("HATTHASILPA_FAULT_POINT", "HATTHASILPA_CHECKS_CORE_URL", "HATTHASILPA_CHECKS_TENANT_URL_TEMPLATE"):
        env.pop(name, None)
    return env


def cli_ok(*args) -> dict:
    from hatthasilpa import cli

    code, body, _ = cli.run([str(a) for a in args])
    if code != 0:
        raise RuntimeError(f"hatthasilpa {' '.join(map(str, args))}: exit {code}: {body and body['error']}")
    return body["data"]


# =========================================================================== the chaos
class Pool:
    """The worker processes, each in its own session so a kill reaches exactly that worker."""

    def __init__(self, workdir: Path, env: dict, seed: int) -> None:
        self.workdir, self.env = workdir, env
        self.rng = random.Random(seed)
        self.procs: dict[str, subprocess.Popen] = {}
        self.roles: dict[str, str] = {}
        self.kills: Counter = Counter()
        self.crashes: list[dict] = []
        self.starts = 0
        self.stopped = False

    def log(self, name: str) -> Path:
        return self.workdir / f"{name}.jsonl"

    def start(self, role: str, name: str) -> None:
        self.roles[name] = role
        self.starts += 1
        with open(self.workdir / f"{name}.stderr", "a") as err:
            self.procs[name] = subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve()), "--worker", role, "--name", name,
                 "--log", str(self.log(name)), "--seed", str(self.rng.randrange(2**32))],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, env=self.env, cwd=ROOT,
                start_new_session=True)

    def kill_one(self) -> str:
        """SIGKILL a random worker (role first, then a worker of it), wait for it, start it again."""
        role = self.rng.choice(sorted(set(self.roles.values())))
        name = self.rng.choice(sorted(n for n, r in self.roles.items() if r == role))
        proc = self.procs[name]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        self.kills[role] += 1
        self.start(role, name)
        return name

    def reap(self) -> None:
        """A worker that ended without being killed has crashed: record it and start it again."""
        for name, proc in list(self.procs.items()):
            if proc.poll() is not None:
                tail = (self.workdir / f"{name}.stderr").read_text(errors="replace")[-2000:]
                self.crashes.append({"worker": name, "exit": proc.returncode, "stderr": tail})
                self.start(self.roles[name], name)

    def stop(self, timeout: float = 60) -> None:
        """SIGTERM every worker (each finishes its command), SIGKILL whatever is left after ``timeout``.
        A worker the SIGTERM caught before it set its handler (just restarted) has stopped too."""
        if self.stopped:
            return
        self.stopped = True
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for name, proc in self.procs.items():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                self.crashes.append({"worker": name, "exit": None, "stderr": "did not stop within the timeout"})
                continue
            if proc.returncode not in (0, -signal.SIGTERM):
                tail = (self.workdir / f"{name}.stderr").read_text(errors="replace")[-2000:]
                self.crashes.append({"worker": name, "exit": proc.returncode, "stderr": tail})


def read_lines(paths) -> list[dict]:
    lines = []
    for path in paths:
        if not path.exists():
            continue
        for raw in path.read_text().splitlines():
            try:
                lines.append(json.loads(raw))
            except json.JSONDecodeError:
                continue  # a worker killed mid-line (never seen: one write(2) per line)
    return lines


def tally(lines: list[dict]) -> dict:
    operations: dict = defaultdict(lambda: {"ok": 0, "refused": 0, "error": 0, "refusals": Counter()})
    for line in lines:
        if line["kind"] == "intent":
            continue
        op = operations[line["kind"]]
        op[line["outcome"]] += 1
        if line["outcome"] == "refused":
            op["refusals"][line.get("code")] += 1
    return {k: {**v, "refusals": dict(v["refusals"])} for k, v in sorted(operations.items())}


# =========================================================================== the end conditions
def end_conditions(settings, lines: list[dict]) -> dict:
    import sqlalchemy as sa

    from lifecycle.db import get_engine

    end: dict = {}
    drained = cli_ok("outbox", "relay", "--tenant", TENANT)
    status = cli_ok("outbox", "relay", "--status", "--tenant", TENANT)
    backlog = status["tenants"][0] if isinstance(status.get("tenants"), list) else status
    end["drain_published"] = drained["published"]
    end["outbox_status"] = backlog

    report = cli_ok("check", "run", "--tenant", TENANT, "--json")
    end["findings_by_check"] = {r["check"]: r["count"] for r in report["results"] if r["count"]}
    end["findings"] = sum(r["count"] or 0 for r in report["results"])
    end["check_errors"] = {r["check"]: r["error"] for r in report["results"] if r["error"]}
    end["checks_run"] = len(report["results"])

    from hatthasilpa import cli
    code, body, _ = cli.run(["doctor", "--tenant", TENANT])
    end["doctor_ok"] = code == 0
    end["doctor_failed"] = [c for c in body["data"]["checks"] if not c["ok"]] if body and body.get("data") else []

    tenant, core = get_engine(settings.tenant_url(TENANT)), get_engine(settings.core_url)
    with tenant.connect() as conn:
        t_rows = conn.execute(sa.text(
            "SELECT s.serial_code, s.tenant_code, s.sku, j.job_code, s.token_id::text, s.mode, s.status, s.version "
            "FROM serial_registry s JOIN hatthasilpa_job j ON j.id = s.job_id")).all()
        pending = conn.execute(sa.text("SELECT count(*) FROM serial_outbox WHERE published_at IS NULL")).scalar()
        token_dups = conn.execute(sa.text(
            "SELECT count(*) FROM (SELECT serial_code FROM flow_token WHERE serial_code IS NOT NULL "
            "GROUP BY serial_code HAVING count(*) > 1) d")).scalar()
        # a serial follows its token: issued while it lives, completed with it, voided when scrapped
        status_mismatches = conn.execute(sa.text(
            "SELECT count(*) FROM flow_token t LEFT JOIN serial_registry s ON s.serial_code = t.serial_code "
            "WHERE t.serial_code IS NOT NULL AND (s.serial_code IS NULL OR s.token_id <> t.id OR s.status <> "
            "CASE t.status WHEN 'completed' THEN 'completed' WHEN 'scrapped' THEN 'voided' ELSE 'issued' END)"
        )).scalar()
        sessions = {r.id: r for r in conn.execute(sa.text(
            "SELECT id, status, close_reason, started_at, ended_at, work_seconds FROM token_work_session"))}
        sequences = dict(conn.execute(sa.text("SELECT sku, last_value FROM serial_sequence")).all())
    with core.connect() as conn:
        c_rows = conn.execute(sa.text("SELECT serial_code, tenant_code, sku, job_ref, token_ref, mode, status, "
                                      "version FROM serial_registry WHERE tenant_code = :t"), {"t": TENANT}).all()
    tenant_reg = {r[0]: tuple(r[1:]) for r in t_rows}
    core_reg = {r[0]: tuple(r[1:]) for r in c_rows}
    end["outbox_pending"] = pending
    end["serials"] = len(tenant_reg)
    end["registries_equal"] = tenant_reg == core_reg
    end["registry_differences"] = sorted(set(tenant_reg.items()) ^ set(core_reg.items()))[:10]

    # no serial issued twice: one token per serial in the tenant, one token per serial in what the
    # starts returned, sequence numbers distinct per SKU and never past the SKU's sequence
    issued: dict[str, set] = defaultdict(set)
    for line in lines:
        if line["kind"] in ("job.start", "job.restart") and line["outcome"] == "ok":
            for serial, token in zip(line["serials"], line["token_ids"]):
                issued[serial].add(token)
    seqs: dict[str, Counter] = defaultdict(Counter)
    for code, (_, sku, *_rest) in tenant_reg.items():
        seqs[sku][int(code.rsplit("-", 1)[1])] += 1
    end["duplicate_serials"] = (token_dups + sum(1 for tokens in issued.values() if len(tokens) > 1)
                                + sum(n - 1 for c in seqs.values() for n in c.values() if n > 1))
    end["serials_past_sequence"] = sum(1 for sku, c in seqs.items() for seq in c if seq > sequences.get(sku, 0))
    end["serials_returned_not_in_registry"] = sum(1 for s in issued if s not in tenant_reg)
    end["serials_not_following_their_token"] = status_mismatches

    # every completed session closed with its worked seconds, as the operator was told
    completed = [ln for ln in lines if ln["kind"] == "session.complete" and ln["outcome"] == "ok"]
    missing = []
    for ln in completed:
        row = sessions.get(ln["session_id"])
        if row is None or row.status != "closed" or row.close_reason != "completed" or row.ended_at is None \
                or row.work_seconds is None or abs(float(row.work_seconds) - ln["work_seconds"]) > 0.001:
            missing.append(ln["session_id"])
    bad_rows = [r.id for r in sessions.values() if r.status == "closed" and (
        r.ended_at is None or r.work_seconds is None or float(r.work_seconds) < 0
        or float(r.work_seconds) > (r.ended_at - r.started_at).total_seconds() + 0.001)]
    end["completed_sessions"] = len(completed)
    end["closed_sessions"] = sum(1 for r in sessions.values() if r.status == "closed")
    end["sessions_without_seconds"] = len(missing) + len(bad_rows)
    end["session_problems"] = (missing + bad_rows)[:10]

    code, body, _ = cli.run(["audit", "verify", "--json"])
    end["audit_ok"] = code == 0
    end["audit_entries"] = (body.get("data") or {}).get("entries") if body else None
    if code != 0:
        end["audit_error"] = body and body.get("error")
    return end


def failures_of(end: dict, errors: list[dict], crashes: list[dict]) -> list[str]:
    failed = []
    if errors:
        failed.append(f"{len(errors)} unexpected errors in the workers")
    if crashes:
        failed.append(f"{len(crashes)} workers ended without being killed")
    if end["outbox_pending"] or end["outbox_status"].get("parked"):
        failed.append("the outbox did not drain")
    if end["findings"] or end["check_errors"]:
        failed.append(f"findings after the soak: {end['findings_by_check']} errors: {end['check_errors']}")
    if not end["doctor_ok"]:
        failed.append(f"doctor: {end['doctor_failed']}")
    if not end["registries_equal"]:
        failed.append("tenant and core serial registries differ")
    if end["duplicate_serials"] or end["serials_past_sequence"] or end["serials_returned_not_in_registry"]:
        failed.append("a serial number was issued twice or outside its sequence")
    if end["serials_not_following_their_token"]:
        failed.append(f"{end['serials_not_following_their_token']} serials whose status does not follow their token")
    if end["sessions_without_seconds"]:
        failed.append(f"completed sessions without their worked seconds: {end['session_problems']}")
    if not end["audit_ok"]:
        failed.append(f"audit verify: {end.get('audit_error')}")
    return failed


# =========================================================================== the soak
def soak(args) -> dict:
    from lifecycle.db import dispose_engines

    seconds = args.minutes * 60
    prefix = f"hs_soak_{uuid.uuid4().hex[:10]}"
    workdir = Path(tempfile.mkdtemp(prefix="hatthasilpa-soak-"))
    progress(f"databases {prefix}_*, worker logs in {workdir}")
    settings = create_stores(args.pg_url, prefix)
    env = store_env(settings)
    os.environ.update({k: env[k] for k in ("HATTHASILPA_CORE_URL", "HATTHASILPA_TENANT_URL_TEMPLATE",
                                           "HATTHASILPA_MONITOR_URL")})
    for name in ("HATTHASILPA_FAULT_POINT", "HATTHASILPA_CHECKS_CORE_URL", "HATTHASILPA_CHECKS_TENANT_URL_TEMPLATE"):
        os.environ.pop(name, None)
    graph = workdir / "bag.json"
    graph.write_text(json.dumps(GRAPH))
    cli_ok("graph", "create", "--tenant", TENANT, "--code", "bag", "--file", graph)
    dispose_engines()

    pool = Pool(workdir, env, args.seed)
    started_at = dt.datetime.now(dt.timezone.utc)
    result: dict = {"minutes": args.minutes, "chaos_interval": args.chaos_interval, "seed": args.seed,
                    "started_at": started_at.isoformat(timespec="seconds"), "databases": f"{prefix}_*"}
    try:
        for i in range(1, OPERATORS + 1):
            pool.start("operator", f"op-{i}")
        pool.start("manager", "manager")
        for i in range(1, RELAYS + 1):
            pool.start("relay", f"relay-{i}")
        pool.start("monitor", "monitor")
        t0 = time.monotonic()
        next_kill = t0 + pool.rng.uniform(0.75, 1.25) * args.chaos_interval
        next_report = t0 + 5
        while (now := time.monotonic()) < t0 + seconds:
            time.sleep(max(0.05, min(next_kill, next_report, t0 + seconds) - now))
            pool.reap()
            now = time.monotonic()
            if now >= next_kill and now < t0 + seconds:
                progress(f"kill -9 {pool.kill_one()}")
                next_kill = now + pool.rng.uniform(0.75, 1.25) * args.chaos_interval
            if now >= next_report:
                lines = read_lines(pool.log(n) for n in pool.roles)
                outcomes = Counter(ln["outcome"] for ln in lines)
                progress(f"{now - t0:.0f}/{seconds:.0f} s: {outcomes['ok']} ok, {outcomes['refused']} refused, "
                         f"{outcomes['error']} errors; kills {sum(pool.kills.values())}, crashes {len(pool.crashes)}")
                next_report = now + 5
        progress("stopping the workers")
        pool.stop()
        result["seconds"] = round(time.monotonic() - t0, 1)
        lines = read_lines(pool.log(n) for n in pool.roles)
        errors = [ln for ln in lines if ln["outcome"] == "error"]
        progress("draining the outbox and checking the end conditions")
        end = end_conditions(settings, lines)
        findings_during: Counter = Counter()
        for ln in lines:
            if ln["kind"] == "check.run":
                findings_during.update(ln.get("findings") or {})
        result.update(
            operations=tally(lines),
            kills=dict(sorted(pool.kills.items())), worker_starts=pool.starts,
            repairs={"plans": sum(1 for ln in lines if ln["kind"] == "repair.plan" and ln["outcome"] == "ok"),
                     "rows_planned": sum(ln.get("rows", 0) for ln in lines if ln["kind"] == "repair.plan"),
                     "rows_applied": sum(ln.get("applied", 0) for ln in lines if ln["kind"] == "repair.apply")},
            retries={"interrupted": sum(1 for ln in lines if ln.get("retried")),
                     "replayed": sum(1 for ln in lines if ln.get("retried") and ln.get("replayed"))},
            findings_during_soak=dict(findings_during),
            finding_samples=[ln for ln in lines if ln["kind"] == "check.run" and ln.get("findings")][:5],
            findings=end["findings"], end=end,
            errors=errors[:20], error_count=len(errors), crashes=pool.crashes)
        result["failures"] = failures_of(end, errors, pool.crashes)
        result["ok"] = not result["failures"]
    finally:
        pool.stop(timeout=10)
        dispose_engines()
        if args.keep:
            progress(f"kept databases {prefix}_* and logs in {workdir}")
        else:
            drop_stores(args.pg_url, prefix)
            if result.get("ok"):
                shutil.rmtree(workdir, ignore_errors=True)
            else:
                progress(f"the workers' logs stay in {workdir}")
    return result


def render(result: dict) -> str:
    lines = [f"soak with chaos: {result['seconds']} s, a kill every ~{result['chaos_interval']} s, "
             f"started {result['started_at']}", "", f"{'operation':<20}{'ok':>8}{'refused':>9}{'errors':>8}  refusals"]
    for kind, op in result["operations"].items():
        refusals = ", ".join(f"{c} {n}" for c, n in sorted(op["refusals"].items()))
        lines.append(f"{kind:<20}{op['ok']:>8}{op['refused']:>9}{op['error']:>8}  {refusals}")
    total = {k: sum(op[k] for op in result["operations"].values()) for k in ("ok", "refused", "error")}
    lines.append(f"{'total':<20}{total['ok']:>8}{total['refused']:>9}{total['error']:>8}")
    end = result["end"]
    lines += ["", "kills: " + ", ".join(f"{r} {n}" for r, n in result["kills"].items())
              + f" (total {sum(result['kills'].values())}; worker starts {result['worker_starts']}, "
                f"crashes {len(result['crashes'])})",
              f"repairs: {result['repairs']['plans']} plans planned, approved by another person and applied; "
              f"{result['repairs']['rows_applied']} rows repaired",
              f"manager commands interrupted by a kill and retried with their idempotency key: "
              f"{result['retries']['interrupted']} ({result['retries']['replayed']} replayed the first result)",
              f"findings during the soak: {result['findings_during_soak'] or 'none'}",
              f"end: drained {end['drain_published']} events, outbox pending {end['outbox_pending']}; "
              f"{end['checks_run']} checks, findings {end['findings']}, check errors {len(end['check_errors'])}; "
              f"doctor {'ok' if end['doctor_ok'] else 'FAILED'}",
              f"     {end['serials']} serials, registries equal {end['registries_equal']}, "
              f"duplicates {end['duplicate_serials']}, not following their token "
              f"{end['serials_not_following_their_token']}; {end['completed_sessions']} completed sessions "
              f"({end['closed_sessions']} closed), without worked seconds {end['sessions_without_seconds']}; "
              f"audit verify {'ok' if end['audit_ok'] else 'FAILED'} ({end['audit_entries']} entries)",
              f"findings: {result['findings']}", ""]
    lines.append("OK" if result["ok"] else "FAILED: " + "; ".join(result["failures"]))
    for err in result["errors"][:5]:
        lines.append(f"  error: {json.dumps(err, default=str)[:300]}")
    for crash in result["crashes"][:5]:
        lines.append(f"  crash: {crash['worker']} exit {crash['exit']}: {crash['stderr'][-300:]}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="how long the workers run (default 10)")
    parser.add_argument("--chaos-interval", type=float, default=20.0,
                        help="seconds between two kills, give or take a quarter (default 20)")
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL, help="a PostgreSQL server whose user may CREATE DATABASE")
    parser.add_argument("--seed", type=int, default=None, help="seed of the chaos and the workers' choices")
    parser.add_argument("--keep", action="store_true", help="keep the databases and the worker logs")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--worker", choices=sorted(ROLE_CLASSES), help=argparse.SUPPRESS)
    parser.add_argument("--name", help=argparse.SUPPRESS)
    parser.add_argument("--log", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker_main(args)
    if args.minutes <= 0 or args.chaos_interval <= 0:
        parser.error("--minutes and --chaos-interval must be above zero")
    if args.seed is None:
        args.seed = random.randrange(2**31)
    result = soak(args)
    print(json.dumps(result, default=str, indent=2) if args.json else render(result), flush=True)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
