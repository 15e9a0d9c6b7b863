"""What every command group shares: the parser that turns usage errors into envelopes, and the context."""

from __future__ import annotations

import argparse
import math
import re
from typing import Callable

from lifecycle import registry
from lifecycle.errors import ValidationError

from .. import settings as app_settings


class ArgumentError(ValidationError):
    pass


class Parser(argparse.ArgumentParser):
    """An argparse parser whose usage errors become VALIDATION_ERROR envelopes."""

    def error(self, message: str):  # noqa: D401 - argparse API
        raise ArgumentError(f"{self.prog}: {message}", hint=f"see `{self.prog} --help`")


# ASCII digits only: int() would also take '1_000', ' 12 ' and other scripts' digits.
_WHOLE = re.compile(r"-?[0-9]{1,19}")
MAX_WHOLE = 2**63 - 1  # what a BIGINT column holds


def whole_number(text: str) -> int:
    if not _WHOLE.fullmatch(text) or abs(int(text)) > MAX_WHOLE:
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a whole number (ASCII digits, at most {MAX_WHOLE})")
    return int(text)


def port_number(text: str) -> int:
    value = whole_number(text)
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a TCP port (1-65535)")
    return value


def positive_seconds(text: str) -> float:
    """A finite number of seconds above zero (``nan``, ``inf``, 0 and negatives are refused)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0) or not re.fullmatch(r"[0-9.eE+-]+", text):
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a positive number of seconds")
    return value


def group(sub, name: str, help_text: str):
    """A command group (``hatthasilpa NAME …``) whose verbs are added to the returned action."""
    return sub.add_parser(name, help=help_text).add_subparsers(dest=f"{name}_command", required=True,
                                                               parser_class=Parser)


def json_flag(parser: argparse.ArgumentParser, what: str = "a table") -> None:
    parser.add_argument("--json", action="store_true", help=f"print the JSON envelope instead of {what}")


class Context:
    """One command's arguments, settings and actor; ``text`` replaces the envelope on stdout."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.settings = app_settings.load()
        self.actor = app_settings.actor(args.actor)
        self.text: str | None = None

    def in_tenant(self, code: str, use_case: Callable, *args, commit: bool = True, **kwargs) -> dict:
        """Run a use case in one unit of work on the tenant's DB; commit unless it only reads."""
        with registry.tenant_uow(self.settings, code) as uow:
            result = use_case(uow, *args, **kwargs)
            if commit:
                uow.commit()
            return result

    def render(self, text: str) -> None:
        """Print ``text`` instead of the envelope, unless ``--json`` asked for the envelope."""
        self.text = None if getattr(self.args, "json", False) else text


Handler = Callable[[Context], dict]
