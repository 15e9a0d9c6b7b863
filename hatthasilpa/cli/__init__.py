"""The ``hatthasilpa`` command line: one module per command group, assembled here.

Every lifecycle command prints exactly one JSON envelope on stdout and logs only to
stderr; exit codes are 0 (success), 2 (bad input), 3 (refused transition or conflict)
and 1 (internal error) — ``docs/cli.md``. This is the only place where errors become
envelopes and exit codes: by their base class (``lifecycle.errors``), a violated
database constraint by its name (``lifecycle.constraints``).

Invariant: exactly one envelope on stdout and no traceback, whatever the input. Guarded by
tests/e2e/test_cli.py, tests/e2e/test_fuzz_cli.py, tests/e2e/test_hostile_input.py.
"""

from __future__ import annotations

import json
import logging
import sys
import time
import traceback
import uuid

from sqlalchemy.exc import DataError, DBAPIError, IntegrityError

from lifecycle import constraints
from lifecycle.errors import HatthasilpaError, InternalError, ValidationError

from . import admin, demo, floor, incidents, monitor, repairs, serials, trends
from .base import Context, Parser

log = logging.getLogger("hatthasilpa")

GROUPS = (admin, floor, serials, monitor, incidents, repairs, trends, demo)


def build_parser() -> Parser:
    parser = Parser(prog="hatthasilpa", description="Hatthasilpa Integrity: lifecycle core and integrity monitor.")
    parser.add_argument("--actor", help="who is acting (recorded in token events and audits); "
                                        "default $HATTHASILPA_ACTOR or 'cli'")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug output to stderr")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for module in GROUPS:
        module.register(sub)
    return parser


# --------------------------------------------------------------------------- edge
def envelope(ok: bool, data=None, error: dict | None = None, started: float | None = None,
             request_id: str | None = None) -> dict:
    took = int((time.perf_counter() - started) * 1000) if started else 0
    return {"ok": ok, "data": data, "error": None if ok else error,
            "meta": {"request_id": request_id or str(uuid.uuid4()), "took_ms": took}}


def run(argv: list[str] | None = None) -> tuple[int, dict | None, str | None]:
    """Execute one command; return (exit code, envelope, readable text). Never raises."""
    started = time.perf_counter()
    request_id = str(uuid.uuid4())
    try:
        try:
            args = build_parser().parse_args(argv)
        except SystemExit as exc:  # --help printed by argparse
            return int(exc.code or 0), None, None
        logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, stream=sys.stderr,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        ctx = Context(args)
        data = ctx.args.handler(ctx)
        log.debug("request %s: %s succeeded", request_id, args.command)
        return 0, envelope(True, data, started=started, request_id=request_id), ctx.text
    except HatthasilpaError as exc:
        err = exc
    except IntegrityError as exc:
        err = constraints.refusal(exc)
    except DataError as exc:  # a value the database cannot hold: bad input that slipped past validation
        log.error("database refused a value: %s", str(exc.orig).strip().splitlines()[0])
        err = ValidationError(f"invalid value: {str(exc.orig).strip().splitlines()[0]}",
                              hint="check the lengths and ranges of the arguments (docs/cli.md)")
    except DBAPIError as exc:
        log.error("database error: %s", exc)
        err = InternalError(f"database error: {str(exc.orig).strip().splitlines()[0]}",
                            hint="check that the database is reachable and migrated (hatthasilpa db upgrade)")
    except Exception as exc:  # the envelope must hold even for bugs
        log.error("internal error\n%s", traceback.format_exc())
        err = InternalError(f"internal error: {type(exc).__name__}: {exc}", hint="see stderr for the traceback")
    return err.exit_code, envelope(False, data=err.data, error=err.to_dict(), started=started,
                                   request_id=request_id), None


def main(argv: list[str] | None = None) -> int:
    code, body, text = run(argv)
    if text is not None:
        sys.stdout.write(text + "\n")
    elif body is not None:
        sys.stdout.write(json.dumps(body, default=str) + "\n")
    sys.stdout.flush()
    return code
