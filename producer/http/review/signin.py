"""Signing in to the desk: a token with the `review` scope, typed into a form (never put in a
URL), is exchanged for a session cookie (HttpOnly, SameSite=Strict, Secure over https, with
the session's expiry); signing out ends the session. Also the desk's script and style sheet."""

from __future__ import annotations

import logging
import secrets
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from producer.http.review import sessions
from producer.http.review.access import (
    DeskError,
    ReviewerDep,
    form,
    match_token,
    redis_of,
    safe_next,
)
from producer.http.review.pages import HEADERS, HERE, render
from producer.http.state import ServicesDep

log = logging.getLogger(__name__)
router = APIRouter()
#: How long a sign-in form stays valid.
LOGIN_FORM_S = 900
#: Sign-in attempts per second, shared by every app process: a token is not guessed by trying.
LOGIN_RATE_PER_S = 5
STATIC = {"desk.js": "text/javascript", "desk.css": "text/css"}


@router.get("/review/login")
async def login_page(request: Request, next: Annotated[str, Query()] = "") -> HTMLResponse:
    """The sign-in form, with a CSRF token of its own (there is no session yet)."""
    return _login_form(request, safe_next(next))


@router.post("/review/login", response_model=None)
async def login(request: Request, services: ServicesDep) -> Response:
    """A review-scoped token in, a session cookie out; anything else is the form again."""
    fields = await form(request, services, request.cookies.get(sessions.LOGIN_COOKIE, ""))
    target = safe_next(fields.get("next"))
    if not await services.limiter.allow("review-login", LOGIN_RATE_PER_S):
        raise DeskError(429, "too many sign-in attempts; wait a second and try again")
    credential = match_token(services, fields.get("token", "").strip())
    if credential is None or not credential.review:
        log.info("review desk: refused a sign-in (%s)", "no review scope" if credential else "bad")
        return _login_form(request, target, "That token does not open the review desk.", 401)
    sid, _ = await sessions.start(
        redis_of(services), credential.name, services.http.review_session_s
    )
    log.info("review desk: %s signed in", credential.name)
    response = RedirectResponse(target, status_code=303)
    _cookie(response, request, sessions.COOKIE, sid, services.http.review_session_s)
    response.delete_cookie(sessions.LOGIN_COOKIE, path=f"{sessions.PATH}/login")
    return response


@router.post("/review/logout")
async def logout(
    request: Request, reviewer: ReviewerDep, services: ServicesDep
) -> RedirectResponse:
    await form(request, services, reviewer.csrf)
    await sessions.end(redis_of(services), reviewer.sid)
    response = RedirectResponse(f"{sessions.PATH}/login", status_code=303)
    response.delete_cookie(sessions.COOKIE, path=sessions.PATH)
    return response


@router.get("/review/static/{name}")
async def static(name: str) -> Response:
    """The desk's script and style sheet (no build step: the files as they are)."""
    if name not in STATIC:
        raise DeskError(404, "no such file")
    body = (HERE / "static" / name).read_bytes()
    headers = {**HEADERS, "Cache-Control": "no-cache"}
    return Response(body, media_type=STATIC[name], headers=headers)


def _login_form(request: Request, target: str, error: str = "", status: int = 200) -> HTMLResponse:
    csrf = secrets.token_urlsafe(32)
    response = render(request, "login.html", status, csrf=csrf, next=target, error=error)
    _cookie(response, request, sessions.LOGIN_COOKIE, csrf, LOGIN_FORM_S, f"{sessions.PATH}/login")
    return response


def _cookie(
    response: Response,
    request: Request,
    name: str,
    value: str,
    max_age_s: int,
    path: str = sessions.PATH,
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age_s,
        path=path,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
