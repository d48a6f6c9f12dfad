"""The one write-back path against a real Redis, a local Qdrant and a real HTTP receiver: each
target once per revision, a human label kept, a failure kept to its ticket, one ticket a batch
of one."""

from __future__ import annotations

import numpy as np
import pytest
import redis

from producer import Ticket, get_result
from producer.errors import SinkRejected, SinkUnavailable
from producer.names import EVENTS_STREAM, written_key
from tests.factories import result_for
from tests.receivers import CallbackReceiver
from worker import settings as worker_settings
from worker.writeback.done import WriteInProgress
from worker.writeback.path import write_back, write_back_one


@pytest.fixture(autouse=True)
def callback_secret(worker_env, monkeypatch: pytest.MonkeyPatch) -> None:
    # Human labels reach the index: `worker_env` gives each test a local Qdrant of its own.
    monkeypatch.setenv("TRIAGE_CALLBACK_SECRET", "s3cret")


def _vector(i: int) -> list[float]:
    v = np.zeros(4, dtype=np.float32)
    v[i % 4] = 1.0
    return [float(x) for x in v]


def _batch(url: str, n: int = 3) -> list[tuple[Ticket, object, list[float]]]:
    tickets = [Ticket(id=str(i), body=f"x{i}", revision="r1", callback=url) for i in range(n)]
    return [(t, result_for(t, f"label{t.id}"), _vector(i)) for i, t in enumerate(tickets)]


def test_each_sink_runs_once_per_revision_and_the_batch_is_indexed(rdb: redis.Redis) -> None:
    from worker import resources

    with CallbackReceiver() as receiver:
        items = _batch(receiver.url)
        first = write_back(items)
        again = write_back(items)
        alone = write_back_one(*items[0])
        calls = len(receiver.calls)
    assert first == again and alone == first[0]
    assert all(isinstance(d, dict) and d["store"] == "stored" for d in first)
    assert all(isinstance(d, dict) and d["index"] == "upserted" for d in first)
    assert calls == 3 and rdb.xlen(EVENTS_STREAM) == 3
    [[hit]] = resources.index().neighbours("category", np.asarray([_vector(1)]), 1)
    assert (hit.ticket_id, hit.label) == ("1", "label1")
    assert not rdb.keys(written_key("category", "api", "*", "r1") + ":lease"), "a lease outlived"


def test_a_model_never_overwrites_a_human_label(rdb: redis.Redis) -> None:
    t = Ticket(id="1", body="x", revision="h")
    write_back_one(t, result_for(t, "human-label", "human"), [1.0, 0.0, 0.0, 0.0])
    model = t.model_copy(update={"revision": "m"})
    other = Ticket(id="2", body="y", revision="m")
    done = write_back(
        [(model, result_for(model, "model-label"), []), (other, result_for(other, "b"), [])]
    )
    assert isinstance(done[0], dict) and done[0]["store"] == "kept-human-label"
    assert isinstance(done[1], dict) and done[1]["store"] == "stored"
    stored = get_result("1")
    assert stored is not None and stored.label == "human-label"


@pytest.mark.parametrize(("status", "error"), [(503, SinkUnavailable), (400, SinkRejected)])
def test_a_failing_ticket_leaves_the_batch_and_its_neighbours_go_on(
    rdb: redis.Redis, status: int, error: type
) -> None:
    with CallbackReceiver() as good, CallbackReceiver() as bad:
        bad.failing.set()
        bad.fail_status = status
        items = _batch(good.url)
        broken = Ticket.model_validate({**items[1][0].model_dump(), "callback": bad.url})
        items[1] = (broken, items[1][1], items[1][2])
        done = write_back(items)
        assert isinstance(done[1], error)
        assert isinstance(done[0], dict) and isinstance(done[2], dict)
        assert done[0]["callback"] == done[2]["callback"] == "http 200"
        # Its retry (alone) redoes only what had not finished, and its lease is free for it.
        bad.failing.clear()
        retried = write_back_one(broken, items[1][1], items[1][2])
    assert retried["callback"] == "http 200" and retried["index"] == "upserted"
    assert rdb.xlen(EVENTS_STREAM) == 3 and len(good.calls) == 2 and len(bad.calls) == 1


