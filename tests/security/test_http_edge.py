"""The HTTP edge on a real uvicorn server (docs/security.md, "The HTTP edge"): slow clients are
cut off and logged in one line each, a client leaving mid-body is one line and no traceback,
the connection cap answers 503, and a refused body does not grow the server's memory."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from producer.http import create_app
from producer.http.server import TimedH11Protocol
from producer.settings import ProducerSettings
from tests.producer.http_support import AUTH, PAYLOADS, http_settings, queued, sign


class Quick(TimedH11Protocol):
    header_timeout_s = 0.5
    body_timeout_s = 0.5


class Patient(TimedH11Protocol):
    header_timeout_s = 5.0
    body_timeout_s = 5.0


@contextmanager
def serving(
    redis_url: str, tmp_path: Path, protocol: type[TimedH11Protocol] = Quick, limit: int = 100
) -> Iterator[int]:
    """A real uvicorn with our protocol on a free loopback port, in a thread; yields the port."""
    app = create_app(http_settings(tmp_path), ProducerSettings(redis_url=redis_url))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        app, http=protocol, limit_concurrency=limit, log_config=None, lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def connect(port: int, data: bytes = b"") -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    if data:
        s.sendall(data)
    return s


def answer(s: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (then ours is closed too)."""
    out = b""
    with s:
        while chunk := s.recv(65536):
            out += chunk
    return out


def lines(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if text in r.getMessage()]


def no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    assert not [r for r in caplog.records if r.exc_info or "Exception in ASGI" in r.getMessage()]


@pytest.fixture(autouse=True)
def server_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="uvicorn.error")


def test_half_sent_headers_are_cut_off_in_one_line_each(redis_url, tmp_path, caplog) -> None:
    """Attack: 300 half-sent requests stayed open."""
    with serving(redis_url, tmp_path) as port:
        started = time.monotonic()
        clients = [connect(port, b"POST /v1/tickets HTTP/1.1\r\nHost: x\r\n") for _ in range(60)]
        clients.append(connect(port))  # connected, sends nothing
        answers = [answer(c) for c in clients]
        took = time.monotonic() - started
    assert all(a.startswith(b"HTTP/1.1 408") for a in answers), answers[:2]
    assert took < 3
    assert len(lines(caplog, "request headers not in within 0.5s")) == len(clients)
    no_tracebacks(caplog)


def test_a_slow_body_is_cut_off_in_one_line(redis_url, rdb, tmp_path, caplog) -> None:
    with serving(redis_url, tmp_path) as port:
        head = b"POST /v1/webhooks/generic HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"
        slow = connect(port, head + b'{"id": ')
        started = time.monotonic()
        for _ in range(3):  # a byte now and then does not reset the body's deadline
            time.sleep(0.15)
            slow.sendall(b" ")
        got = answer(slow)
        took = time.monotonic() - started
    assert got.startswith(b"HTTP/1.1 408") and took < 2
    assert len(lines(caplog, "request body not in within 0.5s")) == 1
    no_tracebacks(caplog)
    assert queued(rdb) == []


def test_a_client_leaving_mid_body_is_one_line(redis_url, rdb, tmp_path, caplog) -> None:
    """Attack: each client that disconnected mid-body logged a 60-line traceback."""
    with serving(redis_url, tmp_path, Patient) as port:
        head = b"POST /v1/tickets HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n"
        leaving = connect(port, head + AUTH_HEADER + b"\r\n" + b'[{"id": "1", ')
        time.sleep(0.2)
        leaving.close()
        deadline = time.monotonic() + 3
        while not lines(caplog, "went away") and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)  # anything the app would log after it
    assert len(lines(caplog, "went away before its request body was in")) == 1
    assert not lines(caplog, "not in within")
    no_tracebacks(caplog)
    assert queued(rdb) == []


AUTH_HEADER = f"Authorization: {AUTH['Authorization']}\r\n".encode()


def test_connections_beyond_the_cap_get_503(redis_url, tmp_path) -> None:
    with serving(redis_url, tmp_path, Patient, limit=3) as port:
        held = [connect(port, b"GET /healthz HTTP/1.1\r\n") for _ in range(3)]
        time.sleep(0.1)
        extra = connect(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert answer(extra).startswith(b"HTTP/1.1 503")
        for s in held:
            s.close()
        time.sleep(0.1)
        ok = connect(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert answer(ok).startswith(b"HTTP/1.1 200")


def rss_bytes() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * 4096


@pytest.mark.parametrize(
    ("path", "headers", "status"),
    [
        ("/v1/tickets/github/acme/app%237/feedback", b"", b"401"),
        ("/v1/tickets", b"", b"401"),
        ("/v1/tickets", AUTH_HEADER, b"413"),
        ("/v1/webhooks/generic", b"", b"413"),
    ],
)
def test_a_refused_body_leaves_memory_unmoved(
    redis_url, rdb, tmp_path, path: str, headers: bytes, status: bytes
) -> None:
    """Attack: a 300 MB POST with no token got its 401 only after the server's memory had
    grown by about 300 MB. Here 64 MB of a declared 300 MB follow the answer."""
    chunk = b"x" * (1 << 20)
    with serving(redis_url, tmp_path, Patient) as port:
        before = rss_bytes()
        head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {300 << 20}\r\n".encode()
        s = connect(port, head + headers + b"\r\n")
        first = s.recv(4096)  # the answer comes before the body is sent
        sent = 0
        try:
            while sent < 64:
                s.sendall(chunk)
                sent += 1
        except OSError:
            pass  # the server may close once it has answered
        s.close()
        grown = rss_bytes() - before
    assert first.startswith(b"HTTP/1.1 " + status), first[:80]
    assert grown < 16 << 20, f"server memory grew by {grown >> 20} MB"
    assert queued(rdb) == []


def test_a_legitimate_webhook_still_goes_through(redis_url, rdb, tmp_path) -> None:
    body = json.dumps(PAYLOADS["generic"]).encode()
    signed: dict[str, Any] = sign("generic", body)
    with serving(redis_url, tmp_path) as port:
        head = "".join(f"{k}: {v}\r\n" for k, v in signed.items())
        request = (
            f"POST /v1/webhooks/generic HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n{head}\r\n"
        ).encode()
        got = answer(connect(port, request + body))
    assert got.startswith(b"HTTP/1.1 202") and len(queued(rdb)) == 1
