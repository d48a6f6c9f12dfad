"""The HTTP app's /metrics shows the queue depths, read from Redis at scrape time."""

from __future__ import annotations

import redis
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from producer.http import create_app
from producer.names import CLASSIFY_QUEUE, DEAD_LETTER_LIST, ESCALATE_QUEUE, WRITEBACK_QUEUE
from producer.settings import ProducerSettings
from tests.producer.http_support import AUTH, http_settings


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_show_queue_depth_and_dead_letters(
    redis_url: str, rdb: redis.Redis, tmp_path
) -> None:
    rdb.lpush(CLASSIFY_QUEUE, "m1", "m2", "m3")
    rdb.lpush(WRITEBACK_QUEUE, "m4")
    rdb.lpush(DEAD_LETTER_LIST, "{}")
    app = create_app(http_settings(tmp_path), ProducerSettings(redis_url=redis_url))
    with TestClient(app) as client:
        found = samples(client.get("/metrics", headers=AUTH).text)
    assert found[("triage_redis_up", ())] == 1.0
    assert found[("triage_queue_messages", (("queue", CLASSIFY_QUEUE),))] == 3.0
    assert found[("triage_queue_messages", (("queue", ESCALATE_QUEUE),))] == 0.0
    assert found[("triage_queue_messages", (("queue", WRITEBACK_QUEUE),))] == 1.0
    assert found[("triage_dead_letters", ())] == 1.0


def test_metrics_still_answer_when_redis_is_down(tmp_path) -> None:
    down = ProducerSettings(redis_url="redis://127.0.0.1:1/0", broker_timeout_s=0.5)
    app = create_app(http_settings(tmp_path), down)
    with TestClient(app) as client:
        response = client.get("/metrics", headers=AUTH)
    assert response.status_code == 200
    found = samples(response.text)
    assert found[("triage_redis_up", ())] == 0.0
    assert not any(name == "triage_queue_messages" for name, _ in found)
