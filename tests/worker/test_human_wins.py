"""A person's label wins in every target (docs/security.md): once a ticket carries a human label,
a model's result for it is applied nowhere (store, feedback, event, callback, ticket system,
index) and recorded as ``kept-human-label``; a human result always applies. Against a real Redis,
the real write-back path, a local Qdrant, a real callback receiver and a local GitHub."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import redis

from models.index import IndexedTicket, TicketIndex, collection_name, point_id
from producer import Ticket, get_result
from producer.feedback import HumanLabel
from producer.names import EVENTS_STREAM, FEEDBACK_STREAM, label_key, ticket_key
from producer.schemas import GitHubIssue
from tests.factories import result_for
from tests.receivers import CallbackReceiver
from tests.ticket_systems import GitHub
from worker import settings as worker_settings
from worker.writeback.path import TARGETS, write_back, write_back_one

EVERY_TARGET = {target.name for target in TARGETS}


@pytest.fixture
def github(worker_env, monkeypatch: pytest.MonkeyPatch):
    """A local GitHub with issue acme/app#7, the worker pointed at it, callbacks signed."""
    with GitHub() as gh:
        monkeypatch.setenv("TRIAGE_GITHUB_API_URL", gh.url)
        monkeypatch.setenv("TRIAGE_GITHUB_TOKEN", "ghp_test")
        monkeypatch.setenv("TRIAGE_CALLBACK_SECRET", "s3cret")
        worker_settings.get_settings.cache_clear()
        gh.labels[("acme/app", 7)] = ["bug"]
        yield gh
    worker_settings.get_settings.cache_clear()


def _ticket(callback: str, revision: str = "2024-05-01T10:00:00Z") -> Ticket:
    return Ticket(
        id="acme/app#7",
        source="github",
        body="my card has not arrived",
        revision=revision,
        metadata={"labels": ["bug"]},
        callback=callback,  # type: ignore[arg-type]
        origin=GitHubIssue(repo="acme/app", number=7),
    )


def _vector(i: int) -> list[float]:
    return [1.0 if n == i else 0.0 for n in range(4)]


def _human(ticket: Ticket, label: str = "lost_card", by: str = "alice", via: str = "api"):
    return HumanLabel(ticket=ticket, label=label, by=by, via=via).as_writeback()


def _point(ticket: Ticket) -> dict:
    from worker import resources

    client = resources.index()._client
    [point] = client.retrieve(collection_name("category"), [point_id(ticket.source, ticket.id)])
    return dict(point.payload or {})


def _side_effects(rdb: redis.Redis, gh: GitHub, receiver: CallbackReceiver) -> tuple[int, ...]:
    return len(gh.requests), len(receiver.calls), rdb.xlen(EVENTS_STREAM), rdb.xlen(FEEDBACK_STREAM)


def test_a_model_result_after_a_human_label_is_applied_nowhere(
    rdb: redis.Redis, github: GitHub
) -> None:
    with CallbackReceiver() as receiver:
        t = _ticket(receiver.url)
        human_ticket, human = _human(t)
        applied = write_back_one(human_ticket, human, _vector(0))
        assert applied["store"] == "stored" and applied["callback"] == "http 200"
        assert applied["source"] == "labelled" and applied["index"] == "upserted"
        before = _side_effects(rdb, github, receiver)

        newer = t.model_copy(update={"revision": "2024-05-02T10:00:00Z"})
        kept = write_back_one(newer, result_for(newer, "card_arrival"), _vector(1))
        again = write_back_one(newer, result_for(newer, "card_arrival"), _vector(1))  # redelivered
        after = _side_effects(rdb, github, receiver)
    assert kept == again == dict.fromkeys(EVERY_TARGET, "kept-human-label")
    assert after == before, "a model result reached a target after a person's label"
    stored = get_result("acme/app#7", "github")
    assert stored is not None and (stored.label, stored.labelled_by) == ("lost_card", "alice")
    point = _point(t)
    assert (point["label"], point["set_by"], point["labelled_by"]) == (
        "lost_card",
        "human",
        "alice",
    )
    assert point["labelled_at"] == human.decided_at.isoformat()
    assert any("lost_card" in label for label in github.labels[("acme/app", 7)])
    assert not any("card_arrival" in label for label in github.labels[("acme/app", 7)])


def test_a_human_label_always_applies_and_replaces_the_model_point(
    rdb: redis.Redis, github: GitHub
) -> None:
    with CallbackReceiver() as receiver:
        t = _ticket(receiver.url)
        model = write_back_one(t, result_for(t, "card_arrival"), _vector(1))
        assert _point(t)["set_by"] == "model" and model["callback"] == "http 200"
        human_ticket, human = _human(t, by="bob", via="review")
        applied = write_back_one(human_ticket, human, _vector(1))
        point = _point(t)
        # A second person's label later applies too: a human result always does.
        second_ticket, second = _human(t, label="card_arrival", by="carol")
        assert write_back_one(second_ticket, second, _vector(1))["callback"] == "http 200"
        labels = [call.json["label"] for call in receiver.calls]
    assert "kept-human-label" not in applied.values() and applied["source"] == "labelled"
    assert labels == ["card_arrival", "lost_card", "card_arrival"]
    assert (point["label"], point["set_by"], point["labelled_by"]) == ("lost_card", "human", "bob")
    stored = get_result("acme/app#7", "github")
    assert stored is not None and (stored.label, stored.labelled_by) == ("card_arrival", "carol")


