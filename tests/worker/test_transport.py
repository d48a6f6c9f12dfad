"""Our Redis transport against a real Redis: a message is recorded unacked in the same step that
takes it off the queue, and a worker blocked on the doorbells misses no message."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path
from queue import Empty
from typing import Any

import pytest
import redis
from kombu import Connection, Consumer, Exchange, Producer, Queue
from kombu.asynchronous import Hub

from producer import wire
from producer.names import CLASSIFY_QUEUE, CLASSIFY_TASK, bell_key
from tests.polling import wait_for
from tests.redis_server import RedisServer
from worker.transport import install
from worker.transport.channel import Channel, Transport

QUEUE = CLASSIFY_QUEUE
#: Longer than any test waits: a message that needed the BRPOP timeout to arrive was missed.
LONG_WAIT_S = 30


@pytest.fixture
def conn(redis_url: str) -> Iterator[Connection]:
    install()
    with Connection(redis_url) as connection:
        connection.transport.brpop_timeout = LONG_WAIT_S
        yield connection


def envelope(task_id: str = "") -> str:
    message = wire.Message(task_id or str(uuid.uuid4()), json.dumps({"ticket": {"id": "1"}}))
    return wire.envelope(CLASSIFY_TASK, QUEUE, message)


def push(r: redis.Redis, n: int = 1) -> None:
    wire.push(r, CLASSIFY_TASK, QUEUE, [wire.Message(str(uuid.uuid4()), "{}")] * n, ttl_s=60)


def consume(channel: Channel, no_ack: bool = False) -> list[Any]:
    """Messages as the consumer callback sees them, with the unacked record at that moment."""
    seen: list[Any] = []
    r = redis.Redis(connection_pool=channel.pool)

    def on_message(message: Any) -> None:
        seen.append((message, r.hget("unacked", message.delivery_tag)))

    queue = Queue(QUEUE, Exchange(QUEUE, type="direct"), routing_key=QUEUE)
    Consumer(channel, [queue], callbacks=None, on_message=on_message, no_ack=no_ack).consume()
    return seen


def send_next(conn: Connection, channel: Channel) -> None:
    """What the event loop does before it polls: send the channel's next pop or bell wait."""
    conn.transport.cycle._register_BRPOP(channel)


def drain(conn: Connection, seen: list[Any], n: int, timeout_s: float = 5) -> float:
    """Run the consumer until `seen` holds `n` messages; return how long that took."""
    started = time.monotonic()

    def got_them() -> bool:
        if len(seen) < n:
            with suppress(TimeoutError):
                conn.drain_events(timeout=0.2)
        return len(seen) >= n

    wait_for(got_them, timeout_s=timeout_s, what=lambda: f"{n} messages (got {len(seen)})")
    return time.monotonic() - started


def wait_on_the_bells(conn: Connection, channel: Channel) -> None:
    """Run the consumer until it has found its queues empty and waits on their bells."""

    def waiting() -> bool:
        with suppress(TimeoutError):
            conn.drain_events(timeout=0.1)
        return channel._pending == "bell"

    wait_for(waiting, timeout_s=5, what="the consumer to wait on the bells", interval_s=0)


def test_every_redis_url_gets_our_transport(redis_url: str) -> None:
    install()
    install()  # idempotent
    for url in (redis_url, "rediss://127.0.0.1:1/0", "redis+socket:///tmp/none.sock"):
        assert Connection(url).get_transport_cls() is Transport


