"""Batches that fill under load, flush a lone ticket at once, and overlap with the pass running.

celery-batches flushes on a timer. With a short timer (a lone ticket must not wait), a busy worker
flushes batches of two or three: the event loop pulls one message per turn while the timer keeps
firing, and each flush costs a whole forward pass. So at each tick we look at the queue: when
more tickets are already waiting in Redis, we let the batch fill (up to `flush_every`, or until
its first ticket has waited `max_wait_s`); when the queue is empty, we flush now, and a ticket
that arrives to an empty buffer and an empty queue does not even wait for the tick.

In a threads pool a batch runs beside the event loop, which keeps taking messages meanwhile; the
model passes themselves take turns (`worker.batches.first_pass`). So a full batch is flushed while
another runs, to start the moment that one ends, but no more than `max_in_flight` at a time (the
rest wait in the buffer, where a partial batch keeps filling until the running pass is done). In a
solo pool a flush runs to its end inside the event loop, so none is ever in flight at a tick.

The wait counts from the first tick that sees the batch, not from the last flush: in a solo pool
no ticket arrives during a forward pass, and a wait counted from its start had always run out by
the next tick (batches of a few tickets under a backlog).

As in celery-batches, a request with an ETA (a retry's countdown) waits until a tick finds it due;
one whose ETA cannot be read runs at once (celery-batches dropped it).
"""

from __future__ import annotations

import logging
import threading
from itertools import count
from queue import Empty
from time import monotonic
from typing import Any

import redis
from celery.utils.time import timezone
from celery_batches import Batches
from kombu.asynchronous.timer import to_timestamp

from producer.names import CLASSIFY_QUEUE

log = logging.getLogger(__name__)


class FillingBatches(Batches):  # type: ignore[misc]
    """Subclasses' `flush` must call `_batch_done` once the pool has finished the batch."""

    abstract = True
    #: Longest a ticket waits for its batch to fill while more keep arriving.
    max_wait_s = 0.5
    #: Batches flushed and not yet finished: one in its model pass, one ready to go next (a
    #: prefork worker runs a pass per child: `worker.runner` raises it there).
    max_in_flight = 2

    def __init__(self) -> None:
        super().__init__()
        self._filling_since: float | None = None
        self._in_flight = 0
        self._in_flight_lock = threading.Lock()  # pool threads finish batches

    def _do_flush(self) -> None:
        waiting = self._buffer.qsize()
        in_flight = self.in_flight()
        now = monotonic()
        if waiting and self._filling_since is None:
            self._filling_since = now
        if in_flight >= self.max_in_flight or (in_flight and waiting < self.flush_every):
            return  # it flushes when a pass ends (the next tick), or fills meanwhile
        if (
            0 < waiting < self.flush_every
            and now - (self._filling_since or now) < self.max_wait_s
            and self._more_queued()
        ):
            return
        self._filling_since = None
        self._flush_ready()

    def _flush_ready(self) -> None:
        """Flush up to `flush_every` requests that are due; keep the rest for the next flush."""
        due: list[Any] = []
        later: list[Any] = []
        now = monotonic()  # kombu's to_timestamp gives an ETA on the monotonic clock
        while len(due) < self.flush_every:
            try:
                req = self._pending.get_nowait()
            except Empty:
                try:
                    req = self._buffer.get_nowait()
                except Empty:
                    break
            eta = _eta_timestamp(req, self.app)
            (later if eta is not None and eta > now else due).append(req)
        for req in later:
            self._pending.put(req)
        left = self._buffer.qsize() + self._pending.qsize()
        self._count = count(left + 1)  # celery-batches flushes at every flush_every-th arrival
        if due:
            with self._in_flight_lock:
                self._in_flight += 1
            try:
                self.flush(due)
            except BaseException:
                self._batch_done()
                raise
        timer: Any = getattr(self, "_tref", None)
        if not left and timer is not None:
            timer.cancel()  # nothing buffered: the next arrival starts the timer again
            self._tref = None

    def in_flight(self) -> int:
        with self._in_flight_lock:
            return self._in_flight

    def _batch_done(self) -> None:
        with self._in_flight_lock:
            self._in_flight = max(0, self._in_flight - 1)

    def Strategy(self, task: Any, app: Any, consumer: Any) -> Any:
        handle = super().Strategy(task, app, consumer)
        # Called again when the consumer restarts after a lost broker connection, which clears
        # its timer, and with it the flush tick celery-batches starts only once: a partial batch
        # then waited for 64 more arrivals (70 s in the Redis-restart fault test). Start it
        # again, at once if tickets are waiting (cancelling the old one, should it still run).
        if self._tref is not None:
            self._tref.cancel()
        self._tref = None
        if self._buffer.qsize():
            self._tref = consumer.timer.call_repeatedly(self.flush_interval, self._do_flush)

        def on_message(*args: Any, **kwargs: Any) -> None:
            handle(*args, **kwargs)
            self._arrived()

        return on_message

    def _arrived(self) -> None:
        """A ticket was buffered: the first of a batch, with none behind it, goes now.

        Without this a lone ticket waits for the next timer tick (up to `flush_interval`).
        """
        if self._buffer.qsize() == 1 and not self.in_flight() and not self._more_queued():
            self._filling_since = None
            self._flush_ready()

    def _more_queued(self) -> bool:
        from worker import resources

        try:
            return bool(resources.redis_conn().llen(CLASSIFY_QUEUE))
        except redis.RedisError:
            return False  # cannot tell: flush what we have


def _eta_timestamp(req: Any, app: Any) -> float | None:
    """A request's ETA on the monotonic clock; None when it has none or it is unreadable."""
    eta = getattr(req, "eta", None)
    if not eta:
        return None
    try:
        if getattr(req, "utc", True):
            return float(to_timestamp(timezone.to_system(eta)))
        return float(to_timestamp(eta, app.timezone))
    except (OverflowError, ValueError, TypeError):
        log.error("unreadable ETA %r of request %s: running it now", eta, getattr(req, "id", "?"))
        return None
