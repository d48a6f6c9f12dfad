"""The HTTP app with a real Redis: our ticket API, the four webhook schemes, results, health."""

from __future__ import annotations

import json
import time

import pytest
from pydantic import ValidationError
from starlette.testclient import TestClient

from producer.http import create_app
from producer.http.settings import HttpSettings
from producer.names import result_key
from producer.schemas import TriageResult
from producer.settings import ProducerSettings
from tests.producer.http_support import (
    AUTH,
    IDS,
    PAYLOADS,
    SECRETS,
    http_settings,
    kwargs_of,
    post,
    queued,
    sign,
)


@pytest.fixture
def client(redis_url: str, tmp_path):
    app = create_app(http_settings(tmp_path), ProducerSettings(redis_url=redis_url))
    with TestClient(app) as c:
        yield c


@pytest.mark.parametrize("source", list(SECRETS))
def test_valid_delivery_is_enqueued_once(client, rdb, source) -> None:
    body = json.dumps(PAYLOADS[source]).encode()
    headers = sign(source, body)
    first = post(client, source, body, headers)
    assert first.status_code == 202, first.text
    assert first.json() == {"id": IDS[source], "source": source, "duplicate": False}
    replay = post(client, source, body, headers)
    assert replay.status_code == 200
    [message] = queued(rdb)
    assert message["headers"]["task"] == "triage.classify"
    ticket = kwargs_of(message)["ticket"]
    assert ticket["id"] == IDS[source] and ticket["source"] == source
    assert "two weeks" in ticket["body"] and ticket["subject"] == "Card not arrived"
    # The dedupe key is the webhook's channel: a ticket API caller cannot pre-claim it.
    assert rdb.keys(f"triage:enqueued:webhook%3A{source}:*")


@pytest.mark.parametrize("source", list(SECRETS))
def test_rotated_old_key_still_verifies(client, rdb, source) -> None:
    body = json.dumps(PAYLOADS[source]).encode()
    assert post(client, source, body, sign(source, body, key="old-key")).status_code == 202


@pytest.mark.parametrize("source", list(SECRETS))
def test_bad_signature_and_reserialised_body_are_refused(client, rdb, source) -> None:
    body = json.dumps(PAYLOADS[source]).encode()
    assert post(client, source, body, sign(source, body, key="wrong")).status_code == 401
    reserialised = json.dumps(PAYLOADS[source], indent=2).encode()
    assert post(client, source, reserialised, sign(source, body)).status_code == 401
    assert post(client, source, body, {}).status_code == 401
    assert queued(rdb) == []


@pytest.mark.parametrize("source", ["zendesk", "generic"])
def test_expired_timestamp_is_refused(client, rdb, source) -> None:
    body = json.dumps(PAYLOADS[source]).encode()
    old = time.time() - 3600
    assert post(client, source, body, sign(source, body, stamp=old)).status_code == 401
    assert queued(rdb) == []


@pytest.mark.parametrize("source", list(SECRETS))
def test_oversized_non_utf8_and_wrong_types(client, rdb, source) -> None:
    big = b'{"pad": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    assert post(client, source, big, sign(source, big)).status_code == 413
    latin = json.dumps(PAYLOADS[source]).replace("Card", "Caf\u00e9").encode("latin-1")
    assert post(client, source, latin, sign(source, latin, delivery="2")).status_code == 422
    wrong = _wrong_types(source)
    response = post(client, source, wrong, sign(source, wrong, delivery="3"))
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["field"]
    assert queued(rdb) == []


def _wrong_types(source: str) -> bytes:
    payload = json.loads(json.dumps(PAYLOADS[source]))
    if source == "github":
        payload["issue"]["number"] = "seven"
    elif source == "zendesk":
        payload["ticket"]["id"] = [1]
    elif source == "jira":
        payload["issue"]["key"] = 1
    else:
        payload["id"] = 5
    return json.dumps(payload).encode()


