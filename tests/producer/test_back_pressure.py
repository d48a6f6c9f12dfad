"""Back-pressure: a queue at its depth cap refuses more (503 with Retry-After, `QueueFull`)
instead of letting Redis grow while the workers are behind; nothing refused is half-queued."""

from __future__ import annotations

import io
import json
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
from starlette.testclient import TestClient

from producer import QueueFull, Ticket, enqueue_many, settings
from producer.backfill.run import BackfillConfig, run_backfill
from producer.client import send_tickets
from producer.http import create_app
from producer.http.settings import HttpSettings
from producer.names import CLASSIFY_QUEUE
from producer.settings import ProducerSettings
from tests.redis_server import RedisServer

CAP = 200


@pytest.fixture
def redis_url(tmp_path, monkeypatch) -> Iterator[str]:
    """A Redis of this test's own: on the shared one, another session's worker could drain the
    queue and hide a broken cap."""
    server = RedisServer(tmp_path / "redis", appendonly=False)
    server.start()
    monkeypatch.setenv("TRIAGE_REDIS_URL", server.url)
    settings.get_settings.cache_clear()
    yield server.url
    server.kill()
    settings.get_settings.cache_clear()


@pytest.fixture
def rdb(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


def tickets(n: int, prefix: str = "t") -> list[Ticket]:
    return [Ticket(id=f"{prefix}{i}", body=f"my card {i} has not arrived") for i in range(n)]


def test_enqueue_raises_queue_full_at_the_cap_and_queues_nothing(redis_url, rdb) -> None:
    settings = ProducerSettings(redis_url=redis_url, max_queue_depth=CAP)
    send_tickets(tickets(150), settings=settings)
    with pytest.raises(QueueFull, match="TRIAGE_MAX_QUEUE_DEPTH") as full:
        send_tickets(tickets(60, "u"), settings=settings)  # 150 + 60 > 200: all refused
    assert full.value.retry_after_s
    assert rdb.llen(CLASSIFY_QUEUE) == 150
    assert not rdb.keys("triage:enqueued:*:u*"), "a refused ticket was marked as sent"
    send_tickets(tickets(50, "u"), settings=settings)  # exactly to the cap
    assert rdb.llen(CLASSIFY_QUEUE) == CAP
    # Once drained, the same tickets go in: the refusal left nothing behind.
    rdb.delete(CLASSIFY_QUEUE)
    assert all(send_tickets(tickets(60, "v"), settings=settings))


def test_an_empty_queue_takes_a_call_bigger_than_the_cap(redis_url, rdb) -> None:
    settings = ProducerSettings(redis_url=redis_url, max_queue_depth=10)
    send_tickets(tickets(25), settings=settings)
    assert rdb.llen(CLASSIFY_QUEUE) == 25


@pytest.mark.slow
def test_a_burst_on_the_webhook_meets_503_and_redis_stays_bounded(redis_url) -> None:
    """Ten times the cap, from 8 senders at once: every answer is 202 or 503; the queue never
    holds more than the cap; what got 202 is exactly what is queued."""
    client_redis = redis.Redis.from_url(redis_url, decode_responses=True)
    app = create_app(
        HttpSettings(
            api_tokens=["t"],
            webhook_sources=["generic"],
            insecure_sources=["generic"],
        ),
        ProducerSettings(redis_url=redis_url, max_queue_depth=CAP),
    )
    memory_before = client_redis.info("memory")["used_memory"]
    statuses: Counter[int] = Counter()
    accepted: list[str] = []
    deepest = [0]
    lock = threading.Lock()
    with TestClient(app) as client:

        def send(ticket: Ticket) -> None:
            response = client.post(
                "/v1/webhooks/generic",
                content=ticket.model_dump_json(),
                headers={"Content-Type": "application/json", "X-Triage-Delivery": ticket.id},
            )
            depth = client_redis.llen(CLASSIFY_QUEUE)
            with lock:
                statuses[response.status_code] += 1
                deepest[0] = max(deepest[0], depth)
                if response.status_code == 202:
                    accepted.append(ticket.id)
                else:
                    assert response.headers["Retry-After"]
                    assert "TRIAGE_MAX_QUEUE_DEPTH" in response.json()["detail"]

        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(send, tickets(10 * CAP)))
    queued = [json.loads(m)["headers"]["id"] for m in client_redis.lrange(CLASSIFY_QUEUE, 0, -1)]
    growth = client_redis.info("memory")["used_memory"] - memory_before
    queue_bytes = client_redis.memory_usage(CLASSIFY_QUEUE) or 0
    assert set(statuses) == {202, 503}
    assert statuses[202] == CAP == len(accepted) == len(queued) == deepest[0]
    # Bounded by the cap, not the burst: ~1.3 kB a queued ticket, plus its dedupe keys and
    # the connections' buffers; the burst's 2,000 tickets would have needed ~3 MB of queue.
    assert queue_bytes < CAP * 2048, queue_bytes
    assert growth < 2_000_000, growth


def test_a_backfill_waits_for_room_instead_of_stopping(redis_url, rdb) -> None:
    settings = ProducerSettings(redis_url=redis_url, max_queue_depth=100)
    rows = "".join(json.dumps({"id": f"b{i}", "body": "card late"}) + "\n" for i in range(400))
    drained: list[str] = []
    stop = threading.Event()

    def workers() -> None:  # takes what is queued, a little at a time
        while not stop.is_set():
            item = rdb.rpop(CLASSIFY_QUEUE)
            if item:
                drained.append(item)
            else:
                stop.wait(0.01)

    drain = threading.Thread(target=workers)
    drain.start()
    try:
        stats = run_backfill(
            io.BytesIO(rows.encode()), BackfillConfig(chunk_size=50), settings=settings
        )
    finally:
        stop.set()
        drain.join()
    drained += rdb.lrange(CLASSIFY_QUEUE, 0, -1)
    assert stats.enqueued == 400 and len(drained) == 400


def test_no_cap_when_set_to_zero(redis_url, rdb, monkeypatch) -> None:
    monkeypatch.setenv("TRIAGE_MAX_QUEUE_DEPTH", "0")
    settings.get_settings.cache_clear()
    enqueue_many(tickets(300))
    assert rdb.llen(CLASSIFY_QUEUE) == 300
