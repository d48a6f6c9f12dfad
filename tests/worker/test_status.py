"""Counting the last hour's results from the event stream, and saying when it was trimmed."""

from __future__ import annotations

import time

import pytest
import redis

from producer.names import EVENTS_STREAM
from worker.observe import status
from worker.observe.status import count_decisions


def add(rdb: redis.Redis, at_ms: int, decided_by: str, state: str) -> None:
    rdb.xadd(EVENTS_STREAM, {"decided_by": decided_by, "status": state}, id=f"{at_ms}-*")


def test_only_the_window_counts_paged_by_decision(
    rdb: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(status, "PAGE", 2)  # several round trips over five entries
    now = int(time.time() * 1000)
    add(rdb, now - 2 * 3600_000, "classifier", "labelled")  # before the window
    for by, state in [("classifier", "labelled")] * 3 + [("frontier", "needs_review")] * 2:
        add(rdb, now - 60_000, by, state)
    found = count_decisions(rdb, since_ms=now - 3600_000)
    assert found.total == 5 and not found.truncated
    assert found.by_decision == [
        {"decided_by": "classifier", "status": "labelled", "count": 3},
        {"decided_by": "frontier", "status": "needs_review", "count": 2},
    ]


def test_a_stream_trimmed_inside_the_window_is_a_lower_bound(rdb: redis.Redis) -> None:
    now = int(time.time() * 1000)
    for _ in range(5):
        add(rdb, now - 60_000, "classifier", "labelled")
    rdb.xtrim(EVENTS_STREAM, maxlen=3, approximate=False)
    found = count_decisions(rdb, since_ms=now - 3600_000)
    assert found.total == 3 and found.truncated


def test_an_empty_stream_counts_nothing(rdb: redis.Redis) -> None:
    found = count_decisions(rdb, since_ms=0)
    assert (found.total, found.truncated, found.by_decision) == (0, False, [])
