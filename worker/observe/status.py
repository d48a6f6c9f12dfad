"""What `triage status` reports, read from Redis: queues, live workers, the last hour's results,
today's frontier spend and the dead letters. Data only; `cli.status` prints it.

The last hour's results are counted from the event stream the write-back appends to (one entry
per result, ids are timestamps), so nothing new is written per ticket to make this possible.
The stream is trimmed at `TRIAGE_EVENTS_MAXLEN`: past that many results an hour the count is a
lower bound, and `truncated` says so.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import redis

from models.frontier.budget import SpendBudget
from producer.names import EVENTS_STREAM
from producer.queue_stats import read_queue_stats
from worker.observe.heartbeat import live_workers

#: Stream entries fetched per round trip while counting the last hour.
PAGE = 1000
WINDOW_S = 3600


@dataclass(frozen=True)
class Decisions:
    total: int
    truncated: bool  # the stream was trimmed inside the window: `total` is a lower bound
    by_decision: list[dict[str, Any]] = field(default_factory=list)  # decided_by, status, count


@dataclass(frozen=True)
class Status:
    queues: dict[str, int]
    unacked: int
    dead_letters: int
    workers: list[dict[str, Any]]
    last_hour: Decisions
    spend_today_usd: float
    budget_usd: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_status(r: redis.Redis, *, budget_usd: float, now: datetime | None = None) -> Status:
    """Everything `triage status` shows; raises `redis.RedisError` when Redis does not answer."""
    now = now or datetime.now(UTC)
    stats = read_queue_stats(r)
    workers = live_workers(r)
    for w in workers:
        beat = w.get("beat_at")
        if isinstance(beat, str):
            w["beat_age_s"] = round((now - datetime.fromisoformat(beat)).total_seconds(), 1)
    return Status(
        queues=stats.depths,
        unacked=stats.unacked,
        dead_letters=stats.dead_letters,
        workers=workers,
        last_hour=count_decisions(r, since_ms=int(now.timestamp() * 1000) - WINDOW_S * 1000),
        spend_today_usd=SpendBudget(r, budget_usd, clock=lambda: now).spent_today(),
        budget_usd=budget_usd,
    )


def count_decisions(r: redis.Redis, *, since_ms: int) -> Decisions:
    """Results in the event stream since `since_ms` (Unix milliseconds), by decision."""
    counts: Counter[tuple[str, str]] = Counter()
    start = f"{since_ms}-0"
    while True:
        page: list[tuple[Any, dict[Any, Any]]] = r.xrange(  # type: ignore[assignment]
            EVENTS_STREAM, min=start, max="+", count=PAGE
        )
        for _, fields in page:
            counts[(str(fields.get("decided_by", "?")), str(fields.get("status", "?")))] += 1
        if len(page) < PAGE:
            break
        start = "(" + str(page[-1][0])  # exclusive: after the last entry read
    return Decisions(
        total=sum(counts.values()),
        truncated=_trimmed_since(r, since_ms),
        by_decision=[
            {"decided_by": by, "status": status, "count": n}
            for (by, status), n in sorted(counts.items())
        ],
    )


def _trimmed_since(r: redis.Redis, since_ms: int) -> bool:
    """Whether entries newer than `since_ms` may have been trimmed off the stream."""
    oldest = r.xrange(EVENTS_STREAM, min="-", max="+", count=1)
    if not oldest:
        return False
    oldest_ms = int(str(oldest[0][0]).partition("-")[0])
    if oldest_ms <= since_ms:
        return False  # the stream reaches back past the window: nothing in it was lost
    try:
        info = r.xinfo_stream(EVENTS_STREAM)
    except redis.ResponseError:
        return False
    # Redis 7 counts every entry ever added; more than the length means some were trimmed.
    added = int(info.get("entries-added", info["length"]))
    return added > int(info["length"])
