"""Who is at the desk: the `Reviewer` dependency (a session cookie, else a redirect to sign in),
the CSRF check every form's POST passes, and the desk's own errors.

A reviewer is an API credential with a `review` scope; its name is the reviewer's name in the
ledger and on every label. Its scope is read from the configuration at each request, so a token
taken out of `TRIAGE_API_TOKENS` signs nobody in any more, whatever its session says.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import parse_qsl, quote

import redis.asyncio as aioredis
from fastapi import Depends, Request

from producer.client import async_redis_client
from producer.http.body import read_capped
from producer.http.credentials import Credential, covers
from producer.http.review import sessions
from producer.http.state import Services, ServicesDep


class SignInRequired(Exception):
    """No valid session: answered with a redirect to the sign-in page (`next` = this page)."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


class DeskError(Exception):
    """What a desk page answers instead of itself: a status and a sentence for the reviewer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Reviewer:
    """A signed-in reviewer: the credential's name, its review scope and the session's CSRF
    token; `sid` is the session cookie's value (to sign out)."""

    name: str
    scope: frozenset[str]
    csrf: str
    sid: str

    def may(self, source: str) -> bool:
        return covers(self.scope, source)

    def require(self, source: str) -> None:
        """A ticket outside the reviewer's scope is not there for them (404, nothing told)."""
        if not self.may(source):
            raise DeskError(404, "no such item on this desk")


async def reviewer(request: Request, services: ServicesDep) -> Reviewer:
    """The signed-in reviewer, or `SignInRequired`."""
    sid = request.cookies.get(sessions.COOKIE, "")
    session = await sessions.load(redis_of(services), sid) if sid else None
    credential = find(services, session.name) if session is not None else None
    if session is None or credential is None or not credential.review:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignInRequired(target)
    return Reviewer(credential.name, credential.review, session.csrf, sid)


ReviewerDep = Annotated[Reviewer, Depends(reviewer)]


async def form(request: Request, services: Services, csrf: str) -> dict[str, str]:
    """The POSTed form (urlencoded, capped at `TRIAGE_MAX_BODY_BYTES`) once its CSRF token
    matches `csrf`; a mismatch is a 403 and nothing else is looked at."""
    body = await read_capped(request, services.http.max_body_bytes)
    try:
        fields = dict(parse_qsl(body.decode("utf-8"), max_num_fields=50))
    except (UnicodeDecodeError, ValueError) as exc:
        raise DeskError(400, "the form could not be read") from exc
    given = fields.get("csrf", "")
    if not csrf or not hmac.compare_digest(given.encode(), csrf.encode()):
        raise DeskError(403, "the form expired or came from another site: reload the page")
    return fields


def find(services: Services, name: str) -> Credential | None:
    """The configured credential called `name`, if it is still configured."""
    return next((c for _, c in services.tokens if c.name == name), None)


def match_token(services: Services, given: str) -> Credential | None:
    """The credential `given` proves; every token is compared in constant time first."""
    raw = given.encode()
    matches = [hmac.compare_digest(token, raw) for token, _ in services.tokens]
    return services.tokens[matches.index(True)][1] if raw and True in matches else None


def login_url(next_path: str) -> str:
    return f"{sessions.PATH}/login?next={quote(safe_next(next_path), safe='/')}"


def safe_next(path: str | None) -> str:
    """Where to go after signing in: a desk path of this site only, never another host."""
    if not path or not path.startswith(sessions.PATH) or "//" in path or "\\" in path:
        return sessions.PATH
    return path


def redis_of(services: Services) -> aioredis.Redis:
    ps = services.producer
    return async_redis_client(ps.resolved_redis_url, ps.broker_timeout_s)
