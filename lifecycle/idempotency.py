"""Idempotency keys, Stripe-style.

The first execution of a command under a key stores the key, a hash of the command
and its parameters, and the result, in the command's own transaction. A retry with
the same key and the same parameters returns that first result; the same key with
other parameters is a VALIDATION_ERROR. The caller takes its row locks before
looking the key up, so concurrent retries serialize on those locks.

Invariant: a retried command with its key returns the first result. Guarded by
tests/integration/test_lifecycle.py, tests/integration/test_races.py,
tests/e2e/test_fault_points.py.
"""

from __future__ import annotations

import hashlib
import json
from typing import Callable

import sqlalchemy as sa

from .errors import ValidationError
from .schema import command_idempotency
from .uow import UnitOfWork

MAX_KEY_LENGTH = 128


def request_hash(command: str, params: dict) -> str:
    body = json.dumps({"command": command, "params": params}, sort_keys=True, default=str)
    return hashlib.sha256(body.encode()).hexdigest()


def check_key(key: str | None) -> None:
    """A key is 1-128 printable characters, not blank, with no leading or trailing whitespace."""
    if key is not None and (not key.strip() or key != key.strip() or len(key) > MAX_KEY_LENGTH
                            or not key.isprintable()):
        raise ValidationError("invalid idempotency key",
                              hint=f"use 1-{MAX_KEY_LENGTH} printable characters without surrounding blanks, "
                                   "e.g. a UUID")


def run(uow: UnitOfWork, key: str | None, command: str, params: dict, action: Callable[[], dict]) -> dict:
    """Run ``action`` once per key; return the stored first result on a retry.

    The use case has validated the key (``check_key``) before it took its locks."""
    if key is None:
        return action()
    digest = request_hash(command, params)
    stored = uow.conn.execute(sa.select(command_idempotency.c.request_hash, command_idempotency.c.response)
                              .where(command_idempotency.c.idempotency_key == key)).first()
    if stored is not None:
        if stored.request_hash != digest:
            raise ValidationError(f"idempotency key {key!r} was first used for a different request",
                                  hint="use a fresh key for a new request; reuse a key only to retry the same one")
        return {**stored.response, "replayed": True}
    result = action()
    uow.conn.execute(command_idempotency.insert().values(
        idempotency_key=key, command=command, request_hash=digest, response=result, created_at=uow.now()))
    return result