def test_a_retried_model_result_overtaken_by_a_person_applies_in_no_target_left(
    rdb: redis.Redis, github: GitHub
) -> None:
    with CallbackReceiver() as receiver:
        t = _ticket(receiver.url)
        receiver.failing.set()
        [failed] = write_back([(t, result_for(t, "card_arrival"), _vector(1))])
        assert isinstance(failed, Exception)  # the callback failed: store, event went through
        receiver.failing.clear()
        human_ticket, human = _human(t)
        write_back_one(human_ticket, human, _vector(1))
        retried = write_back_one(t, result_for(t, "card_arrival"), _vector(1))
        labels = [call.json["label"] for call in receiver.calls]
    assert retried["store"] == "stored"  # done before the person's label, and replaced by it
    assert {retried[n] for n in ("callback", "source", "index")} == {"kept-human-label"}
    assert labels == ["lost_card"], "the model's late callback went out after the person's"
    assert _point(t)["set_by"] == "human"
    stored = get_result("acme/app#7", "github")
    assert stored is not None and stored.label == "lost_card"


def test_each_human_label_is_recorded_once_as_feedback_from_any_channel(
    rdb: redis.Redis, worker_env
) -> None:
    api = Ticket(id="1", source="helpdesk", body="card stolen", revision="r1")
    desk = Ticket(id="2", source="helpdesk", body="pin blocked", revision="r1")
    write_back_one(api, result_for(api, "card_arrival"), _vector(0))  # a model's: no feedback
    labels = [
        _human(api, "lost_card", "alice", "api"),
        _human(desk, "pin_blocked", "bob", "review"),
    ]
    for ticket, result in labels + labels:  # each sent twice (a redelivered message)
        write_back_one(ticket, result, _vector(1))
    entries = [fields for _, fields in rdb.xrange(FEEDBACK_STREAM)]
    assert [(e["ticket_id"], e["label"], e["labelled_by"], e["via"]) for e in entries] == [
        ("1", "lost_card", "alice", "api"),
        ("2", "pin_blocked", "bob", "review"),
    ]
    assert entries[0]["text"] == "card stolen" and entries[0]["task"] == "category"
    assert entries[0]["source"] == "helpdesk" and entries[0]["at"]


def test_the_store_keeps_the_ticket_and_its_verified_origin(
    rdb: redis.Redis, github: GitHub
) -> None:
    with CallbackReceiver() as receiver:
        t = _ticket(receiver.url)
        write_back_one(t, result_for(t, "card_arrival"), _vector(1))
        stored = Ticket.model_validate_json(rdb.get(ticket_key("category", "github", t.id)))
        assert stored.origin == GitHubIssue(repo="acme/app", number=7)
        # A person's label sent without coordinates keeps the stored ones.
        bare = t.model_copy(update={"origin": None})
        human_ticket, human = _human(bare)
        write_back_one(human_ticket, human, _vector(1))
    kept = Ticket.model_validate_json(rdb.get(ticket_key("category", "github", t.id)))
    assert kept.origin == GitHubIssue(repo="acme/app", number=7)
    assert kept.revision == human_ticket.revision
    assert rdb.hget(label_key("category", "github", t.id), "labelled_by") == "alice"


def test_a_model_upsert_never_replaces_a_human_point(tmp_path) -> None:
    index = TicketIndex(path=tmp_path / "qdrant")
    vectors = np.eye(4, dtype=np.float32)[:2]
    human = IndexedTicket("1", "api", "lost_card", "x", "human", "alice", "2024-05-01T10:00:00")
    index.upsert("category", [human, IndexedTicket("2", "api", "a", "y")], vectors)
    index.upsert(
        "category",
        [IndexedTicket("1", "api", "card_arrival", "x"), IndexedTicket("2", "api", "b", "y")],
        vectors,
    )
    hits = index.neighbours("category", vectors, 1)
    index.close()
    assert [(h[0].label, h[0].set_by) for h in hits] == [("lost_card", "human"), ("b", "model")]


def test_a_human_and_a_model_result_racing_leave_the_human_label(
    rdb: redis.Redis, worker_env
) -> None:
    for n in range(10):
        t = Ticket(id=f"race-{n}", body="card", revision="5")
        human_ticket, human = _human(t)
        newer = t.model_copy(update={"revision": "6"})
        runs = [
            threading.Thread(target=write_back_one, args=(human_ticket, human, _vector(0))),
            threading.Thread(
                target=write_back_one,
                args=(newer, result_for(newer, "card_arrival"), _vector(1)),
            ),
        ]
        for run in runs:
            run.start()
        for run in runs:
            run.join()
        stored = get_result(t.id)
        assert stored is not None and stored.label == "lost_card", n


def test_names_and_labels_beyond_ascii_reach_the_label_state_and_the_event_as_sent(
    rdb: redis.Redis, worker_env
) -> None:
    # The gate and the event stream take a batch's fields as JSON inside one script call.
    t = Ticket(id="ü-1", source="helpdesk", body="kárta 🚀", revision="r1")
    ticket, result = _human(t, "carte_perdue_é", "zoë 🦊", "review")
    write_back_one(ticket, result, _vector(1))
    state = rdb.hgetall(label_key("category", "helpdesk", "ü-1"))
    assert (state["label"], state["labelled_by"]) == ("carte_perdue_é", "zoë 🦊")
    model = t.model_copy(update={"revision": "r2"})
    assert write_back_one(model, result_for(model, "x"), _vector(0))["event"] == "kept-human-label"
    [(_, event)] = rdb.xrange(EVENTS_STREAM)
    assert (event["ticket_id"], event["label"]) == ("ü-1", "carte_perdue_é")
