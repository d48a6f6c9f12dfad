"""Local HTTP servers that speak the OpenAI and Anthropic wire formats, for tests.

They run in a background thread on 127.0.0.1, so a worker in another process can call them too::

    with OpenAIServer(label="card_arrival") as server:
        settings = ModelSettings(frontier_provider="openai", frontier_url=server.url,
                                 frontier_api_key="test")
        server.answer = sequence(StatusReply(429, retry_after="1"), "card_arrival")
        ...
        assert len(server.requests) == 2

`answer` maps a request body to a reply: a label name (a proper tool call), a `LabelReply`
(confidence, extra arguments), a `RawReply` (any JSON body and status), a `StatusReply` (an error
with an optional Retry-After) or a `DelayReply` (wait, then reply: timeouts).
"""

from __future__ import annotations

import html
import json
import re
import sys
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar


@dataclass(frozen=True)
class LabelReply:
    """A well-formed `set_label` call; `extra` adds arguments beyond label and confidence."""

    label: str
    confidence: float | None = 0.9
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RawReply:
    """Any JSON body with any status."""

    body: Any
    status: int = 200


@dataclass(frozen=True)
class StatusReply:
    """An error status in the provider's error format, with an optional Retry-After header."""

    status: int
    retry_after: str | None = None


@dataclass(frozen=True)
class DelayReply:
    """Wait `seconds` (longer than the client's timeout to provoke one), then send `then`."""

    seconds: float
    then: Reply = "unused"


Reply = str | LabelReply | RawReply | StatusReply | DelayReply
Answer = Callable[[Any], Reply]


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]  # lower-case names
    json: Any


def sequence(*replies: Reply) -> Answer:
    """An answer giving `replies` in turn, then repeating the last one."""
    lock = threading.Lock()
    remaining = list(replies)

    def answer(_request: Any) -> Reply:
        with lock:
            return remaining.pop(0) if len(remaining) > 1 else remaining[0]

    return answer


class WireServer:
    """A `ThreadingHTTPServer` on a free port; subclasses shape the bodies."""

    #: The endpoint path, and what `url` adds to the root (OpenAI base URLs end in /v1).
    endpoint: ClassVar[str]
    url_suffix: ClassVar[str] = ""

    def __init__(self, label: str | None = None) -> None:
        """`label`: what the default answer says; None picks the first label of the enum."""
        self.answer: Answer = lambda request: label or self.enum(request)[0]
        self._lock = threading.Lock()
        self._requests: list[Received] = []
        self._in_flight = 0
        self.max_in_flight = 0
        self._closing = threading.Event()
        self._httpd = _Server(self)
        # A short poll interval: `stop()` waits up to one interval, once per test.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}{self.url_suffix}"

    @property
    def requests(self) -> list[Received]:
        with self._lock:
            return list(self._requests)

    def start(self) -> WireServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._closing.set()  # wakes delayed replies
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()

    def __enter__(self) -> WireServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- request helpers (also handy in `answer` callables) ------------------------------------

    def user_text(self, request: Any) -> str:
        """The user message as sent."""
        raise NotImplementedError

    def enum(self, request: Any) -> list[str]:
        """The labels the request's tool allows."""
        raise NotImplementedError

    def ticket_text(self, request: Any) -> str:
        """The (unescaped) contents of the request's ticket block."""
        match = re.search(r"<ticket>\n?(.*?)\n?</ticket>", self.user_text(request), re.DOTALL)
        return html.unescape(match.group(1)) if match else ""

    # -- wire format ---------------------------------------------------------------------------

    def tool_body(self, request: Any, arguments: dict[str, Any], usage: tuple[int, int]) -> Any:
        raise NotImplementedError

    def error_body(self, status: int) -> Any:
        raise NotImplementedError

    # -- serving -------------------------------------------------------------------------------

    def _respond(
        self, path: str, headers: dict[str, str], body: Any
    ) -> tuple[int, Any, dict[str, str]]:
        with self._lock:
            self._requests.append(Received(path, headers, body))
        if path != self.endpoint:
            return 404, self.error_body(404), {}
        reply = self.answer(body)
        while isinstance(reply, DelayReply):
            if self._closing.wait(reply.seconds):
                return 503, self.error_body(503), {}
            reply = reply.then
        if isinstance(reply, str):
            reply = LabelReply(reply)
        if isinstance(reply, StatusReply):
            extra = {"Retry-After": reply.retry_after} if reply.retry_after else {}
            return reply.status, self.error_body(reply.status), extra
        if isinstance(reply, RawReply):
            return reply.status, reply.body, {}
        arguments: dict[str, Any] = {"label": reply.label, **reply.extra}
        if reply.confidence is not None:
            arguments["confidence"] = reply.confidence
        # Plausible usage: about four characters a token.
        usage = (len(json.dumps(body)) // 4, len(json.dumps(arguments)) // 4 + 10)
        return 200, self.tool_body(body, arguments, usage), {}


class OpenAIServer(WireServer):
    endpoint = "/v1/chat/completions"
    url_suffix = "/v1"

    def user_text(self, request: Any) -> str:
        return "\n".join(m["content"] for m in request["messages"] if m["role"] == "user")

    def enum(self, request: Any) -> list[str]:
        return list(request["tools"][0]["function"]["parameters"]["properties"]["label"]["enum"])

    def tool_body(self, request: Any, arguments: dict[str, Any], usage: tuple[int, int]) -> Any:
        call = {
            "id": f"call_{uuid.uuid4().hex[:24]}",
            "type": "function",
            "function": {"name": "set_label", "arguments": json.dumps(arguments)},
        }
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "model": request.get("model", "test-model"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": None, "tool_calls": [call]},
                    "finish_reason": "tool_calls",
                }
            ],
            "usage": {
                "prompt_tokens": usage[0],
                "completion_tokens": usage[1],
                "total_tokens": sum(usage),
            },
        }

    def error_body(self, status: int) -> Any:
        return {"error": {"message": f"test server says {status}", "type": "test", "code": None}}


