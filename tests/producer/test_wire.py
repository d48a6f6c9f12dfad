"""The hand-written message envelope and the atomic push script against a real Redis."""

from __future__ import annotations

import base64
import json
import uuid

import pytest
import redis
from kombu.transport.redis import loads as kombu_loads

from producer import Ticket, wire
from producer.client import _TASK_ID_NAMESPACE, task_id_for
from producer.names import CLASSIFY_QUEUE, CLASSIFY_TASK, bell_key


@pytest.mark.parametrize("ticket_id", ["1", "acme/repo#7", 'quo"te\\slash', "é ü 漢字"])
def test_task_id_is_uuid5_of_the_revision(ticket_id: str) -> None:
    t = Ticket(id=ticket_id, body="x", revision="r1")
    expected = uuid.uuid5(_TASK_ID_NAMESPACE, f"category\x1fapi\x1f{ticket_id}\x1fr1")
    assert task_id_for(t) == str(expected)


def test_envelope_is_what_kombu_decodes() -> None:
    kwargs = {"ticket": {"id": 'a"b', "body": "ünïcode\n"}, "n": 1}
    message = wire.Message("tid-1", json.dumps(kwargs), kwargsrepr='{ticket: a"b}')
    decoded = kombu_loads(wire.envelope(CLASSIFY_TASK, CLASSIFY_QUEUE, message))
    assert decoded["headers"]["task"] == CLASSIFY_TASK
    assert decoded["headers"]["id"] == decoded["properties"]["correlation_id"] == "tid-1"
    assert decoded["headers"]["kwargsrepr"] == '{ticket: a"b}'
    assert decoded["properties"]["delivery_info"] == {"exchange": "", "routing_key": CLASSIFY_QUEUE}
    args, got, embed = json.loads(base64.b64decode(decoded["body"]))
    assert (args, got, embed["chain"]) == ([], kwargs, None)
    other = kombu_loads(wire.envelope(CLASSIFY_TASK, CLASSIFY_QUEUE, message))
    assert other["properties"]["delivery_tag"] != decoded["properties"]["delivery_tag"]


def test_push_claims_and_queues_atomically(rdb: redis.Redis) -> None:
    messages = [wire.Message(f"t{i}", "{}", dedupe_key=f"triage:test:{i % 3}") for i in range(5)]
    queued = wire.push(rdb, CLASSIFY_TASK, CLASSIFY_QUEUE, messages, ttl_s=60)
    # Keys 0,1,2 are new; the 4th and 5th messages reuse keys 0 and 1 within the same call.
    assert queued == [True, True, True, False, False]
    assert rdb.llen(CLASSIFY_QUEUE) == 3
    # The doorbell workers wait on: a token per message queued, none for a duplicate.
    assert rdb.llen(bell_key(CLASSIFY_QUEUE)) == 3
    assert 0 < rdb.ttl("triage:test:0") <= 60
    again = wire.push(rdb, CLASSIFY_TASK, CLASSIFY_QUEUE, messages[:1], ttl_s=60, force=True)
    assert again == [True] and rdb.llen(CLASSIFY_QUEUE) == 4
    plain = [wire.Message("no-key", "{}")]
    assert wire.push(rdb, CLASSIFY_TASK, CLASSIFY_QUEUE, plain * 2, ttl_s=60) == [True, True]


def test_push_survives_a_flushed_script_cache(rdb: redis.Redis) -> None:
    # What a restarted Redis looks like to a long-lived producer: the script is gone.
    wire.push(rdb, CLASSIFY_TASK, CLASSIFY_QUEUE, [wire.Message("a", "{}")], ttl_s=60)
    rdb.script_flush()
    wire.push(rdb, CLASSIFY_TASK, CLASSIFY_QUEUE, [wire.Message("b", "{}")], ttl_s=60)
    assert rdb.llen(CLASSIFY_QUEUE) == 2


def test_a_closed_gate_queues_nothing(rdb: redis.Redis) -> None:
    gate = wire.Gate("triage:test:delivery", ttl_s=30)
    first = [wire.Message("a", "{}", dedupe_key="triage:test:a")]
    assert wire.push(rdb, CLASSIFY_TASK, CLASSIFY_QUEUE, first, ttl_s=60, gate=gate) == [True]
    other = [wire.Message("b", "{}", dedupe_key="triage:test:b")]
    with pytest.raises(wire.GateClosed):
        wire.push(rdb, CLASSIFY_TASK, CLASSIFY_QUEUE, other, ttl_s=60, gate=gate)
    assert rdb.llen(CLASSIFY_QUEUE) == 1 and not rdb.exists("triage:test:b")
    assert rdb.llen(bell_key(CLASSIFY_QUEUE)) == 1
    assert 0 < rdb.ttl(gate.key) <= 30
