"""A local callback receiver that logs every call, for counting lost and duplicated write-backs."""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Call:
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    def signature_valid(self, secret: str) -> bool:
        parts = dict(p.split("=", 1) for p in self.headers["x-triage-signature"].split(","))
        expected = hmac.new(
            secret.encode(), f"{parts['t']}.".encode() + self.body, hashlib.sha256
        ).hexdigest()
        return hmac.compare_digest(expected, parts["v1"])


class CallbackReceiver:
    """Answers 200 to POSTs and records each call; or answers `fail_status` (not recorded) while
    `failing` is set, or at random for a `fail_rate` share of calls. `delay_s` makes it slow."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.failing = threading.Event()
        self.fail_status = 503
        self.fail_rate = 0.0
        self.refused = 0
        self.delay_s = 0.0
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                failing = receiver.failing.is_set() or random.random() < receiver.fail_rate
                with receiver._lock:
                    if failing:
                        receiver.refused += 1
                    else:
                        receiver.calls.append(
                            Call({k.lower(): v for k, v in self.headers.items()}, body)
                        )
                time.sleep(receiver.delay_s)  # the side effect happened; the answer is late
                self.send_response(receiver.fail_status if failing else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def delivered(self) -> Counter[str]:
        """Successful calls per ticket id."""
        with self._lock:
            return Counter(call.json["ticket_id"] for call in self.calls)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}/hook"

    def __enter__(self) -> CallbackReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
