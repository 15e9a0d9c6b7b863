"""Race harness: callables released together from a barrier, each thread on its own connection."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from lifecycle.errors import HatthasilpaError


def run_concurrently(fns):
    """Release every callable at once from a barrier; return (results, errors) in order."""
    barrier = threading.Barrier(len(fns))

    def call(fn):
        barrier.wait()
        try:
            return fn(), None
        except HatthasilpaError as exc:
            return None, exc

    with ThreadPoolExecutor(max_workers=len(fns)) as pool:
        outcomes = list(pool.map(call, fns))
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
