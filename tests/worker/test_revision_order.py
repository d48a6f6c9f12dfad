"""Revision order (docs/security.md): a result for an older revision never replaces a newer one
in any target; it is recorded as ``stale-revision``. Timestamps compare as times, numbers as
numbers, anything else by the tickets' ``created_at``. Replayed and out-of-order deliveries,
against a real Redis, the real write-back path, a local Qdrant and a real callback receiver."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import redis

from producer import Ticket, get_result
from producer.names import EVENTS_STREAM
from tests.factories import result_for
from tests.receivers import CallbackReceiver
from worker import settings as worker_settings
from worker.writeback.decide import revision_order
from worker.writeback.path import TARGETS, write_back, write_back_one

EVERY_TARGET = {target.name for target in TARGETS}
T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def callback_secret(worker_env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIAGE_CALLBACK_SECRET", "s3cret")
    worker_settings.get_settings.cache_clear()


def _at(revision: str, label: str, callback: str, created: datetime = T0):
    t = Ticket(id="1", body="card", revision=revision, callback=callback, created_at=created)  # type: ignore[arg-type]
    return t, result_for(t, label), [1.0, 0.0, 0.0, 0.0]


@pytest.mark.parametrize(
    ("newer", "older", "newest"),
    [
        # 10:00Z written with an offset sorts after 09:30Z as text and as time...
        ("2024-05-01T12:00:00+02:00", "2024-05-01T09:30:00Z", "2024-05-01T10:30:00Z"),
        # ...and 10:30Z sorts before it as text, after it as time: it applies.
        ("10", "9", "11"),  # numbers, not text: "9" > "10" as text
        ("1.5", "1.25", "2"),
    ],
)
def test_an_older_revision_after_a_newer_one_is_applied_nowhere(
    rdb: redis.Redis, newer: str, older: str, newest: str
) -> None:
    with CallbackReceiver() as receiver:
        write_back_one(*_at(newer, "card_arrival", receiver.url))
        events = rdb.xlen(EVENTS_STREAM)
        stale = write_back_one(*_at(older, "lost_card", receiver.url))
        assert stale == dict.fromkeys(EVERY_TARGET, "stale-revision")
        assert rdb.xlen(EVENTS_STREAM) == events
        assert get_result("1").label == "card_arrival"  # type: ignore[union-attr]
        applied = write_back_one(*_at(newest, "pin_blocked", receiver.url))
        labels = [call.json["label"] for call in receiver.calls]
    assert applied["store"] == "stored" and applied["callback"] == "http 200"
    assert labels == ["card_arrival", "pin_blocked"]
    assert get_result("1").label == "pin_blocked"  # type: ignore[union-attr]


def test_revisions_that_do_not_sort_are_ordered_by_when_the_ticket_was_created(
    rdb: redis.Redis,
) -> None:
    with CallbackReceiver() as receiver:
        write_back_one(*_at("b", "card_arrival", receiver.url, created=T0))
        early = write_back_one(*_at("a", "lost_card", receiver.url, T0 - timedelta(minutes=1)))
        late = write_back_one(*_at("c", "pin_blocked", receiver.url, T0 + timedelta(minutes=1)))
    assert early["callback"] == "stale-revision" and late["callback"] == "http 200"


def test_a_replayed_delivery_of_an_older_revision_applies_in_no_target_left(
    rdb: redis.Redis,
) -> None:
    """r1's callback fails; r2 is written everywhere; r1 comes back (its retry, or an operator's
    replay of its dead letter) and must not call back or index its older label."""
    from worker import resources

    with CallbackReceiver() as receiver:
        receiver.failing.set()
        r1 = _at("1", "card_arrival", receiver.url)
        [failed] = write_back([r1])
        assert isinstance(failed, Exception)
        receiver.failing.clear()
        r2 = _at("2", "lost_card", receiver.url)
        write_back_one(*r2)
        replayed = write_back_one(*r1)
        again = write_back_one(*r2)  # r2 delivered twice: done already
        labels = [call.json["label"] for call in receiver.calls]
    assert replayed["callback"] == replayed["index"] == "stale-revision"
    assert replayed["store"] == "stored"  # before r2 came, and replaced by it
    assert again["callback"] == "http 200" and labels == ["lost_card"]
    [[hit]] = resources.index().neighbours("category", np.asarray([r1[2]], dtype=np.float32), 1)
    assert hit.label == "lost_card"
    assert get_result("1").label == "lost_card"  # type: ignore[union-attr]


def test_out_of_order_deliveries_in_one_batch(rdb: redis.Redis) -> None:
    with CallbackReceiver() as receiver:
        newer, older = _at("7", "lost_card", receiver.url), _at("6", "card_arrival", receiver.url)
        outcomes = write_back([newer, older])
        labels = [call.json["label"] for call in receiver.calls]
    assert isinstance(outcomes[0], dict) and outcomes[0]["callback"] == "http 200"
    assert isinstance(outcomes[1], dict) and outcomes[1]["callback"] == "stale-revision"
    assert labels == ["lost_card"] and get_result("1").label == "lost_card"  # type: ignore[union-attr]


def test_how_revisions_sort() -> None:
    assert revision_order("9") < revision_order("10") < revision_order("010.5")
    assert revision_order("2024-05-01T12:00:00+02:00") < revision_order("2024-05-01T10:30:00Z")
    assert revision_order("2024-05-01T10:00:00.000+0000")[0] == "t"  # Jira's spelling
    assert revision_order("r1") == revision_order("r2") == ("s", "")
