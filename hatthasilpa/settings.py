"""Settings loading: the environment → the stores' URLs, who acts, where metrics go.

Every setting the product reads from the environment is read here (the Dagster
resources read theirs through ``EnvVar`` at run time, with the same names). The table
of settings is ``docs/configuration.md``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from checks.metrics import PUSHGATEWAY_URL
from checks.runner import READ_ONLY_CORE_URL, READ_ONLY_TENANT_URL_TEMPLATE
from lifecycle.errors import ValidationError
from lifecycle.db import ACTOR, CORE_URL, MONITOR_URL, TENANT_URL_TEMPLATE, VAR_DIR, Settings

if TYPE_CHECKING:
    from checks import baselines

DEFAULT_ACTOR = "cli"


def _env(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if environ is None else environ


def load(environ: Mapping[str, str] | None = None) -> Settings:
    """The three stores: each URL setting, or its embedded SQLite default under ``$HATTHASILPA_VAR_DIR``."""
    env = _env(environ)
    defaults = Settings.embedded(env.get(VAR_DIR) or "var")
    return Settings(core_url=env.get(CORE_URL) or defaults.core_url,
                    tenant_url_template=env.get(TENANT_URL_TEMPLATE) or defaults.tenant_url_template,
                    monitor_url=env.get(MONITOR_URL) or defaults.monitor_url)


def for_checks(environ: Mapping[str, str] | None = None) -> Settings:
    """The stores as the checks read them: the read-only URLs where they are set.

    The monitor store is always the writable ``HATTHASILPA_MONITOR_URL``: checks record there."""
    env = _env(environ)
    base = load(env)
    return Settings(core_url=env.get(READ_ONLY_CORE_URL) or base.core_url,
                    tenant_url_template=env.get(READ_ONLY_TENANT_URL_TEMPLATE) or base.tenant_url_template,
                    monitor_url=base.monitor_url)


MAX_ACTOR_LENGTH = 64  # the actor columns of token events, flag and repair audits


def actor(explicit: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """Who acts: ``--actor``, else ``$HATTHASILPA_ACTOR``, else ``cli`` — at most 64 printable characters."""
    name = explicit if explicit is not None else _env(environ).get(ACTOR) or DEFAULT_ACTOR
    if len(name) > MAX_ACTOR_LENGTH or not name.isprintable() or not name.strip():
        raise ValidationError(f"invalid actor {name[:40]!r}",
                              hint=f"--actor or ${ACTOR} is 1-{MAX_ACTOR_LENGTH} printable characters")
    return name


def pushgateway(environ: Mapping[str, str] | None = None) -> str | None:
    return _env(environ).get(PUSHGATEWAY_URL) or None


def volume_options(environ: Mapping[str, str] | None = None, weeks: int | None = None) -> baselines.Options:
    """The volume baselines: weeks of history and anomaly thresholds (``docs/volumes.md``)."""
    from checks import baselines, volumes  # pandas: loaded by the commands that judge volumes, not by every command

    return baselines.options_from(_env(environ), kinds=volumes.KIND_IDS, weeks=weeks)
