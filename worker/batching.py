"""Batches that fill under load and still flush a lone ticket at once.

celery-batches flushes on a timer. With a short timer (a lone ticket must not wait), a busy worker
flushes batches of two or three: the event loop pulls one message per turn while the timer keeps
firing, and each flush costs a whole forward pass. So at each tick we look at the queue: when
more tickets are already waiting in Redis, we let the batch fill (up to `flush_every`, or until
`max_wait_s` passed since the last flush); when the queue is empty, we flush now.
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
        self._last_flush = monotonic()

    def _do_flush(self) -> None:
        waiting = self._buffer.qsize()
        if (
            0 < waiting < self.flush_every
            and monotonic() - self._last_flush < self.max_wait_s
            and self._more_queued()
        ):
            return
        self._last_flush = monotonic()
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
