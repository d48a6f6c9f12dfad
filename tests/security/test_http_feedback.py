"""Feedback and people's labels at the HTTP edge (docs/security.md, "Feedback and people's
labels"): the credential is checked before a byte of the body is read; feedback is for a ticket
the service knows (404), a configured task and a label of its set (422 naming what is allowed);
its write-back is one message built from the stored ticket, never from the request. A person's
relabel in GitHub, Jira or Zendesk is queued for write-back the same way, once per delivery."""

from __future__ import annotations

import json
from typing import Any

import pytest
from starlette.testclient import TestClient
from starlette.types import Message, Receive, Scope, Send

from producer.errors import BrokerUnavailable
from producer.feedback import HumanLabel
from producer.http import create_app, payloads
from producer.http.routes import webhooks
from producer.names import WRITEBACK_QUEUE, ticket_key
from producer.schemas import GitHubIssue, Ticket
from producer.settings import ProducerSettings
from tests.producer.http_support import (
    AUTH,
    BOTS,
    PAYLOADS,
    RELABELS,
    http_settings,
    post,
    queued,
    sign,
    writebacks,
)

STORED = Ticket(
    id="acme/app#7",
    source="github",
    subject="Card not arrived",
    body="two weeks",
    revision="2026-01-01T00:00:00Z",
    origin=GitHubIssue(repo="acme/app", number=7),
)
GH_FEEDBACK = "/v1/tickets/github/acme/app%237/feedback"
DESK = {"Authorization": "Bearer desk-token"}


@pytest.fixture
def client(redis_url: str, tmp_path):
    hs = http_settings(
        tmp_path,
        api_tokens=[
            "api-token",
            {"token": "desk-token", "name": "desk", "feedback": ["*", "github"], "read": ["*"]},
        ],
    )
    with TestClient(create_app(hs, ProducerSettings(redis_url=redis_url, **BOTS))) as c:
        yield c


def store(rdb, ticket: Ticket = STORED) -> None:
    rdb.set(ticket_key(ticket.task, ticket.source, ticket.id), ticket.model_dump_json())


# -- feedback ---------------------------------------------------------------------------------


def test_feedback_for_a_ticket_never_seen_is_404(client, rdb) -> None:
    """Attack: feedback for an issue the service had never seen got 202, and its write-back
    added ``triage:anything`` to that issue."""
    response = client.post(GH_FEEDBACK, json={"label": "lost_card"}, headers=DESK)
    assert response.status_code == 404
    # A plain token gives feedback on no ticket system at all.
    assert client.post(GH_FEEDBACK, json={"label": "lost_card"}, headers=AUTH).status_code == 403
    assert queued(rdb, WRITEBACK_QUEUE) == []


def test_feedback_needs_a_configured_task_and_one_of_its_labels(client, rdb) -> None:
    """Attack: a label outside the label set, or an unknown task, got 202 (and broke training)."""
    store(rdb)
    bad_label = client.post(GH_FEEDBACK, json={"label": "anything"}, headers=DESK)
    assert bad_label.status_code == 422
    [error] = bad_label.json()["detail"]
    assert error["field"] == "label" and error["allowed"] == "card_arrival, lost_card"
    bad_task = client.post(GH_FEEDBACK, json={"label": "lost_card", "task": "mood"}, headers=DESK)
    assert bad_task.status_code == 422
    assert bad_task.json()["detail"][0]["allowed"] == "category, priority"
    for body in ({"label": ""}, {"label": 5}, [], "x", {"task": "category"}):
        assert client.post(GH_FEEDBACK, json=body, headers=DESK).status_code == 422, body
    assert client.post(GH_FEEDBACK, content=b"\xff", headers=DESK).status_code == 422
    assert queued(rdb, WRITEBACK_QUEUE) == []


def test_feedback_writes_back_the_stored_ticket_once_with_who_set_it(client, rdb, tmp_path) -> None:
    store(rdb)
    evil = {
        "label": "lost_card",
        "note": "was card_arrival",
        "subject": "rewritten",
        "body": "rewritten",
        "origin": {"system": "github", "repo": "victim/repo", "number": 1},
        "metadata": {"repo": "victim/repo", "number": 1},
    }
    response = client.post(GH_FEEDBACK, json=evil, headers=DESK)
    assert response.status_code == 202, response.text
    assert response.json()["labelled_by"] == "desk" and response.json()["via"] == "api"
    [item] = writebacks(rdb)  # one message: the one atomic step
    ticket = Ticket.model_validate(item["ticket"])
    assert ticket.origin == STORED.origin and ticket.text == STORED.text
    assert ticket.id == STORED.id and ticket.revision != STORED.revision  # its own revision
    result = item["result"]
    assert (result["label"], result["decided_by"], result["labelled_by"]) == (
        "lost_card",
        "human",
        "desk",
    )
    assert result["reason"] == "was card_arrival"
    # The HTTP app keeps no feedback file of its own: the write-back path records it.
    assert not list(tmp_path.rglob("*.jsonl"))


