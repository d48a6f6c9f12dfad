"""Reading a request body the routes parse themselves: capped while it streams, then JSON.

The ticket and webhook routes take the raw bytes (a webhook's signature covers exactly them),
so FastAPI's own body parsing is not used there.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request

from producer.errors import InvalidTicket
from producer.http.errors import TooLarge


async def read_capped(request: Request, cap: int) -> bytes:
    """The raw body, refused (413) as soon as it passes `cap`, before it is all read."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > cap:
        raise TooLarge(f"body of {length} bytes is over the {cap}-byte limit")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > cap:
            raise TooLarge(f"body is over the {cap}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(body: bytes) -> Any:
    """The body as JSON; anything else is a field-level `InvalidTicket` (422), never a crash."""
    try:
        return json.loads(body.decode("utf-8"))
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
