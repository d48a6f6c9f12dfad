"""A local HTTP server that speaks Qdrant's REST wire format, for the calls `models.index` makes.

No PyPI package ships a runnable Qdrant server, and no Docker engine runs here, so the server
mode of `TicketIndex` is tested against this: it keeps collections in memory, answers the exact
REST routes qdrant-client uses (exists, create, payload index, upsert, retrieve, count, batched
query) with brute-force dot products, and records every request so a test can assert what was
asked::

    with QdrantServer() as server:
        index = TicketIndex(url=server.url)
        index.upsert("category", tickets, vectors)
        assert server.collections["tickets_category"].config["hnsw_config"]["m"] == 16
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from tests.polling import wait_for


@dataclass
class Collection:
    #: The create-collection body as sent (vectors, hnsw_config, ...).
    config: dict[str, Any]
    #: Payload indexes: field name -> schema ("keyword", ...).
    payload_indexes: dict[str, Any] = field(default_factory=dict)
    points: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    json: Any


class QdrantServer:
    """A `ThreadingHTTPServer` on a free port holding collections in memory."""

    def __init__(self) -> None:
        self.collections: dict[str, Collection] = {}
        #: Names whose next "exists" answers no although they exist: another worker created the
        #: collection between a client's check and its create.
        self.racing: set[str] = set()
        self._lock = threading.Lock()
        self._requests: list[Received] = []
        self._httpd = _Server(self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def requests(self) -> list[Received]:
        with self._lock:
            return list(self._requests)

    def wait_for_version_checks(self, count: int, timeout_s: float = 5.0) -> None:
        """Wait until `count` clients asked for the version (`GET /`).

        qdrant-client asks from a background thread; one that finds the server gone warns
        (an error in tests), so a test waits for its clients' checks before stopping the server.
        """
        wait_for(
            lambda: sum(r.path == "/" for r in self.requests) >= count,
            timeout_s=timeout_s,
            what=f"{count} qdrant clients to check the version",
            interval_s=0.01,
        )

    def start(self) -> QdrantServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()

    def __enter__(self) -> QdrantServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def respond(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        with self._lock:
            self._requests.append(Received(method, path, body))
            for pattern, handler in _ROUTES:
                match = re.fullmatch(pattern, f"{method} {urlsplit(path).path}")
                if match:
                    reply: tuple[int, Any] = handler(self, *match.groups(), body)
                    return reply
        return 404, _error(f"no route {method} {path} in the test server")

    # -- routes (called with the lock held) ---------------------------------------------------

    def _root(self, _body: Any) -> tuple[int, Any]:
        # The client checks its version against the server's and warns (an error in tests)
        # when the minors differ by more than one: claim the client's own.
        return 200, {"title": "qdrant - test server", "version": _client_version()}

    def _exists(self, name: str, _body: Any) -> tuple[int, Any]:
        if name in self.racing:
            self.racing.discard(name)
            return 200, _ok({"exists": False})
        return 200, _ok({"exists": name in self.collections})

    def _create(self, name: str, body: Any) -> tuple[int, Any]:
        if name in self.collections:
            return 409, _error(f"Wrong input: Collection `{name}` already exists!")
        self.collections[name] = Collection(config=body)
        return 200, _ok(True)

    def _index(self, name: str, body: Any) -> tuple[int, Any]:
        if name not in self.collections:
            return 404, _error(f"Not found: Collection `{name}` doesn't exist!")
        self.collections[name].payload_indexes[body["field_name"]] = body["field_schema"]
        return 200, _ok({"operation_id": 0, "status": "completed"})

    def _upsert(self, name: str, body: Any) -> tuple[int, Any]:
        if name not in self.collections:
            return 404, _error(f"Not found: Collection `{name}` doesn't exist!")
        for point in body["points"]:
            self.collections[name].points[str(point["id"])] = point
        return 200, _ok({"operation_id": 0, "status": "completed"})

    def _retrieve(self, name: str, body: Any) -> tuple[int, Any]:
        if name not in self.collections:
            return 404, _error(f"Not found: Collection `{name}` doesn't exist!")
        points = self.collections[name].points
        found = [points[str(i)] for i in body["ids"] if str(i) in points]
        return 200, _ok([{"id": p["id"], "payload": p.get("payload")} for p in found])

    def _count(self, name: str, _body: Any) -> tuple[int, Any]:
        if name not in self.collections:
            return 404, _error(f"Not found: Collection `{name}` doesn't exist!")
        return 200, _ok({"count": len(self.collections[name].points)})

    def _query_batch(self, name: str, body: Any) -> tuple[int, Any]:
        if name not in self.collections:
            return 404, _error(f"Not found: Collection `{name}` doesn't exist!")
        points = list(self.collections[name].points.values())
        out = []
        for search in body["searches"]:
            query = search["query"]
            if isinstance(query, dict):  # the client sends {"nearest": [...]}
                query = query["nearest"]
            scored = sorted(
                ((sum(a * b for a, b in zip(query, p["vector"], strict=True)), p) for p in points),
                key=lambda sp: -sp[0],
            )[: search.get("limit", 10)]
            out.append(
                {
                    "points": [
                        {"id": p["id"], "version": 0, "score": s, "payload": p.get("payload")}
                        for s, p in scored
                    ]
                }
            )
        return 200, _ok(out)


_NAME = r"([^/]+)"
_ROUTES: list[tuple[str, Any]] = [
    (r"GET /", QdrantServer._root),
    (rf"GET /collections/{_NAME}/exists", QdrantServer._exists),
    (rf"PUT /collections/{_NAME}", QdrantServer._create),
    (rf"PUT /collections/{_NAME}/index", QdrantServer._index),
    (rf"PUT /collections/{_NAME}/points", QdrantServer._upsert),
    (rf"POST /collections/{_NAME}/points", QdrantServer._retrieve),
    (rf"POST /collections/{_NAME}/points/count", QdrantServer._count),
    (rf"POST /collections/{_NAME}/points/query/batch", QdrantServer._query_batch),
]


def _ok(result: Any) -> dict[str, Any]:
    return {"result": result, "status": "ok", "time": 0.0}


def _error(message: str) -> dict[str, Any]:
    return {"status": {"error": message}, "time": 0.0}


def _client_version() -> str:
    return importlib.metadata.version("qdrant-client")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the real server: the client reuses connections
    disable_nagle_algorithm = True

    def _handle(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = json.loads(raw) if raw else None
        try:
            status, reply = self.server.qdrant.respond(self.command, self.path, body)  # type: ignore[attr-defined]
        except Exception as exc:  # a bug in the test server: say so instead of hanging up
            status, reply = 500, _error(repr(exc))
        data = json.dumps(reply).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            pass

    do_GET = do_PUT = do_POST = _handle

    def log_message(self, format: str, *args: Any) -> None:
        pass  # tests read `requests`, not stderr


class _Server(ThreadingHTTPServer):
    def __init__(self, qdrant: QdrantServer) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.qdrant = qdrant

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)
