"""Write-back sinks against a real Redis and a real HTTP receiver."""

from __future__ import annotations

import pytest
import redis

from producer import Ticket, get_result
from producer.errors import SinkRejected, SinkUnavailable
from producer.names import EVENTS_STREAM
from tests.factories import result_for
from tests.receivers import CallbackReceiver
from worker.sinks import write_back


@pytest.fixture(autouse=True)
def callback_secret(worker_env, monkeypatch: pytest.MonkeyPatch) -> None:
    # Human labels reach the index: `worker_env` gives each test a local Qdrant of its own.
    monkeypatch.setenv("TRIAGE_CALLBACK_SECRET", "s3cret")


def test_each_sink_runs_once_per_revision(rdb: redis.Redis) -> None:
    with CallbackReceiver() as receiver:
        t = Ticket(id="1", body="x", revision="r1", callback=receiver.url)
        first = write_back(t, result_for(t, "a"), [])
        again = write_back(t, result_for(t, "a"), [])
        calls = list(receiver.calls)
    assert first == again and first["store"] == "stored" and first["index"] == "skipped"
    assert len(calls) == 1 and calls[0].signature_valid("s3cret")
    assert rdb.xlen(EVENTS_STREAM) == 1


def test_a_model_never_overwrites_a_human_label(rdb: redis.Redis) -> None:
    t = Ticket(id="1", body="x")
    human = t.model_copy(update={"revision": "h"})
    assert (
        write_back(human, result_for(t, "human-label", "human"), [1.0, 0.0])["index"] == "upserted"
    )
    done = write_back(t.model_copy(update={"revision": "m"}), result_for(t, "model-label"), [])
    assert done["store"] == "kept-human-label"
    stored = get_result("1")
    assert stored is not None and stored.label == "human-label"


@pytest.mark.parametrize(
    ("status", "error"), [(503, SinkUnavailable), (429, SinkUnavailable), (400, SinkRejected)]
)
def test_callback_failures_are_classified(rdb: redis.Redis, status: int, error: type) -> None:
    with CallbackReceiver() as receiver:
        receiver.failing.set()
        receiver.fail_status = status
        t = Ticket(id="1", body="x", callback=receiver.url)
        with pytest.raises(error):
            write_back(t, result_for(t, "a"), [])
        # What succeeded before the failure is not redone on the retry.
        receiver.failing.clear()
        done = write_back(t, result_for(t, "a"), [])
    assert rdb.xlen(EVENTS_STREAM) == 1 and done["callback"] == "http 200"


@pytest.mark.slow
def test_human_feedback_without_vector_is_embedded_and_indexed(rdb: redis.Redis) -> None:
    """Feedback comes from the HTTP app, which has no models: the index sink embeds it."""
    import numpy as np

    from worker import resources

    t = Ticket(id="7", source="helpdesk", body="my card has still not arrived", revision="h1")
    assert write_back(t, result_for(t, "card_arrival", "human"), [])["index"] == "upserted"
    vector = resources.embedder().embed(["my card has still not arrived"])
    [[hit]] = resources.index().neighbours("category", np.asarray(vector), 1)
    assert (hit.ticket_id, hit.label, hit.set_by) == ("7", "card_arrival", "human")
