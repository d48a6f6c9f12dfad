"""An answer is a person's label through the one write-back path: one push (`send_writeback`)
of `HumanLabel(..., via="review").as_writeback()` built from the stored ticket, and the item
resolved in the ledger; a second submission pushes nothing; a skip pushes nothing."""

from __future__ import annotations

import pytest

from producer.ledger import Ledger
from producer.names import WRITEBACK_QUEUE, ticket_key
from producer.schemas import GitHubIssue
from tests.producer.http_support import writebacks
from tests.review.support import csrf_of, github_ticket, ticket, unsure


def _open(client, ledger: Ledger, n: int = 0):
    item = ledger.queue("category")[n].item
    page = client.get(f"/review/items/{item.id}")
    assert page.status_code == 200
    return item, csrf_of(page.text)


def test_an_answer_is_one_human_label_on_the_writeback_path(ann, ledger: Ledger, rdb) -> None:
    t = github_ticket(7, "Card never came", "two weeks now")
    # The write-back path stored the ticket with its verified origin: that is what is used.
    rdb.set(ticket_key("category", "github", t.id), t.model_dump_json())
    later = ticket("t2")
    ledger.record(
        [
            (t, unsure(t, [("card_arrival", 0.5)], ago_min=5)),
            (later, unsure(later, [("pin_blocked", 0.5)])),
        ]
    )
    item, csrf = _open(ann, ledger)
    response = ann.post(
        f"/review/items/{item.id}/answer",
        data={"csrf": csrf, "label": "lost_or_stolen_card", "note": "they say stolen"},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/review/queue/category/next"
    [queued] = writebacks(rdb)
    result, sent = queued["result"], queued["ticket"]
    assert (result["label"], result["decided_by"], result["status"]) == (
        "lost_or_stolen_card",
        "human",
        "labelled",
    )
    assert (result["labelled_by"], result["via"], result["reason"]) == (
        "ann",
        "review",
        "they say stolen",
    )
    assert sent["origin"] == {"system": "github", "repo": "acme/app", "number": 7}
    assert (sent["id"], sent["source"], sent["task"]) == ("acme/app#7", "github", "category")
    done = ledger.item(item.id)
    assert done is not None
    assert (done.item.state, done.item.resolved_by, done.item.answer_label, done.item.note) == (
        "resolved",
        "ann",
        "lost_or_stolen_card",
        "they say stolen",
    )
    # The next item is opened for her.
    following = ann.get(response.headers["location"], follow_redirects=False)
    assert following.headers["location"] == f"/review/items/{ledger.queue('category')[0].item.id}"


def test_a_second_submission_pushes_nothing(ann, ledger: Ledger, rdb) -> None:
    t = ticket("t1")
    ledger.record([(t, unsure(t, [("card_arrival", 0.5)]))])
    item, csrf = _open(ann, ledger)
    form = {"csrf": csrf, "label": "card_arrival"}
    assert ann.post(f"/review/items/{item.id}/answer", data=form).status_code == 200
    again = ann.post(f"/review/items/{item.id}/answer", data=form, follow_redirects=False)
    assert again.status_code == 303
    assert len(writebacks(rdb)) == 1


def test_the_ledgers_ticket_is_used_when_redis_has_none(ann, ledger: Ledger, rdb) -> None:
    t = github_ticket(9, "PIN blocked", "after three tries")
    ledger.record([(t, unsure(t, [("pin_blocked", 0.5)]))])
    item, csrf = _open(ann, ledger)
    ann.post(f"/review/items/{item.id}/answer", data={"csrf": csrf, "label": "pin_blocked"})
    [queued] = writebacks(rdb)
    assert GitHubIssue.model_validate(queued["ticket"]["origin"]).number == 9
    assert queued["ticket"]["subject"] == "PIN blocked"


@pytest.mark.parametrize("label", ["not_a_label", ""])
def test_only_a_label_of_the_set_is_accepted(ann, ledger: Ledger, rdb, label) -> None:
    t = ticket("t1")
    ledger.record([(t, unsure(t, [("card_arrival", 0.5)]))])
    item, csrf = _open(ann, ledger)
    response = ann.post(f"/review/items/{item.id}/answer", data={"csrf": csrf, "label": label})
    assert response.status_code == 422 and "label set" in response.text
    assert rdb.llen(WRITEBACK_QUEUE) == 0
    assert ledger.counts("category").claimed == 1


def test_a_wrong_csrf_token_changes_nothing(ann, ledger: Ledger, rdb) -> None:
    t = ticket("t1")
    ledger.record([(t, unsure(t, [("card_arrival", 0.5)]))])
    item, _ = _open(ann, ledger)
    for form in ({"label": "card_arrival"}, {"label": "card_arrival", "csrf": "guess"}):
        for action in ("answer", "skip"):
            response = ann.post(f"/review/items/{item.id}/{action}", data=form)
            assert response.status_code == 403
    assert rdb.llen(WRITEBACK_QUEUE) == 0 and ledger.counts("category").claimed == 1


def test_someone_elses_claim_is_not_answered(ann, make_client, ledger: Ledger, rdb) -> None:
    from tests.review.support import BOB

    t = ticket("t1")
    ledger.record([(t, unsure(t, [("card_arrival", 0.5)]))])
    item = ledger.queue("category")[0].item
    bob = make_client(BOB)
    bob_csrf = csrf_of(bob.get("/review/queue/category").text)
    assert ann.get(f"/review/items/{item.id}").status_code == 200  # ann holds it
    response = bob.post(
        f"/review/items/{item.id}/answer", data={"csrf": bob_csrf, "label": "pin_blocked"}
    )
    assert response.status_code == 409
    assert rdb.llen(WRITEBACK_QUEUE) == 0


def test_a_skip_takes_the_item_off_the_desk_without_a_label(ann, ledger: Ledger, rdb) -> None:
    t = ticket("t1")
    ledger.record([(t, unsure(t, [("card_arrival", 0.5)]))])
    item, csrf = _open(ann, ledger)
    response = ann.post(
        f"/review/items/{item.id}/skip", data={"csrf": csrf, "note": "spam"}, follow_redirects=False
    )
    assert response.status_code == 303
    assert rdb.llen(WRITEBACK_QUEUE) == 0
    done = ledger.item(item.id)
    assert done is not None and (done.item.state, done.item.note) == ("skipped", "spam")
    assert (
        ann.get("/review/queue/category/next", follow_redirects=False).headers["location"]
        == "/review/queue/category"
    )
