"""Webhook signature schemes, one function per source, all over the raw body bytes.

Each returns a `Verified`: which configured key matched (so the caller can apply that key's
bindings and limits) and the signed timestamp when the scheme has one (so the caller can check
its window); otherwise it raises `SignatureInvalid`. Any configured key may match (key
rotation), and every comparison is made, in constant time, before looking at which matched.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from producer.errors import SignatureInvalid


@dataclass(frozen=True, slots=True)
class Verified:
    #: The matching key's place in the source's configured keys (0-based).
    key: int
    #: The signed time (unix seconds), when the scheme signs one.
    stamp: float | None = None


Verifier = Callable[[Mapping[str, str], bytes, list[bytes]], Verified]

#: The header carrying each source's delivery id, for dedupe (generic: the signature itself).
DELIVERY_HEADERS = {
    "github": "x-github-delivery",
    "jira": "x-atlassian-webhook-identifier",
    "zendesk": "x-zendesk-webhook-invocation-id",
    "generic": "x-triage-delivery",
}


def github(headers: Mapping[str, str], body: bytes, secrets: list[bytes]) -> Verified:
    """``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>``; no timestamp."""
    return Verified(
        _hex_prefixed(headers.get("x-hub-signature-256"), body, secrets, "X-Hub-Signature-256")
    )


def jira(headers: Mapping[str, str], body: bytes, secrets: list[bytes]) -> Verified:
    """Jira Cloud's ``X-Hub-Signature: sha256=<hex HMAC-SHA256 of the body>``."""
    return Verified(_hex_prefixed(headers.get("x-hub-signature"), body, secrets, "X-Hub-Signature"))


def zendesk(headers: Mapping[str, str], body: bytes, secrets: list[bytes]) -> Verified:
    """Base64 HMAC-SHA256 of ``<timestamp><body>``, the timestamp in its own header."""
    signature = headers.get("x-zendesk-webhook-signature")
    stamp = headers.get("x-zendesk-webhook-signature-timestamp")
    if not signature or not stamp:
        raise SignatureInvalid("missing X-Zendesk-Webhook-Signature or its timestamp")
    given = signature.encode()
    key = _first(
        [
            hmac.compare_digest(
                base64.b64encode(hmac.new(s, stamp.encode() + body, hashlib.sha256).digest()),
                given,
            )
            for s in secrets
        ],
        "X-Zendesk-Webhook-Signature does not match the body",
    )
    try:
        return Verified(key, datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp())
    except (ValueError, OverflowError) as exc:
        raise SignatureInvalid("X-Zendesk-Webhook-Signature-Timestamp is not ISO 8601") from exc


def generic(headers: Mapping[str, str], body: bytes, secrets: list[bytes]) -> Verified:
    """``X-Triage-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">`` (Stripe-style).

    Several ``v1=`` entries may be sent, one per key, while the sender rotates its key.
    """
    header = headers.get("x-triage-signature") or ""
    parts = [p.split("=", 1) for p in header.split(",") if "=" in p]
    stamps = [v for k, v in parts if k.strip() == "t"]
    given = [v.strip().encode() for k, v in parts if k.strip() == "v1"]
    if len(stamps) != 1 or not given:
        raise SignatureInvalid("missing or malformed X-Triage-Signature (t=<unix>,v1=<hex>)")
    text = stamps[0].strip()
    if not (text.isascii() and text.isdigit() and len(text) <= 12):
        raise SignatureInvalid("X-Triage-Signature t= is not a unix time")
    signed = f"{int(text)}.".encode() + body
    expected = [hmac.new(s, signed, hashlib.sha256).hexdigest().encode() for s in secrets]
    # Compare every pair, so timing does not tell which key or entry matched.
    matched = [sum(hmac.compare_digest(e, g) for g in given) > 0 for e in expected]
    return Verified(_first(matched, "X-Triage-Signature does not match the body"), int(text))


VERIFIERS: dict[str, Verifier] = {
    "github": github,
    "jira": jira,
    "zendesk": zendesk,
    "generic": generic,
}


def _hex_prefixed(header: str | None, body: bytes, secrets: list[bytes], name: str) -> int:
    if not header or not header.startswith("sha256="):
        raise SignatureInvalid(f"missing or malformed {name} (sha256=<hex>)")
    given = header.removeprefix("sha256=").strip().encode()
    expected = [hmac.new(s, body, hashlib.sha256).hexdigest().encode() for s in secrets]
    return _first(
        [hmac.compare_digest(e, given) for e in expected], f"{name} does not match the body"
    )


def _first(matched: list[bool], message: str) -> int:
    """The first matching key's place, once every comparison is made."""
    if True not in matched:
        raise SignatureInvalid(message)
    return matched.index(True)