def test_a_message_is_recorded_unacked_before_the_consumer_sees_it(
    conn: Connection, rdb: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Recorded when the transport hands the message over, before kombu's own `QoS.append`
    (kombu's BRPOP had taken it with no record at that point)."""
    handed_over: list[str | None] = []
    deliver = conn.transport._deliver

    def check_then_deliver(payload: dict[str, Any], queue: str) -> None:
        handed_over.append(rdb.hget("unacked", payload["properties"]["delivery_tag"]))
        deliver(payload, queue)

    monkeypatch.setattr(conn.transport, "_deliver", check_then_deliver)
    push(rdb)
    seen = consume(conn.default_channel)
    drain(conn, seen, 1)
    ((message, record),) = seen
    assert record is not None and handed_over == [record.decode()], "taken before recorded"
    payload, exchange, routing_key = json.loads(record)
    assert payload == message._raw and (exchange, routing_key) == ("", QUEUE)
    assert rdb.zscore("unacked_index", message.delivery_tag) == pytest.approx(time.time(), abs=5)
    message.ack()
    assert rdb.hlen("unacked") == 0 and rdb.zcard("unacked_index") == 0


def test_in_an_event_loop_a_turns_acks_are_written_together(
    conn: Connection, rdb: redis.Redis
) -> None:
    """Acks made in one loop turn leave the unacked record in one pipeline, on the turn's tick
    (before the loop polls again), and the last ones when the channel closes."""
    hub = Hub()
    conn.transport.register_with_event_loop(conn.connection, hub)
    push(rdb, 5)
    channel = conn.default_channel
    seen = consume(channel)
    drain(conn, seen, 5)
    sent: list[int] = []
    execute = redis.client.Pipeline.execute

    def counting(pipe: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append(len(pipe.command_stack))
        return execute(pipe, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(redis.client.Pipeline, "execute", counting)
        for message, _ in seen[:4]:
            message.ack()
        assert rdb.hlen("unacked") == 5  # written with the turn's tick, not one by one
        for tick in list(hub.on_tick):
            tick()
    assert sent == [8]  # four acks, two commands each, one round trip
    assert rdb.hlen("unacked") == 1 and rdb.zcard("unacked_index") == 1
    seen[4][0].ack()
    channel.close()
    assert rdb.hlen("unacked") == 0 and rdb.llen(QUEUE) == 0, "the last ack was lost on close"


def test_a_worker_that_dies_after_the_pop_leaves_the_message_recorded(
    conn: Connection, rdb: redis.Redis
) -> None:
    """The script ran, its reply never read (kill -9): the record brings the message back."""
    push(rdb)
    channel = conn.default_channel
    consume(channel)
    send_next(conn, channel)
    wait_for(  # Redis has run the script; the worker "dies" before reading the reply
        lambda: rdb.llen(QUEUE) == 0 and rdb.hlen("unacked") == 1,
        timeout_s=5,
        what="the pop script to take and record the message",
    )
    channel.client.connection.disconnect()
    assert rdb.llen(QUEUE) == 0 and rdb.hlen("unacked") == 1
    channel.qos.restore_by_tag(rdb.hkeys("unacked")[0])  # what restore_visible does later
    assert rdb.llen(QUEUE) == 1 and rdb.llen(bell_key(QUEUE)) == 1 and rdb.hlen("unacked") == 0


def test_a_message_pushed_without_a_bell_is_still_taken(redis_url: str, rdb: redis.Redis) -> None:
    install()
    with Connection(redis_url) as conn:  # kombu's default wait on the bells: 1 s
        seen = consume(conn.default_channel)
        wait_on_the_bells(conn, conn.default_channel)
        rdb.lpush(QUEUE, envelope())  # a foreign producer: no token
        assert drain(conn, seen, 1, timeout_s=3) < 2.5
    assert seen[0][1] is not None


def test_a_waiting_consumer_misses_no_message(conn: Connection, rdb: redis.Redis) -> None:
    """Messages pushed at random moments, also between an empty pop and the bell wait: each is
    taken long before the 30 s bell timeout would have fetched a missed one."""
    channel = conn.default_channel
    seen = consume(channel)
    sizes = [1 + i % 3 for i in range(40)]

    def producer() -> None:
        for i, size in enumerate(sizes):
            # Uneven gaps, so pushes land at every point of the consumer's pop and bell wait.
            time.sleep((i % 7) * 0.003)
            push(rdb, size)

    thread = threading.Thread(target=producer)
    thread.start()
    try:
        drain(conn, seen, sum(sizes), timeout_s=10)  # while the producer pushes
    finally:
        thread.join()
    assert rdb.llen(QUEUE) == 0 and rdb.exists(bell_key(QUEUE)) == 0
    for i in range(20):  # one at a time, with the consumer idle on its bells in between
        wait_on_the_bells(conn, channel)
        push(rdb)
        assert drain(conn, seen, sum(sizes) + i + 1, timeout_s=5) < 2


def test_a_push_between_the_empty_pop_and_the_bell_wait_wakes_it(
    conn: Connection, rdb: redis.Redis
) -> None:
    channel = conn.default_channel
    seen = consume(channel)
    send_next(conn, channel)
    with pytest.raises(Empty):
        channel._brpop_read()  # nothing there: the next command waits on the bells
    push(rdb)  # lands in the gap
    send_next(conn, channel)
    started = time.monotonic()
    with pytest.raises(Empty):
        channel._brpop_read()
    assert time.monotonic() - started < 1, "the bell did not ring"
    send_next(conn, channel)
    assert channel._brpop_read() is True and len(seen) == 1


def test_no_ack_consumers_are_not_recorded(conn: Connection, rdb: redis.Redis) -> None:
    push(rdb)
    seen = consume(conn.default_channel, no_ack=True)
    drain(conn, seen, 1)
    assert seen[0][1] is None and rdb.hlen("unacked") == 0


def test_publish_and_requeue_ring_the_bell(conn: Connection, rdb: redis.Redis) -> None:
    Producer(conn.default_channel).publish({"x": 1}, routing_key=QUEUE, exchange="")
    assert rdb.llen(QUEUE) == 1 and rdb.llen(bell_key(QUEUE)) == 1
    seen = consume(conn.default_channel)
    drain(conn, seen, 1)
    assert rdb.exists(bell_key(QUEUE)) == 0  # its queue is empty: the bell is dropped
    seen[0][0].reject(requeue=True)
    assert rdb.llen(QUEUE) == 1 and rdb.llen(bell_key(QUEUE)) == 1 and rdb.hlen("unacked") == 0


def test_basic_get_records_in_the_same_step(conn: Connection, rdb: redis.Redis) -> None:
    push(rdb, 2)
    channel = conn.default_channel
    message = channel.basic_get(QUEUE)
    assert rdb.hexists("unacked", message.delivery_tag)
    assert channel.basic_get(QUEUE, no_ack=True) is not None and rdb.hlen("unacked") == 1
    assert channel.basic_get(QUEUE) is None


def test_a_restarted_redis_gets_the_script_again(tmp_path: Path) -> None:
    """After a restart Redis has no scripts (NOSCRIPT): the consumer sends it whole again."""
    server = RedisServer(tmp_path / "redis", appendonly=False)
    server.start()
    try:
        r = redis.Redis.from_url(server.url)
        install()
        with Connection(server.url) as conn:
            conn.transport.brpop_timeout = LONG_WAIT_S
            seen = consume(conn.default_channel)
            push(r)
            drain(conn, seen, 1)
            r.script_flush()  # what a restart does to the script cache
            push(r)
            drain(conn, seen, 2)
        assert all(record is not None for _, record in seen)
    finally:
        server.kill()


def test_two_waiting_consumers_take_every_message_once(redis_url: str, rdb: redis.Redis) -> None:
    """Bursts and single messages to two consumers that share the bell: each message is taken
    once, and none waits for the 30 s bell timeout."""
    install()
    taken: list[str] = []
    channels: list[Channel] = []
    stop = threading.Event()

    def consumer() -> None:
        with Connection(redis_url) as conn:
            conn.transport.brpop_timeout = LONG_WAIT_S
            seen = consume(conn.default_channel)
            channels.append(conn.default_channel)
            while not stop.is_set():
                with suppress(TimeoutError):
                    conn.drain_events(timeout=0.2)
                while seen:
                    message, _ = seen.pop()
                    taken.append(message.delivery_tag)
                    message.ack()
            # Closing would first read the pending bell wait (up to 30 s): drop it instead.
            conn.default_channel.client.connection.disconnect()

    threads = [threading.Thread(target=consumer) for _ in range(2)]
    for thread in threads:
        thread.start()
    pushed = 0
    try:
        wait_for(
            lambda: len(channels) == 2 and all(c._pending == "bell" for c in channels),
            timeout_s=10,
            what="both consumers to wait on the bell",
        )
        for i in range(30):
            push(rdb, 1 + (i % 4) * 5)
            pushed += 1 + (i % 4) * 5
            # Uneven gaps: some bursts meet both consumers on the bell, some one of them busy.
            time.sleep(0.02 * (i % 3))
        wait_for(
            lambda: len(taken) >= pushed,
            timeout_s=10,
            what=lambda: f"{pushed} messages taken (got {len(taken)})",
        )
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert len(taken) == pushed and len(set(taken)) == pushed
    assert rdb.llen(QUEUE) == 0 and rdb.hlen("unacked") == 0


def test_a_bell_of_the_wrong_type_is_dropped_not_fatal(conn: Connection, rdb: redis.Redis) -> None:
    push(rdb)
    rdb.set(bell_key(QUEUE), "not a list")
    seen = consume(conn.default_channel)
    drain(conn, seen, 1)
    assert seen[0][1] is not None and rdb.exists(bell_key(QUEUE)) == 0
