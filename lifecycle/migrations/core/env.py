"""Alembic environment of the core DB."""

from lifecycle.migrate import CORE, run_env

run_env(CORE)
