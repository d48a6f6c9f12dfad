"""Recording the write-back path's batches: once each, tickets as last seen, people's labels
resolving the desk, and why each ticket came to review."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from producer.ledger import Ledger
from producer.ledger.tables import DecisionRow, HumanLabelRow, ReviewItemRow, TicketRow
from producer.schemas import GitHubIssue
from tests.ledger.build import at, decided, human, ticket, unsure


def rows(ledger: Ledger, table: Any) -> int:
    with ledger.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def test_the_same_decision_twice_is_recorded_once(ledger: Ledger) -> None:
    t = ticket("1")
    batch = [(t, unsure(t, "card_lost")), (ticket("2"), decided(ticket("2"), "refund"))]
    ledger.record(batch)
    ledger.record(batch)  # a redelivered batch
    ledger.record([batch[0], batch[0]])  # the same pair twice in one batch
    assert [rows(ledger, r) for r in (TicketRow, DecisionRow, ReviewItemRow)] == [2, 2, 1]


def test_another_revision_is_another_decision(ledger: Ledger) -> None:
    t = ticket("1", revision="r1")
    ledger.record([(t, decided(t, "refund"))])
    t2 = ticket("1", revision="r2")
    ledger.record([(t2, decided(t2, "refund", minutes=5))])
    assert rows(ledger, DecisionRow) == 2


def test_the_ticket_is_kept_as_last_seen_and_keeps_its_verified_origin(ledger: Ledger) -> None:
    origin = GitHubIssue(repo="acme/app", number=7)
    first = ticket("7", source="github", subject="old", origin=origin)
    newer = ticket("7", source="github", subject="new", revision="2")
    ledger.record([(first, unsure(first, "refund", minutes=1))])
    ledger.record([(newer, unsure(newer, "refund", minutes=9, reason=None))])
    ledger.record([(first, unsure(first, "refund", minutes=1))])  # a late redelivery
    view = ledger.item(ledger.queue("category")[0].item.id)
    assert view is not None and view.ticket is not None
    assert view.ticket.subject == "new"
    assert view.ticket.origin == {"system": "github", "repo": "acme/app", "number": 7}
    assert (view.ticket.first_seen_at, view.ticket.last_seen_at) == (at(1), at(9))


def test_a_persons_label_resolves_the_tickets_waiting_items_of_that_task(ledger: Ledger) -> None:
    t, other = ticket("1"), ticket("2")
    t_priority = ticket("1", task="priority")
    ledger.record(
        [
            (t, unsure(t, "card_lost", minutes=1)),
            (other, unsure(other, "card_lost", minutes=1)),
            (t_priority, unsure(t_priority, "high", minutes=1)),
        ]
    )
    item = ledger.queue("category")[0].item
    assert ledger.claim(item.id, "bob", now=at(2))
    ledger.record([human(t, "refund", minutes=3, by="octocat", via="github", note="was a refund")])

    view = ledger.item(item.id)
    assert view is not None
    assert (view.item.state, view.item.resolved_by, view.item.answer_label) == (
        "resolved",
        "octocat",
        "refund",
    )
    assert view.item.resolved_at == at(3)
    assert view.item.note == "was a refund"
    (label,) = view.human_labels
    assert (label.label, label.labelled_by, label.via, label.model_label) == (
        "refund",
        "octocat",
        "github",
        "card_lost",
    )
    # Another ticket, and the same ticket's other task, still wait.
    assert [e.item.ticket_id for e in ledger.queue("category")] == ["2"]
    assert [e.item.ticket_id for e in ledger.queue("priority")] == ["1"]


def test_a_persons_label_is_recorded_once_and_the_desk_is_spelled_desk(ledger: Ledger) -> None:
    t = ticket("1")
    pair = human(t, "refund", via="review")
    ledger.record([pair])
    ledger.record([pair])
    view_labels = _labels(ledger)
    assert [(h.via, h.note, h.model_label) for h in view_labels] == [("desk", None, None)]
    assert rows(ledger, DecisionRow) == 1  # a person's label is a decision too


def test_nothing_goes_to_the_desk_once_a_person_labelled_the_ticket(ledger: Ledger) -> None:
    t = ticket("1")
    ledger.record([human(t, "refund", minutes=1)])
    t2 = ticket("1", revision="2")
    ledger.record([(t2, unsure(t2, "card_lost", minutes=5))])
    assert ledger.open_audit(t2, decided(t2, "card_lost", minutes=5, revision="3")) is False
    assert rows(ledger, ReviewItemRow) == 0


def test_a_batch_puts_its_unsure_tickets_on_the_desk_as_one_at_a_time_would(
    ledger: Ledger,
) -> None:
    """Unsure tickets are opened together, but never past a person's label in the batch."""
    earlier = ticket("0")
    ledger.record([human(earlier, "refund", minutes=1)])
    again = ticket("0", revision="2")
    before = ticket("1", revision="a1")  # sorts before a person's "human-..." revision
    after = ticket("3", revision="z1")  # and this one after it
    other_task = ticket("3", task="priority")
    t1, t2, t3 = ticket("1"), ticket("2"), ticket("3")
    ledger.record(
        [
            (after, unsure(after, "card_lost", minutes=4)),  # after the label of ticket 3: none
            human(t3, "refund", minutes=3),
            (other_task, unsure(other_task, "high", minutes=2)),  # another task: on the desk
            (t2, unsure(t2, "card_lost", minutes=2)),  # on the desk
            human(t1, "refund", minutes=3),  # resolves the item of ticket 1 opened before it
            (before, unsure(before, "card_lost", minutes=2)),
            (again, unsure(again, "card_lost", minutes=2)),  # labelled by a person earlier
        ]
    )
    assert [e.item.ticket_id for e in ledger.queue("category")] == ["2"]
    assert [e.item.ticket_id for e in ledger.queue("priority")] == ["3"]
    assert ledger.counts("category").resolved == 1
    assert rows(ledger, ReviewItemRow) == 3


