"""The queue and the ticket page: oldest first, filtered by source and label, counts, the
reviewer's scope; a ticket's text escaped, the model's suggestions, the neighbours, the frontier,
why it is here; a claim per ticket that a second reviewer cannot take until it expires."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest

from producer.ledger import Ledger
from producer.names import ticket_key
from producer.schemas import Neighbour
from tests.review.support import BOB, NARROW, github_ticket, ticket, unsure


def _ids(html: str) -> list[str]:
    return re.findall(r'<td class="id">([^<]+)</td>', html)


@pytest.fixture
def seeded(ledger: Ledger) -> Ledger:
    """Five items: helpdesk t1 (oldest) .. t3, email e1, github acme/app#7 (newest)."""
    rows = [
        (ticket("t1"), [("card_arrival", 0.55), ("lost_or_stolen_card", 0.3)], 50),
        (ticket("t2"), [("pin_blocked", 0.5)], 40),
        (ticket("e1", source="email"), [("card_arrival", 0.45)], 30),
        (ticket("t3"), [("card_arrival", 0.6)], 20),
        (github_ticket(7, "Card never came", "where is it"), [("card_arrival", 0.5)], 10),
    ]
    ledger.record([(t, unsure(t, top, ago_min=ago)) for t, top, ago in rows])
    return ledger


def test_the_queue_is_oldest_first_with_counts(ann, seeded: Ledger) -> None:
    page = ann.get("/review/queue/category")
    assert page.status_code == 200
    assert _ids(page.text) == ["t1", "t2", "e1", "t3", "acme/app#7"]
    counts = re.sub(r"\s+", " ", page.text)
    assert '<span class="n">5</span> open' in counts
    assert '<span class="n">0</span> claimed' in counts
    assert '<span class="n">50m</span> oldest waiting' in counts


def test_the_queue_filters_by_source_and_label(ann, seeded: Ledger) -> None:
    assert _ids(ann.get("/review/queue/category?source=helpdesk").text) == ["t1", "t2", "t3"]
    by_label = ann.get("/review/queue/category?label=card_arrival").text
    assert _ids(by_label) == ["t1", "e1", "t3", "acme/app#7"]
    both = ann.get("/review/queue/category?source=helpdesk&label=card_arrival").text
    assert _ids(both) == ["t1", "t3"]
    assert '<option value="email">email</option>' in both  # every source on offer
    assert '<option value="pin_blocked">pin_blocked</option>' in both  # the whole label set


def test_a_reviewer_sees_only_the_sources_of_their_scope(make_client, seeded: Ledger) -> None:
    nora = make_client(NARROW)  # review: ["helpdesk"]
    assert _ids(nora.get("/review/queue/category").text) == ["t1", "t2", "t3"]
    assert _ids(nora.get("/review/queue/category?source=email").text) == []
    [github] = [e for e in seeded.queue("category") if e.item.source == "github"]
    assert nora.get(f"/review/items/{github.item.id}").status_code == 404
    plain_star = make_client(None, api_tokens=[{"token": "s", "name": "sam", "review": ["*"]}])
    from tests.review.support import sign_in

    sign_in(plain_star, "s")
    # "*" is every source but a ticket system, which is granted only by its name.
    assert "acme/app#7" not in _ids(plain_star.get("/review/queue/category").text)


def test_opening_a_ticket_claims_it_from_everyone_else(ann, make_client, seeded: Ledger) -> None:
    first = seeded.queue("category")[0].item
    page = ann.get(f"/review/items/{first.id}")
    assert page.status_code == 200 and "Yours until" in page.text
    item = seeded.item(first.id)
    assert item is not None and item.item.claimed_by == "ann"
    expires = item.item.claim_expires_at
    assert expires is not None
    assert timedelta(seconds=590) < expires - datetime.now(UTC) <= timedelta(seconds=600)
    bob = make_client(BOB)
    assert "t1" not in _ids(bob.get("/review/queue/category").text)
    theirs = bob.get(f"/review/items/{first.id}")
    assert theirs.status_code == 409
    assert "Claimed by <strong>ann</strong> until" in theirs.text
    assert "body of t1" not in theirs.text and 'id="answer"' not in theirs.text
    assert (
        bob.get("/review/queue/category/next", follow_redirects=False).headers["location"]
        != f"/review/items/{first.id}"
    )
    # Ann's own queue still lists it (marked hers), and her counts show the claim.
    mine = ann.get("/review/queue/category").text
    assert "t1" in _ids(mine) and 'class="mine"' in mine
    assert '<span class="n">1</span> claimed' in re.sub(r"\s+", " ", mine)


def test_a_claim_expires(ann, make_client, seeded: Ledger) -> None:
    first = seeded.queue("category")[0].item
    long_ago = datetime.now(UTC) - timedelta(hours=1)
    assert seeded.claim(first.id, "ann", ttl_s=60, now=long_ago)
    bob = make_client(BOB)
    assert "t1" in _ids(bob.get("/review/queue/category").text)
    assert "Yours until" in bob.get(f"/review/items/{first.id}").text


def test_the_claim_lasts_the_configured_time(make_client, seeded: Ledger) -> None:
    from tests.review.support import ANN

    client = make_client(ANN, review_claim_s=30)
    first = seeded.queue("category")[0].item
    client.get(f"/review/items/{first.id}")
    item = seeded.item(first.id)
    assert item is not None and item.item.claim_expires_at is not None
    assert item.item.claim_expires_at - datetime.now(UTC) <= timedelta(seconds=30)


