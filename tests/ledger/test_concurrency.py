"""Several processes' worth of ledgers at once: claims and redelivered batches settle in the
database. Each thread has its own `Ledger` (its own engine and connections), as processes do."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from producer.ledger import Ledger
from tests.ledger.build import at, ticket, unsure

T = TypeVar("T")
ROUNDS = 15


def _race(database_url: str, *calls: Callable[[Ledger], T]) -> list[T]:
    """Run each call in a thread of its own, all released at one instant."""
    ledgers = [Ledger.open(database_url) for _ in calls]
    start = threading.Barrier(len(calls))

    def run(i: int) -> T:
        start.wait(timeout=10)
        return calls[i](ledgers[i])

    try:
        with ThreadPoolExecutor(len(calls)) as pool:
            return list(pool.map(run, range(len(calls))))
    finally:
        for ledger in ledgers:
            ledger.close()


def test_of_two_reviewers_claiming_at_once_exactly_one_wins(
    ledger: Ledger, database_url: str
) -> None:
    tickets = [ticket(str(i)) for i in range(ROUNDS)]
    ledger.record([(t, unsure(t, "refund")) for t in tickets])
    for entry in ledger.queue("category", limit=ROUNDS):
        item = entry.item.id
        won = _race(database_url, _claim(item, "ann"), _claim(item, "bob"))
        assert sorted(won) == [False, True]
        view = ledger.item(item)
        assert view is not None
        assert view.item.claimed_by == ("ann" if won[0] else "bob")


def _claim(item: int, reviewer: str) -> Callable[[Ledger], bool]:
    return lambda ledger: ledger.claim(item, reviewer, ttl_s=60, now=at(1))


def test_a_batch_redelivered_to_two_workers_at_once_is_recorded_once(
    ledger: Ledger, database_url: str
) -> None:
    tickets = [ticket(str(i)) for i in range(20)]
    batch = [(t, unsure(t, "refund")) for t in tickets]
    # Overlapping batches in opposite orders: rows are written in key order, so no deadlock.
    _race(
        database_url,
        lambda lg: lg.record(batch),
        lambda lg: lg.record(list(reversed(batch))),
        lambda lg: lg.record(batch[5:15]),
    )
    assert ledger.counts("category").open == 20
