"""The desk's routers in one, and how the app answers a missing sign-in and a desk error."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from producer.http.review import desk, signin, stats_page
from producer.http.review.access import DeskError, SignInRequired, login_url
from producer.http.review.pages import render

router = APIRouter(include_in_schema=False)
for _part in (signin.router, desk.router, stats_page.router):
    router.include_router(_part)


def install(app: FastAPI) -> None:
    app.include_router(router)
    app.exception_handler(SignInRequired)(_sign_in)
    app.exception_handler(DeskError)(_desk_error)


async def _sign_in(_: Request, exc: SignInRequired) -> RedirectResponse:
    return RedirectResponse(login_url(exc.next_path), status_code=303)


async def _desk_error(request: Request, exc: DeskError) -> HTMLResponse:
    return render(request, "error.html", exc.status, status=exc.status, message=exc.message)
