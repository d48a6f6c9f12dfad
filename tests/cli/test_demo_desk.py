"""The demo's ending: the desk's address, how to start it, and how many tickets wait there."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
from rich.console import Console

from cli.demo.desk import DeskCounts, desk_counts, print_desk
from producer.ledger import Ledger
from producer.schemas import Ticket
from tests.cli.seed import model
from worker import settings as worker_settings


@pytest.fixture
def audit_everything(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TRIAGE_AUDIT_RATE", "1")
    worker_settings.get_settings.cache_clear()
    yield
    worker_settings.get_settings.cache_clear()


def test_the_desk_is_counted_once_the_ledger_holds_this_runs_items(
    ledger: Ledger, audit_everything: None
) -> None:
    old = Ticket(id="old", source="banking77", body="x", revision="demo-1")
    ledger.record([(old, model(old, "refund", adapter="v", minutes_ago=90, status="needs_review"))])
    tickets = [
        Ticket(id=f"t{i}", source="banking77", body="x", revision="demo-2") for i in range(5)
    ]
    results = [
        model(
            t, "refund", adapter="v", minutes_ago=1, status="needs_review" if i < 2 else "labelled"
        )
        for i, t in enumerate(tickets)
    ]
    ledger.record(list(zip(tickets, results, strict=True)))
    for t, r in zip(tickets[2:], results[2:], strict=True):
        ledger.open_audit(t, r)
    assert desk_counts("category", results, "demo-2", timeout_s=0) == DeskCounts(6, 2, 3)


def test_a_desk_behind_the_results_is_counted_as_it_is_after_the_wait(ledger: Ledger) -> None:
    t = Ticket(id="t", source="banking77", body="x", revision="demo-3")
    unsure = model(t, "refund", adapter="v", minutes_ago=1, status="needs_review")
    assert desk_counts("category", [unsure], "demo-3", timeout_s=0.3) == DeskCounts(0, 0, 0)


@pytest.mark.parametrize("embedded", [True, False])
def test_the_ending_says_where_the_desk_is_and_how_to_start_it(embedded: bool) -> None:
    out = io.StringIO()
    print_desk(DeskCounts(12, 10, 2), Console(file=out, width=200), embedded_redis=embedded)
    text = out.getvalue()
    assert "12 tickets wait there; from this run, 10 the cascade left to a person" in text
    assert "and 2 audits of its automatic labels" in text
    assert "http://127.0.0.1:8000/review" in text
    assert '"review": ["*"]' in text and "triage serve" in text and "-Q writeback" in text
    assert ("embedded one has stopped" in text) == embedded
