"""The stats page's figures: the ledger's `stats` over the window and day by day (for the
precision plot), the ages of the waiting items, and the precision each task's adapter was tuned
for (``<adapter>/policy.json``, written by `triage tune`), against which measured precision is
judged."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from producer.http.settings import HttpSettings
from producer.ledger.quality import Target
from producer.ledger.quality import target_for as shared_target_for
from producer.ledger.settings import get_settings as ledger_settings

if TYPE_CHECKING:
    from producer.ledger import Ledger
    from producer.ledger.records import Interval, Stats

#: Items in the queue-age plot at most (the oldest are the ones that matter).
AGES_LIMIT = 1000


@dataclass(frozen=True)
class Quality:
    stats: Stats
    #: Per day of the window, per adapter version: that day's audited precision (None: no audit).
    daily: list[tuple[date, dict[str | None, Interval | None]]]
    #: Seconds each waiting item has waited, oldest first.
    ages_s: list[float]


def read(ledger: Ledger, task: str, days: int, now: datetime | None = None) -> Quality:
    """The task's figures over the last `days` days (to now), day by day for the plots."""
    now = now or datetime.now(UTC)
    since = now - timedelta(days=days)
    stats = ledger.stats(task, since=since, until=now, now=now)
    first = datetime(since.year, since.month, since.day, tzinfo=UTC)
    daily = []
    for n in range(days + 1):
        start = first + timedelta(days=n)
        if start >= now:
            break
        day = ledger.stats(task, since=start, until=min(start + timedelta(days=1), now), now=now)
        daily.append((start.date(), {v.adapter_version: v.precision for v in day.versions}))
    waiting = ledger.queue(task, limit=AGES_LIMIT, now=now)
    ages = [(now - e.item.created_at).total_seconds() for e in waiting]
    return Quality(stats, daily, ages)


def target_for(settings: HttpSettings, task: str) -> Target:
    """The target precision in the task's ``<adapter>/policy.json``."""
    adapter = settings.adapters.get(task, ledger_settings().data_dir / "adapters" / task)
    return shared_target_for(Path(adapter))
