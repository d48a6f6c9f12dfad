"""The desk in a real browser: headless Chromium against a real `triage serve` (uvicorn) on a
loopback port, a PostgreSQL ledger, Redis, and the real write-back path run in this process on
the message the desk queued, writing to a local GitHub imitation.

One reviewer signs in, sees the queue, opens the oldest ticket with the keyboard (its body holds
a `<script>`, shown as text, never run), picks the second suggestion with "2" and confirms with
Enter; the label reaches GitHub and the ledger exactly once. A second reviewer, in a browser of
their own, does not get the claimed ticket in their queue or on its page. Screenshots of the
sign-in, the queue, the ticket and the keys are saved under the test's tmp_path (and copied to
$TRIAGE_TEST_SCREENSHOTS when set: docs/review/ is refreshed that way).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from producer.ledger import Ledger
from producer.names import WRITEBACK_QUEUE, ticket_key
from producer.schemas import Neighbour, Ticket, TriageResult
from tests.producer.http_support import writebacks
from tests.review.browser import chromium, keep, serve
from tests.review.support import (
    ANN,
    BOB,
    TOKENS,
    audits,
    auto,
    label_file,
    policy,
    ticket,
    unsure,
)
from tests.ticket_systems import GitHub

pytestmark = pytest.mark.slow

SCRIPT_BODY = (
    "I ordered a new card two weeks ago and it still hasn't arrived.\n"
    "<script>document.title='pwned'; window.pwned = 1;</script>\n"
    "Can you tell me where it is? I need it for a trip on Friday."
)


@pytest.fixture
def github(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[GitHub]:
    """A local GitHub with issue acme/app#7; the in-process write-back pointed at it."""
    from models import settings as model_settings
    from worker import resources
    from worker import settings as worker_settings

    with GitHub() as gh:
        gh.labels[("acme/app", 7)] = ["bug"]
        monkeypatch.setenv("TRIAGE_GITHUB_API_URL", gh.url)
        monkeypatch.setenv("TRIAGE_GITHUB_TOKEN", "ghp_test")
        monkeypatch.setenv("TRIAGE_DATA_DIR", str(tmp_path / "data"))
        monkeypatch.setenv("TRIAGE_AUDIT_RATE", "0")
        for cached in (worker_settings, model_settings):
            cached.get_settings.cache_clear()
        yield gh
        resources.close_all()
        for cached in (worker_settings, model_settings):
            cached.get_settings.cache_clear()


def _write_back(items: list[tuple[Ticket, TriageResult]]) -> None:
    """The one write-back path, in this process (what `triage worker -Q writeback` runs)."""
    from worker.writeback.path import write_back

    outcomes = write_back([(t, r, []) for t, r in items])
    failed = [o for o in outcomes if isinstance(o, Exception)]
    assert not failed, failed


