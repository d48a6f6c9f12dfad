"""A ledger with a recent history, as the write-back and the desk leave it: auto labels of two
adapter versions, audits answered on the desk, corrections through other channels, a queue."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from producer.feedback import HumanLabel
from producer.ledger import Ledger
from producer.schemas import StageTrace, Status, Ticket, TriageResult


@dataclass(frozen=True)
class Seeded:
    """What `seed` wrote, to check the figures against."""

    decisions: int
    auto: int
    audited: int
    audit_correct: int
    waiting: int


def ago(minutes: float) -> datetime:
    return datetime.now(UTC) - timedelta(minutes=minutes)


def model(
    t: Ticket, label: str, *, adapter: str, minutes_ago: float, status: Status = "labelled"
) -> TriageResult:
    """A model's result for `t`, as the cascade gives it."""
    confidence = 0.97 if status == "labelled" else 0.4
    step = StageTrace(stage="cascade", label=label, confidence=confidence, latency_ms=0.0)
    return TriageResult(
        ticket_id=t.id,
        source=t.source,
        task=t.task,
        revision=t.effective_revision,
        label=label,
        confidence=confidence,
        decided_by="classifier",
        status=status,
        trace=[step],
        versions={"adapter": adapter},
        decided_at=ago(minutes_ago),
    )


def person(
    ledger: Ledger, t: Ticket, label: str, *, via: str = "review", minutes_ago: float = 1
) -> None:
    """A person's label for `t`, recorded as the write-back records it."""
    ledger.record(
        [HumanLabel(ticket=t, label=label, by="ann", via=via, at=ago(minutes_ago)).as_writeback()]
    )


def audit(ledger: Ledger, t: Ticket, result: TriageResult, answer: str) -> None:
    """Put `result` on the desk as an audit and answer it there with `answer`."""
    assert ledger.open_audit(t, result)
    entry = next(e for e in ledger.queue(t.task, limit=1000) if e.item.ticket_id == t.id)
    assert ledger.claim(entry.item.id, "ann")
    assert ledger.resolve(entry.item.id, "ann", answer)
    person(ledger, t, answer)


def seed(ledger: Ledger, *, adapter: str, audits: int, wrong: int, source: str = "web") -> Seeded:
    """`audits` audited auto labels of `adapter` (`wrong` of them corrected by the reviewer),
    as many again not audited, two of them corrected in GitHub, and three tickets waiting, all
    from `source`."""
    auto = [Ticket(id=f"a{i}", source=source, body=f"ticket {i}") for i in range(2 * audits)]
    results = [
        model(t, "card_arrival", adapter=adapter, minutes_ago=60 + i) for i, t in enumerate(auto)
    ]
    ledger.record(list(zip(auto, results, strict=True)))
    for i, (t, r) in enumerate(zip(auto[:audits], results, strict=False)):
        audit(ledger, t, r, "refund" if i < wrong else "card_arrival")
    for t in auto[audits : audits + 2]:
        person(ledger, t, "pin_blocked", via="github")
    unsure = [Ticket(id=f"u{i}", source=source, body=f"unsure {i}") for i in range(3)]
    ledger.record(
        [
            (t, model(t, "refund", adapter=adapter, minutes_ago=30, status="needs_review"))
            for t in unsure
        ]
    )
    return Seeded(
        decisions=len(auto) + len(unsure),
        auto=len(auto),
        audited=audits,
        audit_correct=audits - wrong,
        waiting=len(unsure),
    )
