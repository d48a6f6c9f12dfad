"""The HTTP app with a real Redis: our ticket API, the four webhook schemes, results, feedback."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import UTC, datetime

import pytest
import redis
from pydantic import ValidationError
from starlette.testclient import TestClient

from producer.http import create_app
from producer.http.settings import HttpSettings
from producer.names import CLASSIFY_QUEUE, WRITEBACK_QUEUE, result_key
from producer.schemas import TriageResult
from producer.settings import ProducerSettings

SECRETS = {"github": "gh-s", "zendesk": "zd-s", "jira": "ji-s", "generic": "ge-s"}
TOKEN = "api-token"


def http_settings(tmp_path, **extra) -> HttpSettings:
    return HttpSettings(
        api_tokens=[TOKEN],
        webhook_secrets={s: ["old-key", k] for s, k in SECRETS.items()},
        feedback_path=tmp_path / "feedback.jsonl",
        max_body_bytes=64 * 1024,
        **extra,
    )


@pytest.fixture
def client(redis_url: str, tmp_path):
    app = create_app(http_settings(tmp_path), ProducerSettings(redis_url=redis_url))
    with TestClient(app) as c:
        yield c


def queued(rdb: redis.Redis, queue: str = CLASSIFY_QUEUE) -> list[dict]:
    return [json.loads(m) for m in rdb.lrange(queue, 0, -1)]


# -- signing, as each system does it ---------------------------------------------------------


def sign(source: str, body: bytes, *, stamp: float | None = None, key: str | None = None) -> dict:
    key_b = (key or SECRETS[source]).encode()
    now = stamp if stamp is not None else time.time()
    if source == "github":
        sig = hmac.new(key_b, body, hashlib.sha256).hexdigest()
        return {
            "X-Hub-Signature-256": f"sha256={sig}",
            "X-GitHub-Event": "issues",
            "X-GitHub-Delivery": "d-1",
        }
    if source == "jira":
        sig = hmac.new(key_b, body, hashlib.sha256).hexdigest()
        return {"X-Hub-Signature": f"sha256={sig}", "X-Atlassian-Webhook-Identifier": "d-1"}
    if source == "zendesk":
        ts = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        sig = base64.b64encode(
            hmac.new(key_b, ts.encode() + body, hashlib.sha256).digest()
        ).decode()
        return {
            "X-Zendesk-Webhook-Signature": sig,
            "X-Zendesk-Webhook-Signature-Timestamp": ts,
            "X-Zendesk-Webhook-Invocation-Id": "d-1",
        }
    sig = hmac.new(key_b, f"{int(now)}.".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Triage-Signature": f"t={int(now)},v1={sig}"}


PAYLOADS = {
    "github": {
        "action": "opened",
        "issue": {
            "number": 7,
            "title": "Card not arrived",
            "body": "two weeks",
            "labels": [{"name": "bug"}],
            "updated_at": "2026-01-01T00:00:00Z",
        },
        "repository": {"full_name": "acme/app"},
    },
    "zendesk": {
        "ticket": {
            "id": 123,
            "subject": "Card not arrived",
            "description": "two weeks",
            "tags": "vip late",
            "updated_at": "2026-01-01",
        }
    },
    "jira": {
        "webhookEvent": "jira:issue_created",
        "issue": {
            "key": "OPS-1",
            "fields": {
                "summary": "Card not arrived",
                "description": {
                    "type": "doc",
                    "content": [
                        {"type": "paragraph", "content": [{"type": "text", "text": "two weeks"}]}
                    ],
                },
                "labels": [],
                "updated": "2026-01-01",
            },
        },
    },
    "generic": {"id": "g-1", "subject": "Card not arrived", "body": "two weeks", "revision": "1"},
}
IDS = {"github": "acme/app#7", "zendesk": "123", "jira": "OPS-1", "generic": "g-1"}


def post(client, source: str, body: bytes, headers: dict):
    return client.post(
        f"/v1/webhooks/{source}",
        content=body,
        headers={"Content-Type": "application/json", **headers},
    )


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
    ticket = json.loads(base64.b64decode(message["body"]))[1]["ticket"]
    assert ticket["id"] == IDS[source] and ticket["source"] == source
    assert "two weeks" in ticket["body"] and ticket["subject"] == "Card not arrived"


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
    assert (
        post(client, source, latin, sign(source, latin) | _fresh_delivery("2")).status_code == 422
    )
    wrong = _wrong_types(source)
    response = post(client, source, wrong, sign(source, wrong) | _fresh_delivery("3"))
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["field"]
    assert queued(rdb) == []


def _fresh_delivery(n: str) -> dict:
    return {
        "X-GitHub-Delivery": n,
        "X-Atlassian-Webhook-Identifier": n,
        "X-Zendesk-Webhook-Invocation-Id": n,
    }


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
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert (
        client.post("/v1/tickets", json=good, headers={"Authorization": "Bearer nope"}).status_code
        == 401
    )
    bad = client.post("/v1/tickets", json=[good, {"body": "x"}], headers=auth)
    assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "[1].id"
    assert queued(rdb) == []
    ok = client.post("/v1/tickets", json=[good, {"id": "2", "body": "y"}], headers=auth)
    assert ok.status_code == 202 and [a["duplicate"] for a in ok.json()] == [False, False]
    again = client.post("/v1/tickets", json=good, headers=auth)
    assert again.json() == [{"id": "1", "source": "api", "duplicate": True}]
    assert len(queued(rdb)) == 2


def test_result_and_feedback(client, rdb, tmp_path) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert client.get("/v1/tickets/api/9", headers=auth).status_code == 404
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
    got = client.get("/v1/tickets/api/9", headers=auth)
    assert got.status_code == 200 and got.json()["label"] == "a"

    response = client.post(
        "/v1/tickets/api/9/feedback", json={"label": "b", "body": "card missing"}, headers=auth
    )
    assert response.status_code == 202, response.text
    [message] = queued(rdb, WRITEBACK_QUEUE)
    assert message["headers"]["task"] == "triage.writeback"
    kwargs = json.loads(base64.b64decode(message["body"]))[1]
    assert kwargs["result"]["decided_by"] == "human" and kwargs["result"]["label"] == "b"
    [line] = (tmp_path / "feedback.jsonl").read_text().splitlines()
    assert json.loads(line)["label"] == "b" and json.loads(line)["text"] == "card missing"
    # Ids with slashes and hashes (GitHub's) work, percent-encoded.
    gh = stored.model_copy(update={"ticket_id": "acme/app#7", "source": "github"})
    rdb.set(result_key("category", "github", "acme/app#7"), gh.model_dump_json())
    got = client.get("/v1/tickets/github/acme/app%237", headers=auth)
    assert got.status_code == 200 and got.json()["ticket_id"] == "acme/app#7"
    fb = client.post(
        "/v1/tickets/github/acme/app%237/feedback", json={"label": "c", "body": "x"}, headers=auth
    )
    assert fb.status_code == 202 and fb.json()["ticket_id"] == "acme/app#7"
    # Without the ticket's text, feedback cannot be indexed or trained on.
    assert (
        client.post("/v1/tickets/api/9/feedback", json={"label": "b"}, headers=auth).status_code
        == 422
    )


def test_health_and_metrics(client, rdb) -> None:
    assert client.get("/healthz").json() == {"broker": "ok", "index": "local"}
    body = json.dumps(PAYLOADS["generic"]).encode()
    post(client, "generic", body, sign("generic", body))
    text = client.get("/metrics").text
    assert 'triage_http_requests_total{route="/v1/webhooks/{source}",status="202"} 1.0' in text
    assert 'triage_tickets_total{outcome="enqueued",source="generic"} 1.0' in text


def test_rate_limit(redis_url, rdb, tmp_path) -> None:
    app = create_app(
        http_settings(tmp_path, webhook_rate_per_s=2), ProducerSettings(redis_url=redis_url)
    )
    with TestClient(app) as c:
        statuses = [post(c, "generic", b"{}", {}).status_code for _ in range(5)]
    assert 429 in statuses and statuses[0] == 401
