"""What every command group shares: the parser that turns usage errors into envelopes, and the context."""

from __future__ import annotations

import argparse
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


def whole_number(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
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