def test_our_own_label_events_are_ignored(client, rdb) -> None:
    body = json.dumps({**PAYLOADS["github"], "action": "labeled"}).encode()
    assert post(client, "github", body, sign("github", body)).status_code == 200
    changelog = {
        **PAYLOADS["jira"],
        "webhookEvent": "jira:issue_updated",
        "changelog": {"items": [{"field": "labels"}]},
    }
    body = json.dumps(changelog).encode()
    assert post(client, "jira", body, sign("jira", body)).status_code == 200
    assert queued(rdb) == []


def test_broker_down_answers_503_and_nothing_is_half_done(redis_url, rdb, tmp_path) -> None:
    down = ProducerSettings(redis_url="redis://127.0.0.1:1/0", broker_timeout_s=0.2)
    with TestClient(create_app(http_settings(tmp_path), down)) as c:
        body = json.dumps(PAYLOADS["github"]).encode()
        response = post(c, "github", body, sign("github", body))
        assert response.status_code == 503 and response.headers["Retry-After"]
        assert c.get("/healthz").status_code == 503
    # The same delivery, once Redis is back, is taken (its id was not kept as seen).
    with TestClient(
        create_app(http_settings(tmp_path), ProducerSettings(redis_url=redis_url))
    ) as c:
        assert post(c, "github", body, sign("github", body)).status_code == 202


def test_a_source_without_secret_refuses_to_start(tmp_path) -> None:
    with pytest.raises(ValidationError, match="has no secret"):
        HttpSettings(api_tokens=["t"], webhook_secrets={"github": ["s"]})
    with pytest.raises(ValidationError, match="TRIAGE_API_TOKENS"):
        HttpSettings(webhook_sources=[])
    HttpSettings(webhook_sources=["generic"], insecure_sources=["generic", "api"])


def test_ticket_api_needs_the_token_and_is_all_or_nothing(client, rdb) -> None:
    good = {"id": "1", "body": "card missing"}
    assert client.post("/v1/tickets", json=good).status_code == 401
    assert (
        client.post("/v1/tickets", json=good, headers={"Authorization": "Bearer nope"}).status_code
        == 401
    )
    bad = client.post("/v1/tickets", json=[good, {"body": "x"}], headers=AUTH)
    assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "[1].id"
    assert queued(rdb) == []
    ok = client.post("/v1/tickets", json=[good, {"id": "2", "body": "y"}], headers=AUTH)
    assert ok.status_code == 202 and [a["duplicate"] for a in ok.json()] == [False, False]
    again = client.post("/v1/tickets", json=good, headers=AUTH)
    assert again.json() == [{"id": "1", "source": "api", "duplicate": True}]
    assert len(queued(rdb)) == 2


def test_result_reads_ids_with_slashes_and_hashes(client, rdb) -> None:
    assert client.get("/v1/tickets/api/9", headers=AUTH).status_code == 404
    stored = TriageResult(
        ticket_id="9",
        source="api",
        task="category",
        revision="0",
        label="a",
        confidence=0.9,
        decided_by="classifier",
        status="labelled",
    )
    rdb.set(result_key("category", "api", "9"), stored.model_dump_json())
    got = client.get("/v1/tickets/api/9", headers=AUTH)
    assert got.status_code == 200 and got.json()["label"] == "a"
    # Ids with slashes and hashes (GitHub's) work, percent-encoded.
    gh = stored.model_copy(update={"ticket_id": "acme/app#7", "source": "github"})
    rdb.set(result_key("category", "github", "acme/app#7"), gh.model_dump_json())
    # A plain token reads every source that is not a ticket system; github is granted by name.
    assert client.get("/v1/tickets/github/acme/app%237", headers=AUTH).status_code == 403


def test_health_and_metrics(client, rdb) -> None:
    assert client.get("/healthz").json() == {"broker": "ok", "index": "local"}
    body = json.dumps(PAYLOADS["generic"]).encode()
    post(client, "generic", body, sign("generic", body))
    text = client.get("/metrics", headers=AUTH).text
    assert 'triage_http_requests_total{route="/v1/webhooks/{source}",status="202"} 1.0' in text
    assert 'triage_tickets_total{outcome="enqueued",source="generic"} 1.0' in text