def test_an_audit_opens_once_and_the_label_is_recorded(ledger: Ledger) -> None:
    t = ticket("1")
    result = decided(t, "refund")
    assert ledger.open_audit(t, result) is True
    assert ledger.open_audit(t, result) is False
    ledger.record([(t, result)])
    (entry,) = ledger.queue("category")
    assert (entry.item.kind, entry.item.why, entry.label) == ("audit", "audit", "refund")
    with pytest.raises(ValueError, match="auto label"):
        ledger.open_audit(t, unsure(t, "refund"))


def test_a_result_paired_with_another_ticket_is_refused(ledger: Ledger) -> None:
    with pytest.raises(ValueError, match="paired with ticket"):
        ledger.record([(ticket("1"), decided(ticket("2"), "refund"))])
    assert rows(ledger, DecisionRow) == 0


def test_the_decision_keeps_versions_evidence_stages_and_suggestions(ledger: Ledger) -> None:
    t = ticket("1")
    result = unsure(t, "card_lost", reason="frontier budget exceeded: spent")
    ledger.record([(t, result)])
    view = ledger.item(ledger.queue("category")[0].item.id)
    assert view is not None and view.decision is not None
    d = view.decision
    assert (d.label, d.status, d.adapter_version, d.versions) == (
        "card_lost",
        "needs_review",
        "v1",
        {"adapter": "v1"},
    )
    assert view.neighbour_ids == [("api", "n1")]
    assert [s["stage"] for s in d.stages] == ["classifier", "cascade"]
    assert [(s.label, s.confidence) for s in d.suggestions] == [("card_lost", 0.4)]
    assert view.item.why == "budget"


def _labels(ledger: Ledger) -> list[Any]:
    from producer.ledger.rows import human_label

    with ledger.engine.connect() as conn:
        return [human_label(r) for r in conn.execute(select(HumanLabelRow.__table__))]
