"""Hourly lifecycle volumes: counted from the real flows' timestamps, one hour at a time, stored once."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from checks import volumes
from checks.schema import lifecycle_volume
from lifecycle import outbox, services, sessions
from lifecycle.db import get_engine

H = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.timezone.utc)  # a Monday morning


def at(minutes: float):
    return lambda: H + dt.timedelta(minutes=minutes)


def _act(factory, minutes, fn, *args):
    with factory.uow(clock=at(minutes)) as uow:
        result = fn(uow, *args)
        uow.commit()
        return result


def _busy_hour(factory) -> None:
    """In the hour H: two jobs start (3 + 5 tokens), one is cancelled, one session opens and completes,
    another opens; the relay publishes the serials at H + 50 min."""
    _act(factory, 1, services.create_job, "J-1", "TOTE", 3, "bag")
    _act(factory, 2, services.create_job, "J-2", "TOTE", 5, "bag")
    first = _act(factory, 5, services.start_job, "J-1")
    _act(factory, 6, services.start_job, "J-2")
    _act(factory, 10, sessions.start, first["token_ids"][0], "op1")
    _act(factory, 20, sessions.complete, first["token_ids"][0], "op1")
    _act(factory, 25, sessions.start, first["token_ids"][1], "op2")
    _act(factory, 30, services.cancel_job, "J-2")
    outbox.relay(factory.settings, ["atelier"], clock=at(50))


def test_one_hour_of_the_real_flows_is_counted_from_its_timestamps(stores, tmp_path):
    stores.add_tenant("atelier", test=True)  # TEMP serials: every piece-mode token has one
    factory = _with_factory_on_existing(stores, tmp_path)
    _busy_hour(factory)
    with factory.tenant_engine().connect() as conn:
        counted = volumes.count_hour(conn, H)
        before, after = volumes.count_hour(conn, H - volumes.HOUR), volumes.count_hour(conn, H + volumes.HOUR)
    assert counted == {"jobs_started": 2.0, "tokens_spawned": 8.0, "tokens_per_spawn": 4.0, "tokens_scrapped": 5.0,
                       "jobs_cancelled": 1.0, "sessions_opened": 2.0, "sessions_completed": 1.0,
                       "serials_issued": 8.0, "serials_relayed": counted["serials_relayed"], "outbox_backlog": 0.0}
    # every serial write went through the outbox: 8 issued, then 5 voided by the cancel, relayed at H+50
    assert counted["serials_relayed"] == 13.0
    assert set(before.values()) == {0.0}
    assert after == dict.fromkeys(volumes.KIND_IDS, 0.0)


def _with_factory_on_existing(stores, tmp_path):
    import json

    from tests.conftest import LINEAR_GRAPH

    path = tmp_path / "bag.json"
    path.write_text(json.dumps(LINEAR_GRAPH))
    stores.ok("graph", "create", "--tenant", "atelier", "--code", "bag", "--file", path)
    return stores


def test_the_backlog_at_the_hour_counts_rows_published_only_later(factory):
    _act(factory, 1, services.create_job, "J-B", "TOTE", 2, "bag")
    factory.ok("flag", "set", "atelier", "FF_SERIAL_STD_HAT", "on")
    _act(factory, 5, services.start_job, "J-B")
    outbox.relay(factory.settings, ["atelier"], clock=lambda: H + dt.timedelta(hours=2, minutes=5))
    with factory.tenant_engine().connect() as conn:
        assert volumes.count_hour(conn, H)["outbox_backlog"] == 2.0  # unpublished when H ended
        assert volumes.count_hour(conn, H + volumes.HOUR)["outbox_backlog"] == 2.0
        assert volumes.count_hour(conn, H + 2 * volumes.HOUR)["outbox_backlog"] == 0.0
        assert volumes.count_hour(conn, H + 2 * volumes.HOUR)["serials_relayed"] == 2.0


def test_collect_backfills_once_then_counts_only_new_hours(factory):
    _act(factory, 1, services.create_job, "J-C", "TOTE", 3, "bag")
    factory.ok("flag", "set", "atelier", "FF_SERIAL_STD_HAT", "on")
    _act(factory, 5, services.start_job, "J-C")
    now = H + dt.timedelta(hours=5, minutes=3)
    first = volumes.collect(factory.settings, "atelier", now=now, backfill_weeks=1)
    assert first["hours"] == 168 and first["last"] == H + dt.timedelta(hours=4)
    again = volumes.collect(factory.settings, "atelier", now=now, backfill_weeks=1)
    assert again["hours"] == 0
    later = volumes.collect(factory.settings, "atelier", now=now + dt.timedelta(hours=2), backfill_weeks=1)
    assert later["hours"] == 2 and later["first"] == H + dt.timedelta(hours=5)
    with get_engine(factory.settings.monitor_url).connect() as conn:
        stored = conn.execute(sa.select(sa.func.count()).select_from(lifecycle_volume)).scalar()
        spawned = conn.execute(sa.select(lifecycle_volume.c.value).where(
            lifecycle_volume.c.kind == "tokens_spawned", lifecycle_volume.c.hour == H)).scalar()
    assert stored == 170 * len(volumes.KINDS)
    assert spawned == 3.0


def test_missing_hours_stop_at_the_backfill_horizon():
    until = H + dt.timedelta(minutes=59)
    assert volumes.missing_hours(None, until, backfill_weeks=1)[0] == H - dt.timedelta(weeks=1) + volumes.HOUR
    assert volumes.missing_hours(H - 3 * volumes.HOUR, until) == [H - 2 * volumes.HOUR, H - volumes.HOUR, H]
    assert volumes.missing_hours(H, until) == []


def _seed(settings, tenant: str, hours: int, values: dict[str, float]) -> None:
    """Generated history: ``hours`` hours before H, every kind at its value (0 when not given)."""
    rows = [{"hour": H - volumes.HOUR * i, "kind": kind, "value": values.get(kind, 0.0)}
            for i in range(1, hours + 1) for kind in volumes.KIND_IDS]
    with get_engine(settings.monitor_url).begin() as conn:
        volumes.write(conn, tenant, rows, source="generated")


def test_lifecycle_volumes_asset_flags_a_spawn_storm_as_a_warning(factory):
    from dagster import AssetCheckSeverity, DagsterInstance, materialize

    from pipelines.resources import resources_for
    from pipelines.volumes import VOLUME_ASSETS

    _seed(factory.settings, "atelier", 3 * 168, {"jobs_started": 1.0, "tokens_spawned": 3.0, "tokens_per_spawn": 3.0})
    factory.ok("flag", "set", "atelier", "FF_SERIAL_STD_HAT", "on")
    _act(factory, 1, services.create_job, "J-STORM", "TOTE", 40, "bag")
    _act(factory, 5, services.start_job, "J-STORM")
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("tenant", ["atelier"])
    result = materialize(VOLUME_ASSETS, partition_key="atelier", instance=instance,
                         resources=resources_for(factory.settings),
                         run_config={"ops": {"lifecycle_volumes": {"config": {"until": H.isoformat()}}}})
    assert result.success
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert set(checks) == {f"volume_{k}" for k in volumes.KIND_IDS}
    storm = checks["volume_tokens_spawned"]
    assert not storm.passed and storm.severity == AssetCheckSeverity.WARN
    meta = {k: v.value for k, v in storm.metadata.items()}
    assert meta["observed"] == 40.0 and meta["expected"] == 3.0 and meta["slot"] == 9  # Monday 09:00
    assert meta["expected_low"] <= 3.0 <= meta["expected_high"] < 40.0 and meta["score"] >= 5
    assert checks["volume_jobs_started"].passed  # one job started, as every hour
    with get_engine(factory.settings.monitor_url).connect() as conn:
        score = conn.execute(sa.select(lifecycle_volume.c.score).where(
            lifecycle_volume.c.kind == "tokens_spawned", lifecycle_volume.c.hour == H)).scalar()
    assert round(score, 3) == meta["score"]


def test_a_bad_per_kind_threshold_fails_the_assets_before_anything_is_written(factory, monkeypatch):
    from dagster import DagsterInstance, materialize

    from pipelines.resources import resources_for
    from pipelines.volumes import VOLUME_ASSETS

    _act(factory, 5, services.create_job, "J-T", "TOTE", 2, "bag")
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("tenant", ["atelier"])
    for setting in ("tokens_spawnd=6", "tokens_spawned=0", "tokens_spawned=many"):
        monkeypatch.setenv("HATTHASILPA_VOLUME_THRESHOLDS", setting)
        result = materialize(VOLUME_ASSETS, partition_key="atelier", instance=instance,
                             resources=resources_for(factory.settings), raise_on_error=False,
                             run_config={"ops": {"lifecycle_volumes": {"config": {"until": H.isoformat()}}}})
        assert not result.success
        failure = result.get_step_failure_events()[0].step_failure_data.user_failure_data
        assert failure.metadata["code"].text == "VALIDATION_ERROR", setting
        assert failure.metadata["hint"].text.endswith("valid kinds: " + ", ".join(volumes.KIND_IDS))
        assert "HATTHASILPA_VOLUME_THRESHOLDS" in failure.description
    with get_engine(factory.settings.monitor_url).connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(lifecycle_volume)).scalar() == 0


def test_the_assets_first_run_backfills_past_hours_from_the_tenant_history(factory):
    from dagster import DagsterInstance, materialize

    from pipelines.resources import resources_for
    from pipelines.volumes import VOLUME_ASSETS

    factory.ok("flag", "set", "atelier", "FF_SERIAL_STD_HAT", "on")
    _act(factory, -2 * 24 * 60 + 5, services.create_job, "J-PAST", "TOTE", 4, "bag")  # two days before H
    _act(factory, -2 * 24 * 60 + 10, services.start_job, "J-PAST")
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("tenant", ["atelier"])

    def run(until: dt.datetime):
        result = materialize(VOLUME_ASSETS, partition_key="atelier", instance=instance,
                             resources=resources_for(factory.settings),
                             run_config={"ops": {"lifecycle_volumes": {"config": {"until": until.isoformat(),
                                                                                  "backfill_weeks": 1}}}})
        assert result.success
        (materialization,) = [m for m in result.asset_materializations_for_node("lifecycle_volumes")]
        return materialization.metadata["hours_counted"].value

    assert run(H) == 168  # the first run counts the week before, the last complete hour included
    with get_engine(factory.settings.monitor_url).connect() as conn:
        past = conn.execute(sa.select(lifecycle_volume.c.value, lifecycle_volume.c.source).where(
            lifecycle_volume.c.kind == "tokens_spawned", lifecycle_volume.c.hour == H - dt.timedelta(days=2))).one()
        hours = conn.execute(sa.select(sa.func.count(sa.distinct(lifecycle_volume.c.hour)))).scalar()
    assert tuple(past) == (4.0, "counted") and hours == 168
    assert run(H + 2 * volumes.HOUR) == 2  # then only the hours since
