"""Alembic environment of the tenant DB."""

from lifecycle.migrate import TENANT, run_env

run_env(TENANT)
