"""Servers a test starts (dagster dev, Prometheus, the exporter): each in its own process group,
so stopping it stops its children too (`dagster dev` ignores SIGINT and forks workers)."""

from __future__ import annotations

import os
import signal
import subprocess
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def process_group(args, log: Path, env=None, cwd=None):
    """Start ``args`` with its output in ``log``; on exit SIGTERM the group, SIGKILL after 30 s."""
    with open(log, "w") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                start_new_session=True)
        try:
            yield proc
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