class BodyReads:
    """An ASGI wrapper counting the body messages the app asked for."""

    def __init__(self, app: Any) -> None:
        self.app, self.reads = app, 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def counted() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                self.reads += 1
            return message

        await self.app(scope, counted, send)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", GH_FEEDBACK),
        ("POST", "/v1/tickets/api/1/feedback"),
        ("POST", "/v1/tickets"),
        ("GET", "/v1/tickets/api/1"),
        ("GET", "/metrics"),
    ],
)
def test_no_body_is_read_before_the_credential(redis_url, tmp_path, method, path) -> None:
    """Attack: a 300 MB feedback POST with no token got 401 only after it was all read (the
    server's memory grew by as much). Here: not one body message is read before the 401."""
    wrapped = BodyReads(create_app(http_settings(tmp_path), ProducerSettings(redis_url=redis_url)))
    with TestClient(wrapped) as c:
        response = c.request(method, path, content=b"x" * 300_000, headers={"Bearer": "no"})
    assert response.status_code == 401 and wrapped.reads == 0


# -- relabels seen through the ticket systems' webhooks -----------------------------------------


@pytest.mark.parametrize("source", ["github", "jira", "zendesk"])
def test_a_persons_relabel_is_queued_for_write_back_once(client, rdb, source) -> None:
    body = json.dumps(RELABELS[source]).encode()
    headers = sign(source, body, delivery=f"relabel-{source}")
    response = post(client, source, body, headers)
    assert response.status_code == 202, response.text
    assert post(client, source, body, headers).status_code == 200  # a redelivery: not again
    [item] = writebacks(rdb)
    result, ticket = item["result"], Ticket.model_validate(item["ticket"])
    assert result["decided_by"] == "human" and result["label"] == "lost_card"
    assert result["via"] == source and result["labelled_by"] in {"alice", "person-1", "77"}
    assert ticket.source == source and ticket.origin is not None  # from the signed payload
    assert queued(rdb) == []  # nothing to classify


def test_the_bots_own_relabel_and_a_label_outside_the_set_are_not_human_labels(client, rdb) -> None:
    own = {**RELABELS["github"], "sender": {"login": BOTS["github_bot_login"]}}
    body = json.dumps(own).encode()
    assert post(client, "github", body, sign("github", body)).status_code == 200
    unknown = {**RELABELS["github"], "label": {"name": "triage:category:anything"}}
    body = json.dumps(unknown).encode()
    response = post(client, "github", body, sign("github", body, delivery="2"))
    assert response.status_code == 422 and response.json()["detail"][0]["field"] == "label"
    assert queued(rdb, WRITEBACK_QUEUE) == []


def test_a_zendesk_relabel_in_tag_form_is_the_label_sets_spelling(client, rdb) -> None:
    relabel = {
        **RELABELS["zendesk"],
        "task": "priority",
        "ticket": {**RELABELS["zendesk"]["ticket"], "tags": "vip triage:priority:high"},
    }
    body = json.dumps(relabel).encode()
    assert post(client, "zendesk", body, sign("zendesk", body)).status_code == 202
    [item] = writebacks(rdb)
    assert item["result"]["label"] == "High" and item["result"]["task"] == "priority"


def test_a_failed_relabel_push_leaves_the_delivery_to_be_retried(client, rdb, monkeypatch) -> None:
    def down(*args: Any, **kwargs: Any) -> str:
        raise BrokerUnavailable("Redis is unreachable")

    body = json.dumps(RELABELS["github"]).encode()
    monkeypatch.setattr(webhooks, "send_writeback", down)
    assert post(client, "github", body, sign("github", body)).status_code == 503
    monkeypatch.undo()
    assert post(client, "github", body, sign("github", body)).status_code == 202
    assert len(writebacks(rdb)) == 1


def test_the_generic_webhook_sets_no_human_label(client, rdb, monkeypatch) -> None:
    """Even if its adapter returned one: only a ticket system's signed webhook brings a person's
    label (the route's own check, behind the adapter's)."""

    def relabel(payload: Any, headers: Any, settings: Any = None) -> HumanLabel:
        ticket = Ticket(id="g-1", source="generic", body="x")
        return HumanLabel(ticket=ticket, label="lost_card", by="mallory", via="generic")

    monkeypatch.setitem(payloads.ADAPTERS, "generic", relabel)
    body = json.dumps(PAYLOADS["generic"]).encode()
    assert post(client, "generic", body, sign("generic", body)).status_code == 403
    assert queued(rdb, WRITEBACK_QUEUE) == []
