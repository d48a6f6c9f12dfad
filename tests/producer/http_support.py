"""What the HTTP app's tests share: settings, each system's signing, known-good payloads, and a
look at what reached the queues."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis

from producer.http.settings import HttpSettings
from producer.names import CLASSIFY_QUEUE, WRITEBACK_QUEUE

SECRETS = {"github": "gh-s", "zendesk": "zd-s", "jira": "ji-s", "generic": "ge-s"}
TOKEN = "api-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
#: The people-and-bot settings the relabel adapters need (`ProducerSettings`).
BOTS = {
    "github_bot_login": "triage-bot",
    "jira_bot_account_id": "bot-account",
    "zendesk_bot_user_id": "4242",
}
LABELS = {
    "category": {"task": "category", "labels": [{"name": "card_arrival"}, {"name": "lost_card"}]},
    "priority": {"task": "priority", "labels": [{"name": "High"}, {"name": "low"}]},
}


def label_files(where: Path) -> dict[str, Path]:
    """Two small label sets, category and priority, written under `where`."""
    paths = {}
    for task, content in LABELS.items():
        paths[task] = where / f"{task}.json"
        paths[task].write_text(json.dumps(content))
    return paths


def http_settings(tmp_path: Path, **extra: Any) -> HttpSettings:
    fields: dict[str, Any] = {
        "api_tokens": [TOKEN],
        "webhook_secrets": {s: ["old-key", k] for s, k in SECRETS.items()},
        "max_body_bytes": 64 * 1024,
        "labels": label_files(tmp_path),
        **extra,
    }
    return HttpSettings(**fields)


def queued(rdb: redis.Redis, queue: str = CLASSIFY_QUEUE) -> list[dict[str, Any]]:
    return [json.loads(m) for m in rdb.lrange(queue, 0, -1)]


def kwargs_of(message: dict[str, Any]) -> dict[str, Any]:
    """A queued Celery message's keyword arguments."""
    kwargs: dict[str, Any] = json.loads(base64.b64decode(message["body"]))[1]
    return kwargs


def writebacks(rdb: redis.Redis) -> list[dict[str, Any]]:
    """Each queued write-back item: ``{"ticket", "result", "vector"}``."""
    return [item for m in queued(rdb, WRITEBACK_QUEUE) for item in kwargs_of(m)["items"]]


def sign(
    source: str,
    body: bytes,
    *,
    stamp: float | None = None,
    key: str | None = None,
    delivery: str = "d-1",
) -> dict[str, str]:
    """The headers `source` sends with `body`, signed as that system signs."""
    key_b = (key or SECRETS[source]).encode()
    now = stamp if stamp is not None else time.time()
    if source == "github":
        sig = hmac.new(key_b, body, hashlib.sha256).hexdigest()
        return {
            "X-Hub-Signature-256": f"sha256={sig}",
            "X-GitHub-Event": "issues",
            "X-GitHub-Delivery": delivery,
        }
    if source == "jira":
        sig = hmac.new(key_b, body, hashlib.sha256).hexdigest()
        return {"X-Hub-Signature": f"sha256={sig}", "X-Atlassian-Webhook-Identifier": delivery}
    if source == "zendesk":
        ts = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        sig = base64.b64encode(
            hmac.new(key_b, ts.encode() + body, hashlib.sha256).digest()
        ).decode()
        return {
            "X-Zendesk-Webhook-Signature": sig,
            "X-Zendesk-Webhook-Signature-Timestamp": ts,
            "X-Zendesk-Webhook-Invocation-Id": delivery,
        }
    sig = hmac.new(key_b, f"{int(now)}.".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Triage-Signature": f"t={int(now)},v1={sig}", "X-Triage-Delivery": delivery}


def post(client: Any, source: str, body: bytes, headers: dict[str, str]) -> Any:
    return client.post(
        f"/v1/webhooks/{source}",
        content=body,
        headers={"Content-Type": "application/json", **headers},
    )


PAYLOADS: dict[str, dict[str, Any]] = {
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
        "sender": {"login": "alice"},
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

#: A person (not the bot) setting one of our labels, as each ticket system reports it.
RELABELS: dict[str, dict[str, Any]] = {
    "github": {
        **PAYLOADS["github"],
        "action": "labeled",
        "label": {"name": "triage:category:lost_card"},
        "issue": {
            **PAYLOADS["github"]["issue"],
            "labels": [{"name": "triage:category:lost_card"}],
        },
        "sender": {"login": "alice"},
    },
    "jira": {
        **PAYLOADS["jira"],
        "webhookEvent": "jira:issue_updated",
        "user": {"accountId": "person-1"},
        "changelog": {
            "items": [
                {
                    "field": "labels",
                    "fromString": "triage:category:card_arrival",
                    "toString": "triage:category:lost_card",
                }
            ]
        },
    },
    "zendesk": {
        "event": "tags_changed",
        "task": "category",
        "updater": {"id": 77},
        "ticket": {**PAYLOADS["zendesk"]["ticket"], "tags": "vip triage:category:lost_card"},
    },
}
