"""Why a ticket came to the desk, read off the reasons the cascade really gives."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from models.cascade import FirstPass, Policy, escalate, review_after_retries
from models.frontier.base import FrontierAnswer
from producer.errors import BudgetExceeded, FrontierRefused, FrontierUnavailable
from producer.labelset import LabelSet
from producer.ledger.facts import why_for
from producer.schemas import Neighbour, Ticket

LABELS = LabelSet.from_dict({"labels": [{"name": "refund"}, {"name": "card_lost"}]})


class Frontier:
    """A frontier that answers `label`, or raises `error`."""

    def __init__(self, label: str = "refund", error: Exception | None = None) -> None:
        self.label, self.error = label, error

    def classify(
        self, ticket: Ticket, labels: LabelSet, examples: Sequence[Neighbour]
    ) -> FrontierAnswer:
        if self.error is not None:
            raise self.error
        return FrontierAnswer(self.label, 0.9, 10, 2, 0.001, 5.0, "frontier-model")

    def close(self) -> None:
        pass


def _reason(frontier: Frontier | None, confidence: float = 0.7) -> str | None:
    first = FirstPass(
        ticket=Ticket(id="1", subject="s"),
        label="card_lost",
        confidence=confidence,
        decided_by=None,
    )
    result = escalate(first, labels=LABELS, frontier=frontier, budget=None, policy=Policy())
    assert result.status == "needs_review"
    return result.reason


@pytest.mark.parametrize(
    ("frontier", "why"),
    [
        (None, "no_frontier"),
        (Frontier(error=BudgetExceeded("cap reached")), "budget"),
        (Frontier(error=FrontierRefused("no tool call")), "frontier_refused"),
        (Frontier(label="not_a_label"), "frontier_refused"),
        (Frontier(label="refund"), "disagreement"),
    ],
)
def test_each_reason_of_the_cascade_has_its_why(frontier: Frontier | None, why: str) -> None:
    assert why_for(_reason(frontier)) == why


def test_an_unreachable_frontier_leaves_the_ticket_unsure() -> None:
    first = FirstPass(
        ticket=Ticket(id="1", subject="s"), label="x", confidence=0.5, decided_by=None
    )
    result = review_after_retries(first, FrontierUnavailable("503"), tries=3)
    assert why_for(result.reason) == "unsure"
    assert why_for(None) == "unsure"
    assert why_for("something new") == "other"
