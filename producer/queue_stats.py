"""How much work waits in Redis: messages per queue, in flight, dead-lettered.

Read at scrape time (Prometheus) or on demand (`triage status`), never counted as messages come
and go: the lists in Redis are the truth, and every reader sees the same numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import redis
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from producer.names import DEAD_LETTER_LIST, QUEUES

#: kombu's Redis transport keeps a message with a priority in a list of its own, named
#: queue + "\x06\x16" + step; ours carry none (they land in the plain list) but a message sent
#: by another client might, and it still waits in the queue.
PRIORITY_SEP = "\x06\x16"
PRIORITY_STEPS = (3, 6, 9)
#: kombu's hash of delivered, not yet acknowledged messages (all queues together).
UNACKED_HASH = "unacked"


@dataclass(frozen=True)
class QueueStats:
    depths: dict[str, int]  # waiting messages per queue
    unacked: int  # taken by a worker, not yet acknowledged
    dead_letters: int


def read_queue_stats(r: redis.Redis) -> QueueStats:
    """One round trip; raises `redis.RedisError` when Redis does not answer."""
    pipe = r.pipeline(transaction=False)
    for queue in QUEUES:
        pipe.llen(queue)
        for step in PRIORITY_STEPS:
            pipe.llen(f"{queue}{PRIORITY_SEP}{step}")
    pipe.hlen(UNACKED_HASH)
    pipe.llen(DEAD_LETTER_LIST)
    counts = [int(n) for n in pipe.execute()]
    per_queue = 1 + len(PRIORITY_STEPS)
    depths = {q: sum(counts[i * per_queue : (i + 1) * per_queue]) for i, q in enumerate(QUEUES)}
    return QueueStats(depths=depths, unacked=counts[-2], dead_letters=counts[-1])


class QueueCollector(Collector):
    """Prometheus gauges of `read_queue_stats`, read from Redis on each scrape.

    `triage_redis_up` says whether the read worked: a failed read yields no depths rather than
    zeros, so a graph shows a gap instead of an empty queue that is not.
    """

    def __init__(self, connect: Callable[[], redis.Redis]) -> None:
        self._connect = connect

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily("triage_redis_up", "1 when Redis answered this scrape, else 0")
        try:
            stats = read_queue_stats(self._connect())
        except redis.RedisError:
            up.add_metric([], 0.0)
            yield up
            return
        up.add_metric([], 1.0)
        yield up
        depth = GaugeMetricFamily(
            "triage_queue_messages", "Messages waiting in a queue", labels=["queue"]
        )
        for queue, n in stats.depths.items():
            depth.add_metric([queue], float(n))
        yield depth
        yield GaugeMetricFamily(
            "triage_unacked_messages",
            "Messages taken by a worker and not yet acknowledged (all queues)",
            value=float(stats.unacked),
        )
        yield GaugeMetricFamily(
            "triage_dead_letters",
            "Messages parked in the dead-letter list for an operator",
            value=float(stats.dead_letters),
        )

    def describe(self) -> Iterator[GaugeMetricFamily]:
        # Registering must not read Redis (prometheus_client calls collect() when a collector
        # has no describe): name the families without values.
        yield GaugeMetricFamily("triage_redis_up", "")
        yield GaugeMetricFamily("triage_queue_messages", "", labels=["queue"])
        yield GaugeMetricFamily("triage_unacked_messages", "")
        yield GaugeMetricFamily("triage_dead_letters", "")
