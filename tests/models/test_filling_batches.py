"""FillingBatches: a lone ticket goes at once; under a backlog a batch fills for up to max_wait_s;
in a threads pool the next batch is ready while one runs, and no more.

The timer ticks are driven by hand with a fake clock; the flushed batches are recorded.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from worker.batches import filling as batching


class Recorder(batching.FillingBatches):
    abstract = True
    flush_every = 4
    max_wait_s = 0.5

    def __init__(self, *, finishes_at_once: bool = True) -> None:
        super().__init__()
        self.batches: list[int] = []
        self.flushed: list[Any] = []
        self.queued = False  # tickets still waiting in Redis
        self.finishes_at_once = finishes_at_once  # a solo pool; else a threads pool

    def _more_queued(self) -> bool:
        return self.queued

    def flush(self, requests: Any) -> None:
        self.batches.append(len(requests))
        self.flushed.extend(requests)
        if self.finishes_at_once:
            self._batch_done()

    def arrive(self, n: int, eta: datetime | None = None) -> None:
        for _ in range(n):
            self._buffer.put(SimpleNamespace(eta=eta, utc=True))


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [100.0]
    monkeypatch.setattr(batching, "monotonic", lambda: now[0])
    return now


def test_a_lone_ticket_is_flushed_at_the_first_tick(clock: list[float]) -> None:
    batches = Recorder()
    batches.arrive(1)
    batches._do_flush()
    assert batches.batches == [1]
    batches._do_flush()  # nothing waiting: nothing flushed
    assert batches.batches == [1]


def test_under_a_backlog_a_batch_fills_until_full_or_max_wait(clock: list[float]) -> None:
    batches = Recorder()
    batches.queued = True
    batches.arrive(2)
    batches._do_flush()
    clock[0] += 0.4
    batches._do_flush()
    assert batches.batches == []  # still filling: more are queued
    batches.arrive(2)
    batches._do_flush()  # full (flush_every)
    assert batches.batches == [4]
    batches.arrive(1)
    batches._do_flush()
    clock[0] += 0.6
    batches._do_flush()  # waited max_wait_s: go with what there is
    assert batches.batches == [4, 1]


def test_the_wait_counts_from_the_batch_not_from_the_last_flush(clock: list[float]) -> None:
    # In a solo pool nothing arrives during a forward pass; a wait counted from the previous
    # flush had always run out, so every batch after a long pass was a few tickets.
    batches = Recorder()
    batches.queued = True
    batches.arrive(4)
    batches._do_flush()
    clock[0] += 3.0  # the forward pass
    batches.arrive(1)
    batches._do_flush()
    assert batches.batches == [4]  # the new batch waits for company
    batches.arrive(3)
    batches._do_flush()
    assert batches.batches == [4, 4]


def test_a_ticket_arriving_to_an_idle_worker_does_not_wait_for_the_tick(
    clock: list[float],
) -> None:
    batches = Recorder()
    batches.arrive(1)
    batches._arrived()
    assert batches.batches == [1]
    batches.queued = True  # others are right behind it: let the batch fill
    batches.arrive(1)
    batches._arrived()
    assert batches.batches == [1]
    batches.queued = False
    batches.arrive(1)
    batches._arrived()  # the second of a batch: the tick decides
    assert batches.batches == [1]
    batches._do_flush()
    assert batches.batches == [1, 2]


def test_in_a_threads_pool_the_next_full_batch_waits_ready_and_no_more(
    clock: list[float],
) -> None:
    batches = Recorder(finishes_at_once=False)
    batches.queued = True
    batches.arrive(4)
    batches._do_flush()
    assert batches.batches == [4] and batches.in_flight() == 1
    batches.arrive(2)
    clock[0] += 1.0  # past max_wait_s, but a pass is running: the partial batch keeps filling
    batches._do_flush()
    batches.queued = False
    batches._arrived()
    assert batches.batches == [4]
    batches.arrive(8)  # ten buffered: a full batch goes next (ready behind the running one)
    batches._do_flush()
    assert batches.batches == [4, 4] and batches.in_flight() == 2
    batches._do_flush()  # a third would only wait, holding its tickets from the partial batch
    assert batches.batches == [4, 4]
    batches._batch_done()
    batches._do_flush()
    assert batches.batches == [4, 4, 4] and batches.in_flight() == 2
    batches._batch_done()
    batches._batch_done()
    batches._do_flush()  # idle, the queue empty: what is left goes now
    assert batches.batches == [4, 4, 4, 2] and batches._buffer.qsize() == 0


def test_a_retry_waits_for_its_eta(clock: list[float]) -> None:
    # kombu turns an ETA into a time on the monotonic clock: start the fake one at the real one.
    clock[0] = time.monotonic()
    batches = Recorder()
    batches.arrive(1, eta=datetime.now(UTC) + timedelta(seconds=5))
    batches.arrive(1)
    batches._do_flush()
    assert batches.batches == [1]  # the ticket without a countdown
    clock[0] += 4.0
    batches._do_flush()
    assert batches.batches == [1]
    clock[0] += 2.0
    batches._do_flush()
    assert batches.batches == [1, 1] and batches.flushed[1].eta is not None
