"""Alembic environment of the monitor store."""

from lifecycle.migrate import run_env

run_env("monitor")