def _seed(ledger: Ledger, rdb) -> None:
    """The desk as a morning finds it: the oldest a GitHub issue whose body holds a script."""
    now = datetime.now(UTC)
    issue = Ticket(
        id="acme/app#7",
        source="github",
        subject="New card still hasn't arrived",
        body=SCRIPT_BODY,
        revision="2026-05-01T10:00:00Z",
        origin={"system": "github", "repo": "acme/app", "number": 7},  # type: ignore[arg-type]
    )
    near = [
        Neighbour(ticket_id="h-311", source="helpdesk", label="card_arrival", score=0.87),
        Neighbour(
            ticket_id="h-120",
            source="helpdesk",
            label="lost_or_stolen_card",
            score=0.81,
            set_by="human",
        ),
        Neighbour(ticket_id="h-077", source="helpdesk", label="card_arrival", score=0.74),
    ]
    for n, subject in zip(
        near,
        ["When will my card arrive?", "Card lost in the post?", "Card delivery time"],
        strict=True,
    ):
        rdb.set(
            ticket_key("category", n.source, n.ticket_id),
            json.dumps({"id": n.ticket_id, "source": n.source, "subject": subject, "body": "-"}),
        )
    decisions = [
        (
            issue,
            unsure(
                issue,
                [("card_arrival", 0.58), ("lost_or_stolen_card", 0.31), ("card_not_working", 0.04)],
                ago_min=185,
                reason="frontier says 'lost_or_stolen_card', first pass 'card_arrival' at 0.58",
                frontier="lost_or_stolen_card",
                neighbours=near,
            ),
        )
    ]
    others = [
        (
            "h-1021",
            "Top-up failed twice",
            "My top up was declined but money left my account.",
            [("top_up_failed", 0.49), ("refund_not_showing_up", 0.22), ("card_not_working", 0.1)],
            140,
            "frontier budget exceeded: 5.00 USD today",
        ),
        (
            "h-1022",
            "PIN locked after three tries",
            "I typed the wrong PIN and now it is blocked.",
            [("pin_blocked", 0.52), ("card_not_working", 0.3), ("lost_or_stolen_card", 0.05)],
            95,
            None,
        ),
        (
            "h-1023",
            "Rate looked wrong",
            "The exchange rate on my EUR payment seems off.",
            [
                ("exchange_rate", 0.47),
                ("wrong_amount_of_cash_received", 0.2),
                ("transfer_timing", 0.1),
            ],
            42,
            "no frontier API configured (TRIAGE_FRONTIER_PROVIDER=none)",
        ),
    ]
    for tid, subject, body, top, ago, reason in others:
        t = ticket(tid, subject=subject, body=body)
        decisions.append((t, unsure(t, top, ago_min=ago, reason=reason)))
    _write_back(decisions)
    audited = ticket("h-1030", subject="ATM charged me a fee", body="Why was I charged at the ATM?")
    _write_back(
        [(audited, auto(audited, "cash_withdrawal_charge", at=now - timedelta(minutes=12)))]
    )
    assert ledger.open_audit(
        audited, auto(audited, "cash_withdrawal_charge", at=now - timedelta(minutes=12))
    )


def _sign_in(driver: WebDriver, url: str, token: str, shots: Path | None = None) -> None:
    driver.get(f"{url}/review")
    assert "/review/login" in driver.current_url
    field = driver.find_element(By.ID, "token")
    field.send_keys(token)
    if shots is not None:
        _shot(driver, shots / "review-sign-in.png")
    field.send_keys(Keys.ENTER)
    WebDriverWait(driver, 10).until(lambda d: "/review/queue/" in d.current_url)


def _keys(driver: WebDriver, keys: str) -> None:
    ActionChains(driver).send_keys(keys).perform()


def _shot(driver: WebDriver, path: Path) -> None:
    assert driver.save_screenshot(str(path)), path
    keep(path)


