"""The webhook sensor against a real HTTP receiver on loopback: once per change, not once per run."""

from __future__ import annotations

import json

import pytest
from dagster import build_sensor_context, instance_for_test

from pipelines.resources import AlertWebhook, resources_for
from pipelines.sensors import integrity_webhook_sensor
from tests.integration.test_metrics import record
from tests.loopback import http_receiver


@pytest.fixture
def receiver():
    """A loopback HTTP endpoint recording every POST body; ``status`` is what it answers."""
    with http_receiver(lambda h, body: (h.path, h.headers["Content-Type"], json.loads(body))) as server:
        yield f"http://{server.address}/hook", server.received, server


def tick(stores, instance, url, cursor):
    resources = {**resources_for(stores.settings), "alert_webhook": AlertWebhook(url=url)}
    context = build_sensor_context(instance=instance, resources=resources, cursor=cursor)
    result = integrity_webhook_sensor(context)
    return result, context.cursor


def alerts(body):
    return [(a["status"], a["labels"]["tenant"], a["labels"]["check"]) for a in body["alerts"]]


def test_webhook_posts_each_failure_and_recovery_once(stores, receiver):
    url, received, _ = receiver
    record(stores, "atelier", "orphan_token", "critical", 0)
    record(stores, "legacy", "token_count_mismatch", "warning", 4)  # not critical: never posted
    with instance_for_test() as instance:
        _, cursor = tick(stores, instance, url, None)
        assert received == []  # nothing critical is failing

        record(stores, "atelier", "orphan_token", "critical", 3, minutes=15)
        record(stores, "legacy", "duplicate_serial", "critical", 1, minutes=15)
        _, cursor = tick(stores, instance, url, cursor)
        assert len(received) == 1
        path, content_type, body = received[0]
        assert path == "/hook" and content_type == "application/json"
        assert body["version"] == "4" and body["status"] == "firing"
        assert alerts(body) == [("firing", "atelier", "orphan_token"), ("firing", "legacy", "duplicate_serial")]
        assert body["alerts"][0]["labels"]["alertname"] == "HatthasilpaCriticalIntegrityViolation"
        assert body["alerts"][0]["annotations"]["summary"] == "orphan_token finds 3 rows on tenant atelier"

        record(stores, "atelier", "orphan_token", "critical", 5, minutes=30)  # still failing: no new post
        record(stores, "atelier", "orphan_token", "critical", 0, error="statement timeout", minutes=45)
        _, cursor = tick(stores, instance, url, cursor)
        assert len(received) == 1

        record(stores, "atelier", "orphan_token", "critical", 0, minutes=60)  # repaired
        _, cursor = tick(stores, instance, url, cursor)
        assert len(received) == 2
        body = received[1][2]
        assert body["status"] == "resolved" and alerts(body) == [("resolved", "atelier", "orphan_token")]
        assert body["alerts"][0]["endsAt"]
        _, cursor = tick(stores, instance, url, cursor)
        assert len(received) == 2


def test_a_receiver_that_fails_gets_the_same_change_at_the_next_tick(stores, receiver):
    url, received, state = receiver
    record(stores, "atelier", "orphan_token", "critical", 2)
    with instance_for_test() as instance:
        result, cursor = tick(stores, instance, "http://127.0.0.1:9/hook", None)  # nobody listens on port 9
        assert cursor is None and "failed" in result.skip_message
        state.status = 500
        result, cursor = tick(stores, instance, url, cursor)
        assert cursor is None and len(received) == 1
        state.status = 200
        _, cursor = tick(stores, instance, url, cursor)
        assert len(received) == 2 and alerts(received[1][2]) == [("firing", "atelier", "orphan_token")]
        assert json.loads(cursor) == [["atelier", "orphan_token"]]


def test_without_a_url_the_sensor_skips(stores, monkeypatch):
    monkeypatch.delenv("HATTHASILPA_ALERT_WEBHOOK_URL", raising=False)
    record(stores, "atelier", "orphan_token", "critical", 2)
    with instance_for_test() as instance:
        result, cursor = tick(stores, instance, None, None)
    assert "HATTHASILPA_ALERT_WEBHOOK_URL" in result.skip_message and cursor is None
