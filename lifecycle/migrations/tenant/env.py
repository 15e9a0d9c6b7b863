"""Alembic environment of the tenant store."""

from lifecycle.migrate import run_env

run_env("tenant")
