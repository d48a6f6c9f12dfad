"""Decisions the write-back applied nowhere: recorded with their verdict, and nothing more."""

from __future__ import annotations

from producer.ledger import Ledger
from tests.ledger.build import at, decided, human, ticket, unsure


def test_a_superseded_decision_is_on_record_but_not_on_the_desk_nor_in_the_export(
    ledger: Ledger,
) -> None:
    newer = ticket("1", revision="2")
    ledger.record([(newer, decided(newer, "refund", minutes=1))])
    older = ticket("1", revision="1")  # its slower result arrives after the newer revision's
    ledger.record([(older, unsure(older, "card_lost", minutes=5))], superseded="stale-revision")
    ledger.record([(older, unsure(older, "card_lost", minutes=5))], superseded="stale-revision")
    assert ledger.queue("category") == []
    assert [(r.label, r.set_by) for r in ledger.export("category")] == [("refund", "model")]
    with ledger.engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT revision, superseded FROM decisions ORDER BY revision"
        ).all()
    assert [tuple(r) for r in rows] == [("1", "stale-revision"), ("2", None)]


def test_an_overtaken_persons_label_is_kept_and_resolves_nothing(ledger: Ledger) -> None:
    t = ticket("1")
    ledger.record([(t, unsure(t, "card_lost", minutes=1))])
    ledger.record([human(t, "transfer", minutes=9)], superseded="stale-revision")
    assert ledger.counts("category").open == 1  # the newer label of the two is not this one
    (item,) = ledger.queue("category")
    view = ledger.item(item.item.id)
    assert view is not None and [h.label for h in view.human_labels] == ["transfer"]
    ledger.record([human(t, "refund", minutes=10)])
    assert ledger.counts("category").resolved == 1
    assert [r.label for r in ledger.export("category")] == ["refund"]


def test_a_persons_label_is_compared_with_the_label_that_was_applied(ledger: Ledger) -> None:
    t = ticket("1", revision="2")
    ledger.record([(t, decided(t, "refund", minutes=1))])
    old = ticket("1", revision="1")
    ledger.record([(old, decided(old, "card_lost", minutes=2))], superseded="stale-revision")
    ledger.record([human(t, "transfer", minutes=3)])
    confusions = ledger.stats("category", since=at(0), until=at(60), now=at(60)).confusions
    assert [(c.model_label, c.human_label) for c in confusions] == [("refund", "transfer")]
