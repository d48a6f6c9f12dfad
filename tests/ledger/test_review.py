"""The desk: the queue oldest first, claims that expire, and only the claimant answering."""

from __future__ import annotations

from producer.ledger import Counts, Ledger
from tests.ledger.build import at, decided, ticket, unsure


def _desk(ledger: Ledger, n: int = 3) -> list[int]:
    """`n` tickets waiting, ticket i decided at minute i (so the oldest is "0")."""
    tickets = [ticket(str(i), source="web" if i % 2 else "api") for i in range(n)]
    ledger.record([(t, unsure(t, f"label{i % 2}", minutes=i)) for i, t in enumerate(tickets)])
    return [e.item.id for e in ledger.queue("category", now=at(0))]


def test_the_queue_is_oldest_first_and_filters_by_source_and_label(ledger: Ledger) -> None:
    ids = _desk(ledger, 4)
    entries = ledger.queue("category", now=at(10))
    assert [e.item.ticket_id for e in entries] == ["0", "1", "2", "3"]
    assert [e.item.id for e in entries] == ids
    assert (entries[0].subject, entries[0].label, entries[0].confidence) == (
        "subject 0",
        "label0",
        0.4,
    )
    assert [e.item.ticket_id for e in ledger.queue("category", source="web")] == ["1", "3"]
    assert [e.item.ticket_id for e in ledger.queue("category", label="label0")] == ["0", "2"]
    assert [e.item.ticket_id for e in ledger.queue("category", limit=1)] == ["0"]
    assert ledger.queue("priority") == []


def test_two_reviewers_claim_one_item_and_only_one_gets_it(ledger: Ledger) -> None:
    first, second, _ = _desk(ledger)
    assert ledger.claim(first, "ann", ttl_s=60, now=at(10)) is True
    assert ledger.claim(first, "bob", ttl_s=60, now=at(10.5)) is False
    # Bob no longer sees it; Ann still does (her own claim), first.
    assert [e.item.id for e in ledger.queue("category", reviewer="bob", now=at(10.5))] == [
        second,
        _,
    ]
    assert ledger.queue("category", reviewer="ann", now=at(10.5))[0].item.id == first
    assert ledger.counts("category", now=at(10.5)) == Counts(
        open=2, claimed=1, resolved=0, skipped=0
    )


def test_an_expired_claim_can_be_taken_and_then_only_the_new_claimant_answers(
    ledger: Ledger,
) -> None:
    item, *_ = _desk(ledger)
    assert ledger.claim(item, "ann", ttl_s=60, now=at(10))
    assert ledger.counts("category", now=at(12)).open == 3  # expired: open again
    assert ledger.queue("category", reviewer="bob", now=at(12))[0].item.id == item
    assert ledger.claim(item, "bob", ttl_s=60, now=at(12)) is True
    assert ledger.resolve(item, "ann", "label1", now=at(12.5)) is False
    assert ledger.skip(item, "ann", now=at(12.5)) is False
    assert ledger.resolve(item, "bob", "label1", "clear case", now=at(12.5)) is True
    view = ledger.item(item)
    assert view is not None
    assert (view.item.state, view.item.resolved_by, view.item.answer_label, view.item.note) == (
        "resolved",
        "bob",
        "label1",
        "clear case",
    )
    assert view.item.resolved_at == at(12.5)
    assert ledger.claim(item, "carol", now=at(100)) is False  # answered: nobody claims it


def test_an_unclaimed_item_cannot_be_answered(ledger: Ledger) -> None:
    item, *_ = _desk(ledger)
    assert ledger.resolve(item, "ann", "label0") is False
    assert ledger.item(item) is not None
    assert ledger.counts("category").open == 3


def test_a_claimant_extends_releases_and_skips(ledger: Ledger) -> None:
    first, second, _ = _desk(ledger)
    assert ledger.claim(first, "ann", ttl_s=60, now=at(10))
    assert ledger.claim(first, "ann", ttl_s=60, now=at(10.9))  # extends her claim
    view = ledger.item(first)
    assert view is not None and view.item.claim_expires_at == at(11.9)
    assert ledger.release(first, "bob") is False
    assert ledger.release(first, "ann") is True
    assert ledger.claim(first, "bob", now=at(11)) is True
    assert ledger.claim(second, "ann", now=at(11))
    assert ledger.skip(second, "ann", note="not ours", now=at(11)) is True
    assert ledger.counts("category", now=at(11)) == Counts(open=1, claimed=1, resolved=0, skipped=1)
    assert second not in [e.item.id for e in ledger.queue("category", now=at(11))]


def test_an_item_shows_its_ticket_decision_and_neighbours(ledger: Ledger) -> None:
    t = ticket("9", subject="<script>alert(1)</script>")
    ledger.record([(t, decided(t, "refund", minutes=0))])
    assert ledger.open_audit(t, decided(t, "refund", minutes=0))
    (entry,) = ledger.queue("category")
    view = ledger.item(entry.item.id)
    assert view is not None and view.ticket is not None and view.decision is not None
    assert view.ticket.text == "<script>alert(1)</script>\nbody 9"  # stored as given
    assert view.decision.label == "refund"
    assert view.neighbour_ids == [("api", "n1")]
    assert ledger.item(entry.item.id + 1000) is None
