"""The stats page's figures: the ledger's `stats` over the window and day by day (for the
precision plot), the ages of the waiting items, and the precision each task's adapter was tuned
for (``<adapter>/policy.json``, written by `triage tune`), against which measured precision is
judged."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from producer.http.settings import HttpSettings
from producer.ledger.settings import get_settings as ledger_settings

if TYPE_CHECKING:
    from producer.ledger import Ledger
    from producer.ledger.records import Interval, Stats, VersionStats

#: Items in the queue-age plot at most (the oldest are the ones that matter).
AGES_LIMIT = 1000


@dataclass(frozen=True)
class Target:
    """The precision an adapter was tuned for; `precision` None when it is not known (`why`)."""

    precision: float | None
    why: str


@dataclass(frozen=True)
class Verdict:
    """How a version's measured precision compares with its target: ``below`` (the whole 95%
    interval under it), ``under`` (the estimate under it, the interval not), ``ok``, or
    ``unknown`` (no audits, or no target)."""

    level: str
    text: str


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
    """The target precision in the task's ``<adapter>/policy.json`` (``tuning.target``)."""
    adapter = settings.adapters.get(task, ledger_settings().data_dir / "adapters" / task)
    path = Path(adapter) / "policy.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Target(None, f"unknown: no tuned policy at {path} (run `triage tune`)")
    except (OSError, ValueError) as exc:
        return Target(None, f"unknown: {path} could not be read ({exc})")
    target = (data.get("tuning") or {}).get("target") or {}
    precision = target.get("precision") if isinstance(target, dict) else None
    if not isinstance(precision, int | float) or not 0 < precision < 1:
        return Target(None, f"unknown: {path} was tuned for no precision target")
    return Target(float(precision), f"tuned for {precision:.1%} ({path})")


def verdict(version: VersionStats, target: Target) -> Verdict:
    """Whether `version`'s audited precision is under the precision it was tuned for."""
    p = version.precision
    if p is None:
        return Verdict("unknown", "no audits in this window: precision not measured")
    if target.precision is None:
        return Verdict("unknown", "target precision unknown: nothing to compare with")
    t = target.precision
    if p.high < t:
        return Verdict(
            "below",
            f"precision {p.value:.1%} (95% interval {p.low:.1%}–{p.high:.1%}) is below the "
            f"{t:.1%} this adapter was tuned for, beyond doubt at 95%",
        )
    if p.value < t:
        return Verdict(
            "under",
            f"precision {p.value:.1%} is under the tuned {t:.1%}; the interval "
            f"({p.low:.1%}–{p.high:.1%}) still reaches it: more audits will tell",
        )
    return Verdict("ok", f"precision {p.value:.1%} meets the tuned {t:.1%}")
