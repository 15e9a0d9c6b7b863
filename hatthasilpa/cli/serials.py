"""``outbox relay``: publish the tenants' serial events to the core registry."""

from __future__ import annotations

import sys

from lifecycle import outbox

from .base import Context, group, positive_seconds, whole_number


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def relay(ctx: Context) -> dict:
    a = ctx.args
    tenants = None if a.tenant is None else [a.tenant]  # an empty --tenant is a bad code, not 'every tenant'
    if a.status:
        return outbox.status(ctx.settings, tenants)
    options = outbox.RelayOptions(batch_size=a.batch_size, max_attempts=a.max_attempts)
    requeued = outbox.retry_parked(ctx.settings, tenants) if a.retry_parked else {}
    if a.follow:
        with outbox.stop_on_signals() as stop:
            result = outbox.follow(ctx.settings, tenants, options, progress=_progress, stop=stop, interval=a.interval)
    else:
        result = outbox.relay(ctx.settings, tenants, options, progress=_progress)
    return {**result, "requeued": requeued}


def register(sub) -> None:
    box = group(sub, "outbox", "serial outbox")
    p = box.add_parser("relay", help="publish tenant serial events to the core registry")
    p.add_argument("--tenant", help="one tenant; default every registered tenant")
    p.add_argument("--follow", action="store_true", help="keep relaying until SIGTERM or SIGINT, then report")
    p.add_argument("--batch-size", type=whole_number, default=500, help="rows claimed per batch (default 500)")
    p.add_argument("--max-attempts", type=whole_number, default=8, help="park a failing row after N attempts")
    p.add_argument("--interval", type=positive_seconds, default=2.0, help="with --follow: seconds to wait after an idle pass")
    p.add_argument("--status", action="store_true", help="report pending, retrying and parked rows; relay nothing")
    p.add_argument("--retry-parked", action="store_true", help="put parked rows back in the queue, then relay")
    p.set_defaults(handler=relay)