class AnthropicServer(WireServer):
    endpoint = "/v1/messages"

    def user_text(self, request: Any) -> str:
        return "\n".join(m["content"] for m in request["messages"] if m["role"] == "user")

    def enum(self, request: Any) -> list[str]:
        return list(request["tools"][0]["input_schema"]["properties"]["label"]["enum"])

    def tool_body(self, request: Any, arguments: dict[str, Any], usage: tuple[int, int]) -> Any:
        use = {
            "type": "tool_use",
            "id": f"toolu_{uuid.uuid4().hex[:24]}",
            "name": "set_label",
            "input": arguments,
        }
        return {
            "id": f"msg_{uuid.uuid4().hex[:24]}",
            "type": "message",
            "role": "assistant",
            "model": request.get("model", "test-model"),
            "content": [use],
            "stop_reason": "tool_use",
            "stop_sequence": None,
            "usage": {"input_tokens": usage[0], "output_tokens": usage[1]},
        }

    def error_body(self, status: int) -> Any:
        kind = {429: "rate_limit_error", 529: "overloaded_error"}.get(status, "api_error")
        return {"type": "error", "error": {"type": kind, "message": f"test server says {status}"}}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real APIs: the client reuses connections
    # Headers and body go out in two writes: with Nagle on, each reply waits ~40 ms for an ACK.
    disable_nagle_algorithm = True

    def do_POST(self) -> None:
        wire = self.server.wire  # type: ignore[attr-defined]
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw.decode(errors="replace")
        headers = {k.lower(): v for k, v in self.headers.items()}
        with wire._lock:
            wire._in_flight += 1
            wire.max_in_flight = max(wire.max_in_flight, wire._in_flight)
        try:
            status, reply, extra_headers = wire._respond(self.path, headers, body)
        except Exception as exc:  # a broken `answer` in a test: say so instead of hanging up
            status, reply, extra_headers = 500, {"error": {"message": repr(exc)}}, {}
        finally:
            with wire._lock:
                wire._in_flight -= 1
        data = json.dumps(reply).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in extra_headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            pass  # the client gave up (a timeout test): nobody is listening

    def log_message(self, format: str, *args: Any) -> None:
        pass  # tests read `requests`, not stderr


class _Server(ThreadingHTTPServer):
    def __init__(self, wire: WireServer) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.wire = wire

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client closing a kept-alive connection is normal here, not worth a traceback.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)
