"""Quality figures over a window, checked against values worked out by hand."""

from __future__ import annotations

import pytest

from producer.ledger import Confusion, Ledger
from producer.ledger.stats import wilson
from tests.ledger.build import at, decided, human, ticket, unsure


def test_wilson_intervals_match_the_published_values() -> None:
    # Wilson score intervals, z = 1.96 (e.g. Newcombe 1998, table I: 81/263 -> 0.2553-0.3662).
    for k, n, low, high in [
        (4, 5, 0.3755, 0.9638),
        (8, 10, 0.4902, 0.9433),
        (81, 263, 0.2553, 0.3662),
    ]:
        got = wilson(k, n)
        assert (got.value, got.low, got.high) == pytest.approx((k / n, low, high), abs=5e-4)
    assert (wilson(0, 10).low, wilson(10, 10).high) == pytest.approx((0.0, 1.0))


def _audit(ledger: Ledger, ticket_id: str, answer: str, minutes: float) -> None:
    """A reviewer answers the audit of `ticket_id` on the desk, and the answer, a person's
    label, goes down the write-back path as every channel's does."""
    entry = next(e for e in ledger.queue("category", limit=100) if e.item.ticket_id == ticket_id)
    assert ledger.claim(entry.item.id, "ann", now=at(minutes))
    assert ledger.resolve(entry.item.id, "ann", answer, now=at(minutes))
    ledger.record([human(ticket(ticket_id), answer, minutes=minutes, via="review")])


def test_a_windows_figures_per_adapter_version(ledger: Ledger) -> None:
    p = [ticket(f"p{i}") for i in range(10)]
    q = [ticket(f"q{i}") for i in range(4)]
    old = ticket("old")
    # v1: eight auto labels and two to review; v2: four auto labels; one decision before the window.
    ledger.record([(t, decided(t, "refund", minutes=10 + i)) for i, t in enumerate(p[:8])])
    ledger.record([(t, unsure(t, "card_lost", minutes=20 + i)) for i, t in enumerate(p[8:])])
    ledger.record(
        [(t, decided(t, "transfer", minutes=50 + i, adapter="v2")) for i, t in enumerate(q)]
    )
    ledger.record([(old, decided(old, "refund", minutes=-10)), human(old, "card_lost", minutes=-5)])
    for t in p[:5]:
        ledger.open_audit(t, decided(t, "refund", minutes=10 + int(t.id[1:])))
    ledger.open_audit(q[1], decided(q[1], "transfer", minutes=51, adapter="v2"))  # unanswered
    for t in p[:4]:
        _audit(ledger, t.id, "refund", minutes=30)  # four audits agree
    _audit(ledger, "p4", "transfer", minutes=40)  # one does not: a correction too
    ledger.record([human(p[5], "card_lost", minutes=45, via="github")])
    ledger.record([human(p[6], "refund", minutes=46, via="api")])  # confirms: no correction
    ledger.record([human(p[7], "card_lost", minutes=47, via="jira")])
    ledger.record([human(q[0], "refund", minutes=60)])
    ledger.record([human(p[8], "refund", minutes=70, via="review")])  # answers a review item

    stats = ledger.stats("category", since=at(0), until=at(100), now=at(100))

    v1, v2 = stats.versions
    assert (v1.adapter_version, v1.decisions, v1.auto, v1.coverage) == ("v1", 10, 8, 0.8)
    assert (v1.audited, v1.audit_correct) == (5, 4)
    assert v1.precision is not None
    assert (v1.precision.value, v1.precision.low, v1.precision.high) == pytest.approx(
        (0.8, 0.3755, 0.9638), abs=5e-4
    )
    assert (v1.corrected, v1.correction_rate) == (3, 3 / 8)  # p4, p5, p7
    assert (v2.adapter_version, v2.decisions, v2.auto, v2.coverage) == ("v2", 4, 4, 1.0)
    assert (v2.audited, v2.precision, v2.corrected, v2.correction_rate) == (0, None, 1, 0.25)
    # Waiting: p9's review (since minute 21) and q1's audit.
    assert (stats.queue_depth, stats.oldest_age_s) == (2, 79 * 60)
    assert stats.confusions == [
        Confusion("refund", "card_lost", 2),
        Confusion("card_lost", "refund", 1),
        Confusion("refund", "transfer", 1),
        Confusion("transfer", "refund", 1),
    ]


def test_an_empty_window(ledger: Ledger) -> None:
    stats = ledger.stats("category", since=at(0), until=at(1), now=at(1))
    assert (stats.versions, stats.queue_depth, stats.oldest_age_s, stats.confusions) == (
        [],
        0,
        None,
        [],
    )
