"""Alembic environment of the core store."""

from lifecycle.migrate import run_env

run_env("core")
