"""Review desk sessions, kept server-side in Redis: the cookie holds only a random id, Redis the
reviewer's name and the session's CSRF token under a hash of that id, with the session's expiry.

Signing out deletes the key, so a copied cookie stops working at once; a credential removed from
`TRIAGE_API_TOKENS` stops working at its next request (`access`), whatever its session says.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass

import redis
import redis.asyncio as aioredis

from producer.errors import BrokerUnavailable
from producer.names import KEY_PREFIX

#: The session cookie's name; it is sent only to the desk's paths.
COOKIE = "triage_review"
#: The cookie of a sign-in form (its CSRF token, before there is a session).
LOGIN_COOKIE = "triage_review_login"
PATH = "/review"


@dataclass(frozen=True)
class Session:
    """A signed-in reviewer: the credential's name and the token every form must carry."""

    name: str
    csrf: str


async def start(r: aioredis.Redis, name: str, ttl_s: int) -> tuple[str, Session]:
    """A new session for credential `name`: its cookie value and what it holds."""
    sid = secrets.token_urlsafe(32)
    session = Session(name=name, csrf=secrets.token_urlsafe(32))
    body = json.dumps({"name": session.name, "csrf": session.csrf})
    try:
        await r.set(_key(sid), body, ex=ttl_s)
    except redis.RedisError as exc:
        raise BrokerUnavailable(f"Redis is unreachable: {exc}") from exc
    return sid, session


async def load(r: aioredis.Redis, sid: str) -> Session | None:
    """The session of cookie value `sid`; None when unknown, expired or signed out."""
    if not sid or len(sid) > 128:
        return None
    try:
        raw = await r.get(_key(sid))
    except redis.RedisError as exc:
        raise BrokerUnavailable(f"Redis is unreachable: {exc}") from exc
    if raw is None:
        return None
    data = json.loads(raw)
    return Session(name=str(data["name"]), csrf=str(data["csrf"]))


async def end(r: aioredis.Redis, sid: str) -> None:
    """Sign out: the session is gone for every copy of its cookie."""
    try:
        await r.delete(_key(sid))
    except redis.RedisError as exc:
        raise BrokerUnavailable(f"Redis is unreachable: {exc}") from exc


def _key(sid: str) -> str:
    # A hash of the id: whoever reads Redis learns no cookie that signs in.
    return f"{KEY_PREFIX}:review:session:{hashlib.sha256(sid.encode()).hexdigest()}"
