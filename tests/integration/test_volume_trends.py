"""Volumes at the edges: the Prometheus gauges of the last complete hour, and `hatthasilpa trends`."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from prometheus_client import generate_latest

from checks import baselines, metrics, synthetic, volumes
from checks.schema import lifecycle_volume
from lifecycle.db import get_engine

import pandas as pd


def _history(settings, tenant: str, spike: float | None = None) -> dt.datetime:
    """Four generated weeks ending with the last complete hour (its value replaced by ``spike``), judged."""
    last = volumes.last_complete_hour()
    start = pd.Timestamp(last) - pd.Timedelta(weeks=4) + pd.Timedelta(hours=1)
    frame = synthetic.generate(start, 4, seed=9)
    rows = [{"hour": hour.to_pydatetime(), "kind": kind, "value": value}
            for hour, values in frame.iterrows() for kind, value in values.items()]
    if spike is not None:
        rows = [r if not (r["kind"] == "outbox_backlog" and r["hour"] == last) else {**r, "value": spike}
                for r in rows]
    with get_engine(settings.monitor_url).begin() as conn:
        volumes.write(conn, tenant, rows, source="generated")
    volumes.judge_hour(settings, tenant, last, baselines.Options())
    return last


def test_gauges_export_the_last_complete_hour_and_its_score(stores):
    stores.add_tenant("atelier")
    _history(stores.settings, "atelier", spike=400.0)
    text = generate_latest(metrics.registry_for(stores.settings)).decode()
    backlog = [line for line in text.splitlines()
               if line.startswith('hatthasilpa_lifecycle_volume{') and 'kind="outbox_backlog"' in line]
    assert backlog == ['hatthasilpa_lifecycle_volume{kind="outbox_backlog",tenant="atelier"} 400.0']
    score = [line for line in text.splitlines()
             if line.startswith("hatthasilpa_lifecycle_volume_anomaly_score{") and "outbox_backlog" in line]
    assert len(score) == 1 and float(score[0].split()[-1]) >= 5
    assert text.count("hatthasilpa_lifecycle_volume{") == len(volumes.KINDS)


def test_trends_prints_bands_and_flags_the_anomaly(stores):
    stores.add_tenant("atelier")
    _history(stores.settings, "atelier", spike=400.0)
    data = stores.ok("trends", "--tenant", "atelier", "--json")
    last = {kind: points[-1] for kind, points in data["series"].items()}
    assert set(last) == set(volumes.KIND_IDS)
    assert last["outbox_backlog"]["status"] == "anomaly" and last["outbox_backlog"]["value"] == 400.0
    assert last["outbox_backlog"]["high"] < 400.0
    one = stores.ok("trends", "--tenant", "atelier", "--kind", "sessions_opened", "--hours", "48", "--json")
    assert len(one["series"]["sessions_opened"]) == 48
    assert all(p["low"] <= p["high"] for p in one["series"]["sessions_opened"] if p["low"] is not None)
    assert "weekly" in data["findings"]
    code, body = stores.cli("trends", "--tenant", "atelier", "--kind", "spawns")
    assert code == 2 and body["error"]["code"] == "VALIDATION_ERROR" and "tokens_spawned" in body["error"]["hint"]


def test_trends_refuses_a_bad_per_kind_threshold_and_writes_nothing(stores, monkeypatch):
    stores.add_tenant("atelier")
    _history(stores.settings, "atelier")
    with get_engine(stores.settings.monitor_url).connect() as conn:
        before = conn.execute(sa.select(lifecycle_volume).order_by(lifecycle_volume.c.kind,
                                                                   lifecycle_volume.c.hour)).all()
    for setting, says in (("outbox_backlog=8,spawns=6", "unknown kind 'spawns'"),
                          ("outbox_backlog=-1", "positive number"), ("outbox_backlog=eight", "positive number")):
        monkeypatch.setenv("HATTHASILPA_VOLUME_THRESHOLDS", setting)
        code, body = stores.cli("trends", "--tenant", "atelier", "--json")
        assert code == 2 and body["error"]["code"] == "VALIDATION_ERROR", body
        assert says in body["error"]["message"] and "HATTHASILPA_VOLUME_THRESHOLDS" in body["error"]["message"]
        assert body["error"]["hint"].endswith("valid kinds: " + ", ".join(volumes.KIND_IDS))
    with get_engine(stores.settings.monitor_url).connect() as conn:
        assert conn.execute(sa.select(lifecycle_volume).order_by(lifecycle_volume.c.kind,
                                                                 lifecycle_volume.c.hour)).all() == before