def test_a_ticket_another_run_holds_is_left_to_it(rdb: redis.Redis) -> None:
    t1, t2 = Ticket(id="1", body="x", revision="r1"), Ticket(id="2", body="y", revision="r1")
    lease = written_key("category", "api", "1", "r1") + ":lease"
    rdb.set(lease, "another run", ex=30)
    done = write_back([(t1, result_for(t1, "a"), []), (t2, result_for(t2, "b"), [])])
    assert isinstance(done[0], WriteInProgress) and 0 < (done[0].retry_after_s or 0) <= 30
    assert isinstance(done[1], dict) and done[1]["store"] == "stored"
    assert rdb.get(lease) == "another run", "a run released a lease that was not its own"
    assert get_result("1") is None


def test_the_same_revision_twice_in_a_batch_is_written_once(rdb: redis.Redis) -> None:
    with CallbackReceiver() as receiver:
        t = Ticket(id="1", body="x", revision="r1", callback=receiver.url)
        done = write_back([(t, result_for(t, "a"), []), (t, result_for(t, "a"), [])])
        calls = len(receiver.calls)
    assert isinstance(done[0], dict) and isinstance(done[1], WriteInProgress)
    assert calls == 1 and rdb.xlen(EVENTS_STREAM) == 1


def test_calls_that_could_outlast_the_time_limit_are_left_to_a_later_run(
    rdb: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 80% of 4 s leaves 3.2 s for calls: the first (1 s) starts with 2 s to spare, the second
    # would end past the deadline at worst (1 s + a 2.5 s timeout), so it waits for a later run.
    monkeypatch.setenv("TRIAGE_WRITEBACK_TIME_LIMIT_S", "4")
    monkeypatch.setenv("TRIAGE_CALLBACK_TIMEOUT_S", "2.5")
    monkeypatch.setenv("TRIAGE_SOURCE_TIMEOUT_S", "1")
    worker_settings.get_settings.cache_clear()
    with CallbackReceiver() as receiver:
        receiver.delay_s = 1.0
        items = _batch(receiver.url, 2)
        done = write_back(items)
        assert isinstance(done[0], dict) and done[0]["callback"] == "http 200"
        assert isinstance(done[1], SinkUnavailable) and len(receiver.calls) == 1
        again = write_back(items)
        calls = len(receiver.calls)
    assert calls == 2 and all(isinstance(d, dict) and d["callback"] == "http 200" for d in again)
    assert rdb.xlen(EVENTS_STREAM) == 2, "the store and event steps were redone"


def test_callback_failures_are_classified_and_a_retry_redoes_only_the_rest(
    rdb: redis.Redis,
) -> None:
    for status, error in [(503, SinkUnavailable), (429, SinkUnavailable), (400, SinkRejected)]:
        with CallbackReceiver() as receiver:
            receiver.failing.set()
            receiver.fail_status = status
            t = Ticket(id=f"s{status}", body="x", callback=receiver.url)
            with pytest.raises(error):
                write_back_one(t, result_for(t, "a"), [])
            receiver.failing.clear()
            done = write_back_one(t, result_for(t, "a"), [])
        assert done["callback"] == "http 200"
    assert rdb.xlen(EVENTS_STREAM) == 3


@pytest.mark.slow
def test_human_feedback_without_vector_is_embedded_and_indexed(rdb: redis.Redis) -> None:
    """Feedback comes from the HTTP app, which has no models: the index target embeds it."""
    from worker import resources

    t = Ticket(id="7", source="helpdesk", body="my card has still not arrived", revision="h1")
    assert write_back_one(t, result_for(t, "card_arrival", "human"), [])["index"] == "upserted"
    vector = resources.embedder().embed(["my card has still not arrived"])
    [[hit]] = resources.index().neighbours("category", np.asarray(vector), 1)
    assert (hit.ticket_id, hit.label, hit.set_by) == ("7", "card_arrival", "human")