def test_the_ticket_page_shows_the_evidence(ann, ledger: Ledger, rdb) -> None:
    t = ticket(
        "x1",
        subject="Card <b>never</b> arrived",
        body='<script>document.title="pwned"</script>\n<img src=x onerror=alert(1)>',
    )
    neighbours = [
        Neighbour(ticket_id="n1", source="helpdesk", label="card_arrival", score=0.91),
        Neighbour(
            ticket_id="n2", source="github", label="lost_or_stolen_card", score=0.8, set_by="human"
        ),
    ]
    rdb.set(
        ticket_key("category", "helpdesk", "n1"),
        json.dumps({"id": "n1", "source": "helpdesk", "subject": "my new card is late"}),
    )
    result = unsure(
        t,
        [("card_arrival", 0.62), ("lost_or_stolen_card", 0.21), ("card_not_working", 0.09)],
        reason="frontier says 'lost_or_stolen_card', first pass 'card_arrival' at 0.62",
        frontier="lost_or_stolen_card",
        neighbours=neighbours,
    )
    ledger.record([(t, result)])
    [entry] = ledger.queue("category")
    page = ann.get(f"/review/items/{entry.item.id}").text
    # Escaped, never markup.
    assert "<script>document" not in page and "<img src=x" not in page
    assert "&lt;script&gt;document.title=&#34;pwned&#34;&lt;/script&gt;" in page
    assert "Card &lt;b&gt;never&lt;/b&gt; arrived" in page
    # The model's top three with their confidences, first among the choices.
    flat = re.sub(r"\s+", " ", page)
    for label, shown in (
        ("card_arrival", "62.0%"),
        ("lost_or_stolen_card", "21.0%"),
        ("card_not_working", "9.0%"),
    ):
        assert f'<td>{label}</td><td class="num">{shown}</td>' in flat
    digits = re.findall(r'value="([a-z_]+)" required> <kbd class="digit">(\d?)</kbd>', flat)
    assert digits[:3] == [
        ("card_arrival", "1"),
        ("lost_or_stolen_card", "2"),
        ("card_not_working", "3"),
    ]
    assert len(digits) == 11 and digits[9][1] == ""  # the whole label set; digits for 9
    # Neighbours: ids, labels, similarity; the subject of one the reviewer may see.
    assert "0.91" in flat and "helpdesk/n1" in flat and "my new card is late" in flat
    assert "github/n2" in flat and '<span class="tag">person</span>' in flat
    # The frontier's answer and why it came to review.
    assert "Answered <strong>lost_or_stolen_card</strong> at 70% (claude-test)" in flat
    assert "disagreed with a confident first pass" in flat
    assert "frontier says &#39;lost_or_stolen_card&#39;" in flat


@pytest.mark.parametrize(
    ("reason", "said"),
    [
        (None, "The model was unsure"),
        ("frontier answer refused: not JSON", "answer was refused"),
        ("frontier budget exceeded: 5.00 USD", "budget was spent"),
        ("no frontier API configured (TRIAGE_FRONTIER_PROVIDER=none)", "no frontier model"),
    ],
)
def test_the_page_says_why_the_ticket_is_here(ann, ledger: Ledger, reason, said) -> None:
    t = ticket("w1")
    ledger.record([(t, unsure(t, [("pin_blocked", 0.4)], reason=reason))])
    [entry] = ledger.queue("category")
    assert said in ann.get(f"/review/items/{entry.item.id}").text


def test_an_audit_says_so(ann, ledger: Ledger) -> None:
    from tests.review.support import auto

    t = ticket("a1")
    assert ledger.open_audit(t, auto(t, "exchange_rate", at=datetime.now(UTC)))
    [entry] = ledger.queue("category")
    page = ann.get(f"/review/items/{entry.item.id}").text
    assert "An audit" in page and "exchange_rate" in page


def test_suggestions_come_from_the_stages_when_the_decision_kept_none(ann, ledger: Ledger) -> None:
    t = ticket("s1")
    result = unsure(t, [("top_up_failed", 0.4)])
    result.trace[1].detail.clear()  # no "top": the ledger keeps each stage's label
    ledger.record([(t, result)])
    [entry] = ledger.queue("category")
    flat = re.sub(r"\s+", " ", ann.get(f"/review/items/{entry.item.id}").text)
    assert '<td>top_up_failed</td><td class="num">40.0%</td>' in flat


def test_unknown_items_and_tasks_are_404_pages(ann) -> None:
    assert ann.get("/review/items/999999").status_code == 404
    missing = ann.get("/review/queue/nosuchtask")
    assert missing.status_code == 404 and "no task" in missing.text


def test_moving_on_with_j_or_back_to_the_queue_gives_the_ticket_back(
    ann, make_client, seeded: Ledger
) -> None:
    first, second = (e.item for e in seeded.queue("category")[:2])
    page = ann.get(f"/review/items/{first.id}").text
    step = re.search(r'href="(/review/items/\d+\?left=\d+)" data-key="j"', page)
    assert step and step[1] == f"/review/items/{second.id}?left={first.id}"
    ann.get(step[1])
    bob = make_client(BOB)
    assert "t1" in _ids(bob.get("/review/queue/category").text)  # ann let t1 go
    assert "t2" not in _ids(bob.get("/review/queue/category").text)  # she holds t2
    back = re.search(
        r'href="(/review/queue/category\?left=\d+)" data-key="u"',
        ann.get(f"/review/items/{second.id}").text,
    )
    assert back
    ann.get(back[1])
    assert "t2" in _ids(bob.get("/review/queue/category").text)
