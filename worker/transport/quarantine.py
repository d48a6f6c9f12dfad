"""Quarantine a queue item that is not a message envelope instead of crashing the worker.

kombu's Redis transport lets a decode error escape its event loop, which stops the whole worker
("Unrecoverable error"): one stray LPUSH onto a queue (by hand, or by another app) would take
every worker down in turn. Our channel decodes with `decode_or_quarantine`: an undecodable item
is copied to the dead-letter list with why, and handed on as an envelope of a content type Celery
refuses, so Celery logs it and acks it.
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


def decode_or_quarantine(raw: bytes, delivery_tag: str = "") -> dict[str, Any]:
    """The envelope in `raw`, or (not JSON) a refusable stand-in after dead-lettering `raw`.

    `delivery_tag` is the tag the pop script recorded the item under, if it did: the stand-in
    carries it, so Celery's ack of the stand-in also clears that record.
    """
    from kombu.transport import redis as kombu_redis
    from kombu.utils.encoding import bytes_to_str

    try:
        payload: dict[str, Any] = kombu_redis.loads(bytes_to_str(raw))
    except ValueError as exc:
        _quarantine(raw, exc)
        return _undecodable_envelope(raw, delivery_tag or str(uuid.uuid4()))
    return payload


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


def _undecodable_envelope(raw: Any, delivery_tag: str) -> dict[str, Any]:
    data = raw if isinstance(raw, bytes) else str(raw).encode()
    return {
        "body": base64.b64encode(data).decode(),
        "content-encoding": "binary",
        "content-type": UNDECODABLE,
        "headers": {},
        "properties": {
            "delivery_tag": delivery_tag,
            "body_encoding": "base64",
            "delivery_info": {"exchange": "", "routing_key": ""},
        },
    }
