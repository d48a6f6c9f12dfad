"""Local HTTP servers speaking the GitHub, Zendesk and Jira REST wire formats, for write-back tests.

Each keeps tickets in memory and changes them as the real API would; `throttle(n, retry_after)`
makes the next `n` requests answer 429 with Retry-After. `writes` counts the calls that changed a
ticket, `requests` records every call (method, path as sent, headers, JSON body), those outside
the API too. `prefix` serves the API under a path (GitHub Enterprise's ``/api/v3``, a Jira
context path); `url` then includes it.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

Reply = tuple[int, Any]


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]
    json: Any


class TicketSystem:
    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix.rstrip("/")
        self.lock = threading.Lock()
        self.requests: list[Request] = []
        self.writes = 0
        self._throttled = 0
        self._retry_after = "1"
        system = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                path = urlsplit(self.path).path
                with system.lock:
                    system.requests.append(
                        Request(
                            self.command,
                            path,
                            {k.lower(): v for k, v in self.headers.items()},
                            body,
                        )
                    )
                    if system._throttled:
                        system._throttled -= 1
                        status, reply, extra = (
                            429,
                            {"message": "slow down"},
                            {"Retry-After": system._retry_after},
                        )
                    elif system.prefix and not path.startswith(system.prefix + "/"):
                        status, reply, extra = 404, {"message": "outside the API"}, {}
                    else:
                        api_path = path.removeprefix(system.prefix)
                        status, reply = system.handle(self.command, api_path, body)
                        extra = {}
                data = b"" if reply is None else json.dumps(reply).encode()
                self.send_response(status)
                for k, v in extra.items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def handle(self, method: str, path: str, body: Any) -> Reply:
        raise NotImplementedError

    def throttle(self, times: int, retry_after: str = "1") -> None:
        with self.lock:
            self._throttled, self._retry_after = times, retry_after

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}{self.prefix}"

    def __enter__(self) -> Any:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


class GitHub(TicketSystem):
    """``/repos/{owner}/{repo}/issues/{n}``: GET, POST ``/labels``, DELETE ``/labels/{name}``."""

    def __init__(self, prefix: str = "") -> None:
        super().__init__(prefix)
        self.labels: dict[tuple[str, int], list[str]] = {}

    def handle(self, method: str, path: str, body: Any) -> Reply:
        m = re.fullmatch(r"/repos/([^/]+/[^/]+)/issues/(\d+)(/labels(?:/(.+))?)?", path)
        if not m or (m[1], int(m[2])) not in self.labels:
            return 404, {"message": "Not Found"}
        labels = self.labels[(m[1], int(m[2]))]
        if method == "GET" and not m[3]:
            return 200, {"number": int(m[2]), "labels": [{"name": n} for n in labels]}
        if method == "POST" and m[3] and not m[4]:
            self.writes += 1
            labels += [n for n in body["labels"] if n not in labels]
            return 200, [{"name": n} for n in labels]
        if method == "DELETE" and m[4]:
            name = unquote(m[4])
            if name not in labels:
                return 404, {"message": "Label does not exist"}
            self.writes += 1
            labels.remove(name)
            return 200, [{"name": n} for n in labels]
        return 405, {"message": "no"}


class Zendesk(TicketSystem):
    """``/api/v2/tickets/{id}.json``: GET, and PUT with ``safe_update`` (409 on a stale stamp)."""

    def __init__(self, prefix: str = "") -> None:
        super().__init__(prefix)
        self.tickets: dict[str, dict[str, Any]] = {}

    def add(self, ticket_id: str, tags: list[str]) -> None:
        self.tickets[ticket_id] = {
            "id": int(ticket_id),
            "tags": tags,
            "updated_at": "t0",
            "custom_fields": [],
        }

    def edit(self, ticket_id: str, tags: list[str]) -> None:
        with self.lock:
            t = self.tickets[ticket_id]
            t["tags"], t["updated_at"] = tags, t["updated_at"] + "'"

    def handle(self, method: str, path: str, body: Any) -> Reply:
        m = re.fullmatch(r"/api/v2/tickets/(\d+)\.json", path)
        if not m or m[1] not in self.tickets:
            return 404, {"error": "RecordNotFound"}
        ticket = self.tickets[m[1]]
        if method == "GET":
            return 200, {"ticket": ticket}
        if method == "PUT":
            update = body["ticket"]
            if update.get("safe_update") and update.get("updated_stamp") != ticket["updated_at"]:
                return 409, {"error": "UpdateConflict"}
            self.writes += 1
            ticket["tags"] = update.get("tags", ticket["tags"])
            # Zendesk merges custom fields by id: an update names only the fields it sets.
            fields = {f["id"]: f for f in ticket["custom_fields"]}
            fields |= {f["id"]: f for f in update.get("custom_fields", [])}
            ticket["custom_fields"] = list(fields.values())
            ticket["updated_at"] += "+"
            return 200, {"ticket": ticket}
        return 405, {"error": "no"}


class Jira(TicketSystem):
    """``/rest/api/2/issue/{key}``: GET (``?fields=labels``), PUT of ``update.labels`` ops."""

    def __init__(self, prefix: str = "") -> None:
        super().__init__(prefix)
        self.labels: dict[str, list[str]] = {}

    def handle(self, method: str, path: str, body: Any) -> Reply:
        m = re.fullmatch(r"/rest/api/2/issue/([A-Z]+-\d+)", path)
        if not m or m[1] not in self.labels:
            return 404, {"errorMessages": ["Issue does not exist"]}
        labels = self.labels[m[1]]
        if method == "GET":
            return 200, {"key": m[1], "fields": {"labels": labels}}
        if method == "PUT":
            self.writes += 1
            for op in body["update"]["labels"]:
                if "add" in op and op["add"] not in labels:
                    labels.append(op["add"])
                if "remove" in op and op["remove"] in labels:
                    labels.remove(op["remove"])
            return 204, None
        return 405, {"errorMessages": ["no"]}
