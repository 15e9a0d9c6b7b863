"""dagster.yaml and deploy/dagster-postgres.yaml configure real Dagster instances."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import psycopg
from dagster import DagsterInstance
from dagster._core.instance.ref import InstanceRef

ROOT = Path(__file__).resolve().parents[2]
PER_TENANT = [{"key": "dagster/partition", "value": {"applyLimitPerUniqueValue": True}, "limit": 1},
              {"key": "hatthasilpa/tenant", "value": {"applyLimitPerUniqueValue": True}, "limit": 1}]


def test_project_dagster_yaml_queues_runs_one_per_tenant(tmp_path):
    with DagsterInstance.from_ref(InstanceRef.from_dir(str(tmp_path), config_dir=str(ROOT))) as instance:
        config = instance.run_coordinator.get_run_queue_config()
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        assert config.tag_concurrency_limits == PER_TENANT


def test_production_instance_uses_postgres_storage(pg_templates, tmp_path, monkeypatch):
    admin_url, _ = pg_templates
    name = f"hs_dagster_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        host = admin_url.split("@", 1)[1].split("/", 1)[0]
        monkeypatch.setenv("DAGSTER_PG_HOST", host.split(":")[0])
        monkeypatch.setenv("DAGSTER_PG_PORT", host.split(":")[1] if ":" in host else "5432")
        monkeypatch.setenv("DAGSTER_PG_USER", "postgres")
        monkeypatch.setenv("DAGSTER_PG_PASSWORD", "")
        monkeypatch.setenv("DAGSTER_PG_DB", name)
        shutil.copy(ROOT / "deploy" / "dagster-postgres.yaml", tmp_path / "dagster.yaml")
        with DagsterInstance.from_ref(InstanceRef.from_dir(str(tmp_path))) as instance:
            assert type(instance.run_storage).__name__ == "PostgresRunStorage"
            assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
            assert instance.run_coordinator.get_run_queue_config().tag_concurrency_limits == PER_TENANT
            instance.add_dynamic_partitions("tenant", ["atelier"])
            assert instance.get_dynamic_partitions("tenant") == ["atelier"]
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
