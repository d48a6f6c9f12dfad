"""The demo's last words: how many tickets wait on the review desk, and how to open it."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass

from rich.console import Console

from producer.schemas import TriageResult


@dataclass(frozen=True)
class DeskCounts:
    """Items waiting on the desk: all of them, and this run's (reviews and audits)."""

    waiting: int
    reviews: int
    audits: int

    def figures(self) -> dict[str, int]:
        return {"waiting": self.waiting, "reviews": self.reviews, "audits": self.audits}


def desk_counts(
    task: str, results: Sequence[TriageResult], revision: str, timeout_s: float = 15.0
) -> DeskCounts:
    """Count the desk once the ledger holds this run's items: every `needs_review` result, and
    the audits the write-back sampled (the result store answers a moment before the ledger's
    step has run). After `timeout_s`, what is there."""
    from producer.ledger import Ledger
    from worker.settings import get_settings
    from worker.writeback.targets.ledger import is_auto, sampled

    rate = get_settings().audit_rate
    expected = (
        sum(r.status == "needs_review" for r in results),
        sum(is_auto(r) and sampled(r, rate) for r in results),
    )
    deadline = time.monotonic() + timeout_s
    with Ledger.open() as ledger:
        while True:
            waiting = ledger.counts(task).waiting
            mine = [e.item for e in ledger.queue(task, limit=max(waiting, 1))]
            found = tuple(
                sum(i.revision == revision and i.kind == kind for i in mine)
                for kind in ("review", "audit")
            )
            caught_up = all(f >= e for f, e in zip(found, expected, strict=True))
            if caught_up or time.monotonic() > deadline:
                return DeskCounts(waiting, *found)
            time.sleep(0.2)


def print_desk(counts: DeskCounts, console: Console, *, embedded_redis: bool) -> None:
    """Where the desk is, how to start it with a review token, and what waits there."""
    host = os.environ.get("TRIAGE_HTTP_HOST", "127.0.0.1")
    port = os.environ.get("TRIAGE_HTTP_PORT", "8000")
    audits = "1 audit" if counts.audits == 1 else f"{counts.audits} audits"
    console.print(
        f"\n[bold]Review desk[/bold]: {counts.waiting} tickets wait there; from this run, "
        f"{counts.reviews} the cascade left to a person and {audits} of its automatic labels."
    )
    redis_line = (
        "  export TRIAGE_REDIS_URL=redis://127.0.0.1:6379/0   "
        "# any Redis: the demo's embedded one has stopped\n"
        if embedded_redis
        else ""
    )
    console.print(
        "Start it with a token that has the review scope, and a worker to deliver the answers:\n"
        f"{redis_line}"
        '  export TRIAGE_API_TOKENS=\'[{"token": "<a long secret>", "name": "you", '
        '"review": ["*"]}]\'\n'
        "  TRIAGE_WEBHOOK_SOURCES='[]' triage serve &\n"
        "  triage worker -Q writeback\n"
        f"then open http://{host}:{port}/review and sign in with that token.",
        markup=False,
        highlight=False,
        soft_wrap=True,  # commands to copy: never broken across lines
    )
