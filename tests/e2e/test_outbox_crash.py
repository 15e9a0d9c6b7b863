"""The relay as real processes: SIGKILLed at named fault points, and two relays at once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections import Counter

import pytest

from lifecycle import services
from tests.e2e.test_cli import EXE
from tests.serial_support import assert_core_equals_tenant, outbox_state, receipts


def relay_env(stores, fault: str | None = None) -> dict:
    env = {**os.environ, "HATTHASILPA_CORE_URL": stores.settings.core_url,
           "HATTHASILPA_TENANT_URL_TEMPLATE": stores.settings.tenant_url_template,
           "HATTHASILPA_MONITOR_URL": stores.settings.monitor_url}
    env.pop("HATTHASILPA_FAULT_POINT", None)
    if fault:
        env["HATTHASILPA_FAULT_POINT"] = fault
    return env


DEADLINE = 120  # seconds a relay process may run before the test kills it and fails


def relay(stores, *args, fault=None) -> subprocess.CompletedProcess:
    """One relay run to its end; past the deadline it is killed and the test fails (TimeoutExpired)."""
    return subprocess.run([EXE, "outbox", "relay", *map(str, args)], capture_output=True, text=True,
                          env=relay_env(stores, fault), timeout=DEADLINE)


def outputs_of(procs) -> list[tuple[str, str]]:
    """Every process's (stdout, stderr); one still running at the deadline is killed, with the others,
    and the test fails instead of hanging."""
    deadline = time.monotonic() + DEADLINE
    try:
        return [p.communicate(timeout=max(0.0, deadline - time.monotonic())) for p in procs]
    except subprocess.TimeoutExpired as exc:
        for p in procs:
            p.kill()
            p.wait()
        raise AssertionError(f"a relay was still running after {DEADLINE} s: {exc.cmd}") from exc


def make_backlog(stores, jobs: int, quantity: int, cancel: bool = False) -> None:
    """``jobs`` piece-mode jobs of one SKU, started (and cancelled): one outbox event per serial write."""
    for i in range(jobs):
        code = f"B{i}"
        stores.ok("job", "create", "--tenant", "atelier", "--code", code, "--sku", "TOTE", "--quantity", quantity,
                  "--graph", "bag")
        for use_case in (services.start_job, services.cancel_job) if cancel else (services.start_job,):
            with stores.uow() as uow:
                use_case(uow, code)
                uow.commit()


# (fault point, published before the kill, events core received before the kill)
# with 500 events (250 issued + 250 voided) and batches of 200 rows upserted 100 rows per statement
CRASHES = {
    "relay.after_claim@2": (200, 200),  # batch 2 claimed, core untouched
    "relay.mid_batch@2": (200, 200),  # batch 2 half upserted in an uncommitted core transaction
    "relay.after_core_upsert@2": (200, 400),  # batch 2 committed in core, not marked published
    "relay.after_mark@2": (400, 400),  # batch 2 fully done
}


@pytest.mark.parametrize("fault", sorted(CRASHES))
def test_a_relay_killed_at_any_point_loses_nothing_and_duplicates_nothing(factory, fault):
    make_backlog(factory, jobs=1, quantity=250, cancel=True)
    killed = relay(factory, "--batch-size", 200, fault=fault)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert killed.stdout == ""  # died before it could report
    published, received = CRASHES[fault]
    assert outbox_state(factory)["published"] == published
    assert len(receipts(factory)) == received

    rerun = relay(factory, "--batch-size", 200)
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads(rerun.stdout)["data"]["published"] == 500 - published
    assert_core_equals_tenant(factory)
    deliveries = Counter(receipts(factory).values())
    assert sum(deliveries.values()) == 500  # every event reached core …
    assert deliveries[2] == received - published  # … the in-flight batch twice, to no effect
    assert set(deliveries) <= {1, 2}


def test_two_relays_at_once_publish_a_10k_backlog_exactly_once(pg_factory):
    make_backlog(pg_factory, jobs=10, quantity=1000)
    assert outbox_state(pg_factory) == {"rows": 10_000, "published": 0, "parked": 0}
    started = time.perf_counter()
    procs = [subprocess.Popen([EXE, "outbox", "relay", "--batch-size", "200"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=relay_env(pg_factory)) for _ in range(2)]
    outputs = outputs_of(procs)
    elapsed = time.perf_counter() - started
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outputs]
    summaries = [json.loads(out)["data"] for out, _ in outputs]
    assert all("outbox relay: atelier: done" in err for _, err in outputs)  # progress goes to stderr
    counts = [s["published"] for s in summaries]
    assert sum(counts) == 10_000 and all(s["failed"] == 0 for s in summaries)
    assert all(counts), counts  # both took batches: they really ran side by side
    assert_core_equals_tenant(pg_factory)
    assert Counter(receipts(pg_factory).values()) == {1: 10_000}  # no event delivered twice
    print(f"\ntwo relays: {counts} rows at {[s['rows_per_second'] for s in summaries]} rows/s each; "
          f"10000 rows in {elapsed:.2f} s wall ({10_000 / elapsed:.0f} rows/s including process start)")


def test_follow_relays_new_events_pass_after_pass_until_sigterm(factory):
    make_backlog(factory, jobs=1, quantity=3)
    proc = subprocess.Popen([EXE, "outbox", "relay", "--follow", "--interval", "0.05"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=relay_env(factory))
    stuck = threading.Timer(DEADLINE, proc.kill)  # a relay that stops reporting ends the stderr read below
    stuck.start()
    try:
        def next_pass() -> str:  # the relay's own stderr says when a pass has published
            for line in proc.stderr:
                if ": pass " in line:
                    return line
            raise AssertionError(f"relay ended early (killed after {DEADLINE} s if stuck): {proc.wait()}")

        assert "3 published" in next_pass()
        assert_core_equals_tenant(factory)
        factory.ok("job", "cancel", "--tenant", "atelier", "B0")
        assert "3 published" in next_pass()
        assert_core_equals_tenant(factory)
    finally:
        stuck.cancel()
        proc.send_signal(signal.SIGTERM)
        out, _ = outputs_of([proc])[0]
    assert proc.returncode == 0
    summary = json.loads(out)["data"]
    assert summary["published"] == 6 and summary["passes"] >= 2


def test_two_relays_on_sqlite_take_turns_on_the_write_lock_and_publish_once(sqlite_factory):
    make_backlog(sqlite_factory, jobs=4, quantity=500)
    procs = [subprocess.Popen([EXE, "outbox", "relay", "--batch-size", "100"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=relay_env(sqlite_factory)) for _ in range(2)]
    outputs = outputs_of(procs)
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outputs]
    assert sum(json.loads(out)["data"]["published"] for out, _ in outputs) == 2_000
    assert_core_equals_tenant(sqlite_factory)
    assert Counter(receipts(sqlite_factory).values()) == {1: 2_000}