def _queue_ids(driver: WebDriver) -> list[str]:
    return [td.text for td in driver.find_elements(By.CSS_SELECTOR, "#queue td.id")]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_reviewer_answers_with_the_keyboard_and_the_label_lands_once(
    redis_url: str, database_url: str, rdb, github: GitHub, tmp_path: Path
) -> None:
    with Ledger.open(database_url, upgrade_schema=True) as ledger:
        _seed(ledger, rdb)
        audits(ledger, right=52, wrong=6, days=7)  # a week of answered audits for the stats
        policy(tmp_path / "adapter", 0.97)
        writes_before = github.writes
        env = {
            "TRIAGE_REDIS_URL": redis_url,
            "TRIAGE_DATABASE_URL": database_url,
            "TRIAGE_API_TOKENS": json.dumps(TOKENS),
            "TRIAGE_WEBHOOK_SOURCES": "[]",
            "TRIAGE_LABELS": json.dumps({"category": str(label_file(tmp_path))}),
            "TRIAGE_ADAPTERS": json.dumps({"category": str(tmp_path / "adapter")}),
        }
        shots = tmp_path / "screenshots"
        shots.mkdir()
        with serve(env, tmp_path / "serve.log") as url, chromium() as a, chromium() as b:
            # Sign in; the queue, oldest first.
            _sign_in(a, url, ANN, shots)
            assert _queue_ids(a) == ["acme/app#7", "h-1021", "h-1022", "h-1023", "h-1030"]
            counts = a.find_element(By.CSS_SELECTOR, ".counts").text
            assert "5 open\n0 claimed\n3h 5m oldest waiting" in counts
            _shot(a, shots / "review-queue.png")

            # j/k move the selection; Enter opens the selected ticket, which claims it.
            _keys(a, "jjk")
            selected = a.find_element(By.CSS_SELECTOR, "#queue tr.selected td.id").text
            assert selected == "h-1021"
            _keys(a, "k")
            _keys(a, Keys.ENTER)
            WebDriverWait(a, 10).until(lambda d: "/review/items/" in d.current_url)
            item_url = a.current_url.split("?")[0]
            body = a.find_element(By.CSS_SELECTOR, "pre.body")
            assert "<script>document.title='pwned'; window.pwned = 1;</script>" in body.text
            assert body.find_elements(By.TAG_NAME, "script") == []
            assert a.title != "pwned" and a.execute_script("return window.pwned") is None
            assert "Yours until" in a.find_element(By.CSS_SELECTOR, ".notice").text

            # A second reviewer: not in their queue, and its page says who holds it.
            _sign_in(b, url, BOB)
            assert "acme/app#7" not in _queue_ids(b)
            assert _queue_ids(b)[0] == "h-1021"
            b.get(item_url)
            held = b.find_element(By.CSS_SELECTOR, ".notice").text
            assert held.startswith("Claimed by ann until")
            assert b.find_elements(By.ID, "answer") == [] and "trip on Friday" not in b.page_source
            _shot(b, shots / "review-claimed.png")

            # ? shows the keys; Esc hides them.
            _keys(a, "?")
            WebDriverWait(a, 5).until(lambda d: d.find_element(By.ID, "keys").is_displayed())
            _shot(a, shots / "review-keys.png")
            _keys(a, Keys.ESCAPE)
            WebDriverWait(a, 5).until(lambda d: not d.find_element(By.ID, "keys").is_displayed())

            # "2" picks the second suggestion, Enter confirms.
            _keys(a, "2")
            checked = a.find_element(By.CSS_SELECTOR, "input[name=label]:checked")
            assert checked.get_attribute("value") == "lost_or_stolen_card"
            a.set_window_size(1360, 1120)  # the whole ticket page in the picture
            _shot(a, shots / "review-ticket.png")
            _keys(a, Keys.ENTER)
            WebDriverWait(a, 10).until(lambda d: d.current_url.split("?")[0] != item_url)
            assert "New card still hasn't arrived" not in a.page_source  # on to the next one

            # The stats page: precision under the tuned 97% is an alarm; plots drawn.
            a.get(f"{url}/review/stats/category?days=7")
            alarm = a.find_element(By.CSS_SELECTOR, ".alarm").text
            assert alarm.startswith("Precision below target for adapter category@abc123")
            plots = a.find_elements(By.CSS_SELECTOR, "figure.plot svg")
            assert len(plots) == 2 and plots[0].size["width"] > 500
            assert plots[0].find_elements(By.TAG_NAME, "polygon")  # the interval band
            a.set_window_size(1360, 1700)
            _shot(a, shots / "review-stats.png")

        # The desk queued one write-back message; the worker's path applies it.
        [queued] = writebacks(rdb)
        rdb.delete(WRITEBACK_QUEUE)
        human = (Ticket(**queued["ticket"]), TriageResult(**queued["result"]))
        assert (human[1].labelled_by, human[1].via) == ("ann", "review")
        _write_back([human])
        _write_back([human])  # a redelivery changes nothing

        ours = [n for n in github.labels[("acme/app", 7)] if n.startswith("triage:category:")]
        assert ours == ["triage:category:lost_or_stolen_card"]
        added = [
            r
            for r in github.requests
            if r.method == "POST"
            and r.json
            and "triage:category:lost_or_stolen_card" in r.json.get("labels", [])
        ]
        assert len(added) == 1 and github.writes > writes_before
        item_id = int(item_url.rsplit("/", 1)[1])
        view = ledger.item(item_id)
        assert view is not None
        assert (view.item.state, view.item.resolved_by, view.item.answer_label) == (
            "resolved",
            "ann",
            "lost_or_stolen_card",
        )
        [label] = view.human_labels
        assert (label.label, label.labelled_by, label.via, label.model_label) == (
            "lost_or_stolen_card",
            "ann",
            "desk",
            "card_arrival",
        )
