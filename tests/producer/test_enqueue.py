"""The enqueue client against a real Redis: what lands on the queue, dedupe, errors."""

from __future__ import annotations

import asyncio
import base64
import json
import time

import pytest
import redis

from producer import BrokerUnavailable, InvalidTicket, Ticket, aenqueue_many, enqueue, enqueue_many
from producer.names import CLASSIFY_QUEUE, CLASSIFY_TASK
from producer.settings import get_settings


def queued(rdb: redis.Redis) -> list[dict]:
    return [json.loads(m) for m in rdb.lrange(CLASSIFY_QUEUE, 0, -1)]


def test_enqueue_sends_a_celery_message_by_task_name(rdb: redis.Redis) -> None:
    ticket_id = enqueue({"id": "42", "subject": "card", "body": "not arrived"})
    assert ticket_id == "42"
    [message] = queued(rdb)
    assert message["headers"]["task"] == CLASSIFY_TASK
    assert message["content-type"] == "application/json"
    args, kwargs, _ = json.loads(base64.b64decode(message["body"]))
    assert (
        args == [] and kwargs["ticket"]["id"] == "42" and kwargs["ticket"]["body"] == "not arrived"
    )
    assert kwargs["enqueued_at"]


def test_ids_and_revisions_with_colons_never_share_a_key(rdb: redis.Redis) -> None:
    # Joined with ":" unescaped, ("X:b", "c") and ("X", "b:c") were one key: the second ticket
    # was taken for a duplicate and never enqueued.
    enqueue_many(
        [
            Ticket(id="X:b", body="one", revision="c"),
            Ticket(id="X", body="two", revision="b:c"),
            Ticket(id="X%3Ab", body="three", revision="c"),
        ]
    )
    assert len(queued(rdb)) == 3
    assert len(rdb.keys("triage:enqueued:*")) == 3


def test_same_revision_is_a_noop_new_revision_is_not(rdb: redis.Redis) -> None:
    t = Ticket(id="1", body="hello", revision="r1")
    enqueue(t)
    enqueue(t)
    enqueue_many([t, t])
    assert len(queued(rdb)) == 1
    enqueue(t.model_copy(update={"revision": "r2"}))
    assert len(queued(rdb)) == 2
    enqueue(t, force=True)
    assert len(queued(rdb)) == 3


def test_same_id_in_another_source_is_another_ticket(rdb: redis.Redis) -> None:
    enqueue_many([Ticket(id="1", body="x", source="a"), Ticket(id="1", body="x", source="b")])
    assert len(queued(rdb)) == 2


def test_invalid_ticket_sends_nothing(rdb: redis.Redis) -> None:
    with pytest.raises(InvalidTicket) as info:
        enqueue_many([{"id": "ok", "body": "fine"}, {"id": "bad", "body": "x" * 60_000}])
    assert info.value.errors[0]["field"] == "body"
    assert queued(rdb) == []
    assert rdb.keys("triage:enqueued:*") == []


def test_unreachable_broker_raises_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIAGE_REDIS_URL", "redis://127.0.0.1:1/0")
    monkeypatch.setenv("TRIAGE_BROKER_TIMEOUT_S", "0.5")
    get_settings.cache_clear()
    try:
        started = time.monotonic()
        with pytest.raises(BrokerUnavailable, match=r"127\.0\.0\.1:1"):
            enqueue({"id": "1", "body": "x"})
        assert time.monotonic() - started < 10
    finally:
        get_settings.cache_clear()


def test_async_variant(rdb: redis.Redis) -> None:
    ids = asyncio.run(aenqueue_many([{"id": str(i), "body": "x"} for i in range(5)]))
    assert ids == ["0", "1", "2", "3", "4"]
    assert len(queued(rdb)) == 5


def test_bad_redis_url_fails_at_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from producer.settings import ProducerSettings

    monkeypatch.setenv("TRIAGE_REDIS_URL", "http://nope")
    with pytest.raises(ValidationError, match="redis_url"):
        ProducerSettings()
