"""Alembic environment of the monitor store."""

from checks.schema import MONITOR
from lifecycle.migrate import run_env

run_env(MONITOR)
