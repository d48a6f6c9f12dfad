"""Rendering the desk's pages: Jinja2 templates with autoescape on (ticket text is data, never
markup), and the headers every page carries (no caching, no framing, scripts only from here)."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined

HERE = Path(__file__).parent
#: No inline script or style runs, whatever a page holds: the second wall behind escaping.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def render(request: Request, template: str, code: int = 200, **context: Any) -> HTMLResponse:
    """`template` filled with `context`, as an HTML response (status `code`) with the desk's
    headers."""
    html = environment().get_template(template).render(request=request, **context)
    return HTMLResponse(html, status_code=code, headers=HEADERS)


@cache
def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["age"] = age
    env.filters["when"] = when
    env.filters["pct"] = pct
    return env


def age(seconds: float | None) -> str:
    """``3d 4h``, ``2h 5m``, ``40s``: how long something has waited."""
    if seconds is None:
        return "none"
    s = int(seconds)
    days, hours, minutes = s // 86400, s % 86400 // 3600, s % 3600 // 60
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m" if minutes else f"{s}s"


def when(at: datetime | None) -> str:
    """A time in UTC to the minute."""
    return "" if at is None else at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def pct(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value * 100:.{digits}f}%"
