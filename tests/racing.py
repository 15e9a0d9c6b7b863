"""Race harness: callables released together from a barrier, each thread on its own connection."""

from __future__ import annotations

import random
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from lifecycle.errors import HatthasilpaError


def run_concurrently(fns):
    """Release every callable at once from a barrier; return (results, errors) in order.

    The threads start in a random order: the one reaching the barrier last runs on first, and a
    use case that touches no other store before taking its lock (SQLite's ``BEGIN IMMEDIATE``)
    would otherwise win every round just for having been listed last."""
    barrier = threading.Barrier(len(fns))

    def call(fn):
        barrier.wait()
        try:
            return fn(), None
        except HatthasilpaError as exc:
            return None, exc

    order = random.sample(range(len(fns)), len(fns))
    with ThreadPoolExecutor(max_workers=len(fns)) as pool:
        futures = {i: pool.submit(call, fns[i]) for i in order}
        outcomes = [futures[i].result() for i in range(len(fns))]
    return [r for r, _ in outcomes], [e for _, e in outcomes]


def error_codes(errors) -> list:
    return [e.code if e is not None else None for e in errors]


def in_uow(stores, fn, *args, **kwargs):
    """A callable running one use case in its own tenant unit of work, committed."""
    def call():
        with stores.uow() as uow:
            result = fn(uow, *args, **kwargs)
            uow.commit()
            return result
    return call


def both_orderings(round_, wanted, rounds: int, max_rounds: int) -> Counter:
    """Race ``round_(i)`` (which returns the outcome it observed) at least ``rounds`` times and until
    every outcome in ``wanted`` has occurred, at most ``max_rounds`` times; return the outcome counts.

    A race test that only ever sees one ordering proves nothing about the other: this fails
    unless each wanted ordering happened (each round asserts its own outcome is a legal one)."""
    seen: Counter = Counter()
    for i in range(max_rounds):
        if i >= rounds and set(wanted) <= set(seen):
            break
        seen[round_(i)] += 1
    assert set(wanted) <= set(seen), f"after {sum(seen.values())} rounds only {dict(seen)} occurred"
    return seen
