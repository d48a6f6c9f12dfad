"""Quarantine foreign items on a queue instead of crashing the worker.

kombu's Redis transport decodes each popped list item as a JSON envelope and lets a decode error
escape its event loop, which stops the whole worker ("Unrecoverable error"). One stray LPUSH onto
a queue (by hand, or by another app) would take every worker down in turn. We wrap the
transport's `loads`: an undecodable item is copied to the dead-letter list with why, and handed
on as an envelope of a content type Celery refuses, so Celery logs it and acks it.
"""

from __future__ import annotations

import base64
import json
import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from producer.names import DEAD_LETTER_LIST

log = logging.getLogger(__name__)
UNDECODABLE = "application/x-triage-undecodable"


def install() -> None:
    """Idempotent; called when the worker's Celery app is made."""
    from kombu.transport import redis as kombu_redis

    if getattr(kombu_redis.loads, "_triage_guard", False):
        return
    original = kombu_redis.loads

    def loads_or_quarantine(s: Any) -> Any:
        try:
            return original(s)
        except ValueError as exc:
            _quarantine(s, exc)
            return _undecodable_envelope(s)

    loads_or_quarantine._triage_guard = True  # type: ignore[attr-defined]
    kombu_redis.loads = loads_or_quarantine


def _quarantine(raw: Any, exc: Exception) -> None:
    from worker import resources

    text = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
    log.error("a queue item is not a message envelope (%s); dead-lettered: %.200r", exc, text)
    entry = {
        "task": None,
        "reason": f"not a message envelope: {exc}",
        "payload": text,
        "at": datetime.now(UTC).isoformat(),
    }
    try:
        resources.redis_conn().lpush(DEAD_LETTER_LIST, json.dumps(entry))
    except Exception:  # the broker itself is failing: the log line above is the record
        log.exception("could not dead-letter the undecodable item")


def _undecodable_envelope(raw: Any) -> dict[str, Any]:
    data = raw if isinstance(raw, bytes) else str(raw).encode()
    return {
        "body": base64.b64encode(data).decode(),
        "content-encoding": "binary",
        "content-type": UNDECODABLE,
        "headers": {},
        "properties": {
            "delivery_tag": str(uuid.uuid4()),
            "body_encoding": "base64",
            "delivery_info": {"exchange": "", "routing_key": ""},
        },
    }
