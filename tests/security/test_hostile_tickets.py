"""Tickets at the size limits, empty, with NUL bytes, mixed scripts and emoji: each is taken or
refused with a clear, field-level error, at every door (the schema, `enqueue`, the HTTP app), and
never crashes anything. (Through a real worker: the edge tickets of the poison fault test.)"""

from __future__ import annotations

import html
import json
import time
from typing import Any

import pytest
import redis
from starlette.testclient import TestClient

from models.frontier.prompt import user_message
from producer import InvalidTicket, Ticket, enqueue_many
from producer.http import create_app
from producer.http.settings import HttpSettings
from producer.names import CLASSIFY_QUEUE
from producer.schemas import (
    MAX_BODY_CHARS,
    MAX_ID_CHARS,
    MAX_METADATA_BYTES,
    MAX_METADATA_DEPTH,
    MAX_SUBJECT_CHARS,
)
from producer.settings import ProducerSettings


def nested(depth: int) -> dict[str, Any]:
    node: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        node = {"a": node}
    return node


TAKEN: dict[str, dict[str, Any]] = {
    "body at the limit": {"body": "b" * MAX_BODY_CHARS},
    "subject at the limit": {"subject": "s" * MAX_SUBJECT_CHARS},
    "id at the limit": {"id": "i" * MAX_ID_CHARS, "body": "x"},
    "emoji": {"body": "💳❓ card 🙃 not here 📬👀🏳️‍🌈 👨‍👩‍👧"},
    "mixed scripts": {"body": "Карта не пришла. カードが届きません。 البطاقة لم تصل. 卡没到"},
    "zero-width and bidi": {"body": "card\u200b\u200d\u2060\ufeff \u202elost\u202c \u2066x\u2069"},
    "one character": {"body": "?"},
    "metadata as deep as allowed": {"body": "x", "metadata": nested(MAX_METADATA_DEPTH)},
    "control characters": {"body": "line\x01\x02\x1b[31mred\x7f\r\n\ttab"},
    "lone surrogate escaped": {"body": "bad \\ud800 surrogate"},
}
REFUSED: dict[str, tuple[dict[str, Any], str, str]] = {
    "empty": ({"subject": "", "body": ""}, "ticket", "subject or a body"),
    "only whitespace": ({"subject": "  \n", "body": "\t "}, "ticket", "subject or a body"),
    "body over the limit": ({"body": "b" * (MAX_BODY_CHARS + 1)}, "body", "at most"),
    "subject over the limit": ({"subject": "s" * (MAX_SUBJECT_CHARS + 1)}, "subject", "at most"),
    "id over the limit": ({"id": "i" * (MAX_ID_CHARS + 1), "body": "x"}, "id", "at most"),
    "NUL in the body": ({"body": "card\x00lost"}, "body", "NUL"),
    "NUL in the subject": ({"subject": "\x00", "body": "x"}, "subject", "NUL"),
    "NUL in the id": ({"id": "a\x00b", "body": "x"}, "id", "control characters"),
    "newline in the id": ({"id": "a\nb", "body": "x"}, "id", "control characters"),
    "escape in the revision": ({"body": "x", "revision": "r\x1b[2J"}, "revision", "control"),
    "metadata too big": (
        {"body": "x", "metadata": {"k": "v" * MAX_METADATA_BYTES}},
        "metadata",
        "limit",
    ),
    "metadata too deep": ({"body": "x", "metadata": nested(300)}, "metadata", "nested"),
    "body not text": ({"body": ["a", "list"]}, "body", "string"),
    "unknown field": ({"body": "x", "priority": "urgent"}, "priority", "not permitted"),
}


def ticket_dict(fields: dict[str, Any]) -> dict[str, Any]:
    return {"id": "edge", "subject": "help", **fields}


@pytest.mark.parametrize("fields", TAKEN.values(), ids=TAKEN.keys())
def test_edge_tickets_are_taken_and_their_text_kept(fields: dict[str, Any]) -> None:
    ticket = Ticket.parse(ticket_dict(fields))
    for name, value in fields.items():
        assert getattr(ticket, name) == (value.strip() if isinstance(value, str) else value)
    # The frontier sees it whole, escaped inside its one block, and quickly.
    started = time.perf_counter()
    message = user_message(ticket, [])
    assert time.perf_counter() - started < 0.5
    assert message.count("<ticket>") == 1 and message.count("</ticket>") == 1
    assert "<" not in message.removeprefix("<ticket>").removesuffix("</ticket>")
    assert ticket.body.strip()[:20] in html.unescape(message) or "[" in message


@pytest.mark.parametrize("case", REFUSED.values(), ids=REFUSED.keys())
def test_bad_tickets_are_refused_naming_the_field(case: tuple[dict[str, Any], str, str]) -> None:
    fields, field, words = case
    with pytest.raises(InvalidTicket) as refused:
        Ticket.parse(ticket_dict(fields))
    assert any(e["field"] == field and words in e["error"] for e in refused.value.errors), (
        refused.value.errors
    )


def test_enqueue_refuses_a_bad_ticket_and_sends_none(redis_url: str, rdb: redis.Redis) -> None:
    good = ticket_dict(TAKEN["emoji"])
    with pytest.raises(InvalidTicket, match="NUL"):
        enqueue_many([good, ticket_dict({"id": "2", "body": "a\x00"})])
    assert rdb.llen(CLASSIFY_QUEUE) == 0
    enqueue_many([ticket_dict(f) | {"id": str(n)} for n, f in enumerate(TAKEN.values())])
    assert rdb.llen(CLASSIFY_QUEUE) == len(TAKEN)


def test_the_http_app_answers_202_413_or_422_never_500(redis_url: str) -> None:
    settings = HttpSettings(
        api_tokens=["t"],
        webhook_sources=["generic"],
        insecure_sources=["generic"],
    )
    app = create_app(settings, ProducerSettings(redis_url=redis_url))
    auth = {"Authorization": "Bearer t", "Content-Type": "application/json"}
    with TestClient(app) as client:
        for fields in TAKEN.values():
            response = client.post("/v1/tickets", json=ticket_dict(fields), headers=auth)
            assert response.status_code == 202, response.text
        for fields, field, _ in REFUSED.values():
            response = client.post("/v1/tickets", json=ticket_dict(fields), headers=auth)
            assert response.status_code in (413, 422), response.text
            if response.status_code == 422:
                assert any(e["field"] == field for e in response.json()["detail"])
        raw = [
            b"",
            b"\x00",
            b"\xff\xfe not utf-8",
            b'{"id": "x", "body": "\\u0000"}',
            b'{"id": "x", "body": "\\ud800"}',
            b"[" * 10_000,
            json.dumps({"id": "x", "body": "b" * 2_000_000}).encode(),
        ]
        for body in raw:
            response = client.post("/v1/tickets", content=body, headers=auth)
            assert response.status_code in (202, 413, 422), (body[:40], response.text)
            response = client.post("/v1/webhooks/generic", content=body, headers=auth)
            assert response.status_code in (202, 413, 422), (body[:40], response.text)
