"""Reading a request body the routes parse themselves: capped while it streams, then JSON.

The routes take the raw bytes (a webhook's signature covers exactly them; the API reads only
once the token is checked), so FastAPI's own body parsing is not used.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request
from starlette.requests import ClientDisconnect

from producer.errors import InvalidTicket
from producer.http.errors import ClientGone, TooLarge


async def read_capped(request: Request, cap: int) -> bytes:
    """The raw body, refused (413) as soon as it passes `cap`, before it is all read."""
    length = request.headers.get("content-length", "")
    if length.isascii() and length.isdigit() and int(length[:20]) > cap:
        raise TooLarge(f"body of {length[:20]} bytes is over the {cap}-byte limit")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > cap:
                raise TooLarge(f"body is over the {cap}-byte limit")
            chunks.append(chunk)
    except ClientDisconnect as exc:
        raise ClientGone() from exc
    return b"".join(chunks)


def parse_json(body: bytes) -> Any:
    """The body as JSON; anything else is a field-level `InvalidTicket` (422), never a crash."""
    try:
        return json.loads(body.decode("utf-8"), parse_constant=_no_constant)
    except UnicodeDecodeError as exc:
        raise InvalidTicket("body is not UTF-8", [{"field": "body", "error": "not UTF-8"}]) from exc
    except json.JSONDecodeError as exc:
        raise InvalidTicket(
            f"body is not JSON: {exc}", [{"field": "body", "error": f"not JSON: {exc.msg}"}]
        ) from exc
    except RecursionError as exc:  # "[[[[..." of a few kB exhausts the parser's stack
        raise InvalidTicket(
            "body is nested too deeply", [{"field": "body", "error": "nested too deeply"}]
        ) from exc
    except ValueError as exc:  # an integer past Python's 4,300 digits, NaN, Infinity
        raise InvalidTicket(
            f"body holds an unusable number: {exc}", [{"field": "body", "error": str(exc)}]
        ) from exc


def openapi_body(schema: dict[str, Any]) -> dict[str, Any]:
    """A route's `openapi_extra` describing the JSON body it reads itself."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")
