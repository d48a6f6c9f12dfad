"""Batches that fill under load and still flush a lone ticket at once.

celery-batches flushes on a timer. With a short timer (a lone ticket must not wait), a busy worker
flushes batches of two or three: the event loop pulls one message per turn while the timer keeps
firing, and each flush costs a whole forward pass. So at each tick we look at the queue: when
more tickets are already waiting in Redis, we let the batch fill (up to `flush_every`, or until
its first ticket has waited `max_wait_s`); when the queue is empty, we flush now, and a ticket
that arrives to an empty buffer and an empty queue does not even wait for the tick.

The wait counts from the first tick that sees the batch, not from the last flush: in a solo pool
the flush runs in the event loop, so no ticket arrives during a forward pass, and a wait counted
from its start had always run out by the next tick (batches of a few tickets under a backlog).
"""

from __future__ import annotations

import logging
from time import monotonic
from typing import Any

import redis
from celery_batches import Batches

from producer.names import CLASSIFY_QUEUE

log = logging.getLogger(__name__)


class FillingBatches(Batches):  # type: ignore[misc]
    abstract = True
    #: Longest a ticket waits for its batch to fill while more keep arriving.
    max_wait_s = 0.5

    def __init__(self) -> None:
        super().__init__()
        self._filling_since: float | None = None

    def _do_flush(self) -> None:
        waiting = self._buffer.qsize()
        now = monotonic()
        if waiting and self._filling_since is None:
            self._filling_since = now
        if (
            0 < waiting < self.flush_every
            and now - (self._filling_since or now) < self.max_wait_s
            and self._more_queued()
        ):
            return
        self._filling_since = None
        super()._do_flush()

    def Strategy(self, task: Any, app: Any, consumer: Any) -> Any:
        handle = super().Strategy(task, app, consumer)

        def on_message(*args: Any, **kwargs: Any) -> None:
            handle(*args, **kwargs)
            self._arrived()

        return on_message

    def _arrived(self) -> None:
        """A ticket was buffered: the first of a batch, with none behind it, goes now.

        Without this a lone ticket waits for the next timer tick (up to `flush_interval`).
        """
        if self._buffer.qsize() == 1 and not self._more_queued():
            self._filling_since = None
            super()._do_flush()

    def _more_queued(self) -> bool:
        from worker import resources

        try:
            return bool(resources.redis_conn().llen(CLASSIFY_QUEUE))
        except redis.RedisError:
            return False  # cannot tell: flush what we have

    def flush(self, requests: Any) -> Any:
        log.debug("classify batch of %d", len(requests))
        return super().flush(requests)
