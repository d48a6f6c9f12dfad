"""What makes Qdrant's local mode fast enough to serve: a vector mirror for batched search, and
commits that do not wait for the disk.

Local mode searches one query at a time: `query_batch_points` loops over `query_points`, and each
query is a float64 matrix-vector product over the whole collection (loaded points come back as
float64) and a full argsort, 5-18 ms per ticket over 10k points on 2 busy cores. A batch is one
float32 matrix product here: under 1 ms per ticket. Only local mode uses this: there one process
owns the storage directory (a second client raises "already accessed by another instance"), so
every write passes through the same `TicketIndex`, which updates the collection first (it stays
the source of truth, and what a restart loads) and then this mirror. A server searches itself.

Local mode also commits every point in its own SQLite transaction, with the rollback journal and
`synchronous=FULL`: ~20 ms of fsync per point. WAL with `synchronous=NORMAL` keeps the database
consistent and survives a killed process; only an OS crash or power cut may lose the last
commits, which the index (fresh neighbours, rebuilt from results) can afford.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

#: Payload fields a neighbour needs; the mirror keeps nothing else.
PAYLOAD_FIELDS = ("ticket_id", "source", "label", "set_by", "snippet")
#: Points read per page when the mirror is filled from the collection.
LOAD_PAGE = 2048

Hit = tuple[str, float, dict[str, Any]]  # point id, score (dot product), payload


class VectorMirror:
    """The vectors and payloads of one local collection, searched with one product per batch."""

    def __init__(self, dim: int) -> None:
        self._lock = threading.Lock()  # write-back threads upsert while classify searches
        self._matrix = np.zeros((0, dim), dtype=np.float32)
        self._ids: list[str] = []
        self._payloads: list[dict[str, Any]] = []
        self._rows: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._ids)

    def payloads(self, ids: Sequence[str]) -> list[dict[str, Any] | None]:
        """The payloads of these points (None for one not here)."""
        with self._lock:
            return [
                self._payloads[row] if (row := self._rows.get(i)) is not None else None for i in ids
            ]

    def put(
        self, ids: Sequence[str], vectors: np.ndarray, payloads: Sequence[dict[str, Any]]
    ) -> None:
        """Insert or replace points by id (an id already here keeps its row)."""
        with self._lock:
            for point, vector, payload in zip(ids, vectors, payloads, strict=True):
                row = self._rows.get(point)
                if row is None:
                    row = len(self._ids)
                    self._grow(row + 1)
                    self._rows[point] = row
                    self._ids.append(point)
                    self._payloads.append({})
                self._matrix[row] = vector
                self._payloads[row] = {k: payload.get(k) for k in PAYLOAD_FIELDS}

    def remove(self, ids: Sequence[str]) -> None:
        """Drop these points (ids not here are ignored); the last row moves into each hole."""
        with self._lock:
            for point in ids:
                row = self._rows.pop(point, None)
                if row is None:
                    continue
                last = len(self._ids) - 1
                if row != last:
                    moved = self._ids[last]
                    self._matrix[row] = self._matrix[last]
                    self._ids[row], self._payloads[row] = moved, self._payloads[last]
                    self._rows[moved] = row
                self._ids.pop()
                self._payloads.pop()

    def top(self, queries: np.ndarray, limit: int) -> list[list[Hit]]:
        """The `limit` best points of each query by dot product, best first (as Qdrant's DOT)."""
        with self._lock:
            n = len(self._ids)
            if n == 0 or limit <= 0:
                return [[] for _ in range(len(queries))]
            scores = np.asarray(queries, dtype=np.float32) @ self._matrix[:n].T
            k = min(limit, n)
            # argpartition finds the k best in linear time; only those k are sorted.
            best = np.argpartition(-scores, k - 1, axis=1)[:, :k] if k < n else None
            out: list[list[Hit]] = []
            for i, row_scores in enumerate(scores):
                rows = best[i] if best is not None else np.arange(n)
                ordered = rows[np.argsort(-row_scores[rows], kind="stable")]
                out.append(
                    [(self._ids[r], float(row_scores[r]), self._payloads[r]) for r in ordered]
                )
            return out

    def _grow(self, rows: int) -> None:
        if rows <= len(self._matrix):
            return
        # Doubling keeps the copies amortised when tickets are upserted one batch at a time.
        grown = np.zeros(
            (max(rows, 2 * len(self._matrix), 1024), self._matrix.shape[1]), np.float32
        )
        grown[: len(self._ids)] = self._matrix[: len(self._ids)]
        self._matrix = grown


def load_mirror(client: Any, collection: str, dim: int) -> VectorMirror:
    """A mirror of `collection` as the local client holds it now (one scroll over every point)."""
    mirror = VectorMirror(dim)
    offset: Any = None
    while True:
        points, offset = client.scroll(
            collection, limit=LOAD_PAGE, offset=offset, with_payload=True, with_vectors=True
        )
        if points:
            mirror.put(
                [str(p.id) for p in points],
                np.asarray([p.vector for p in points], dtype=np.float32),
                [p.payload or {} for p in points],
            )
        if offset is None:
            return mirror


def fast_commits(client: Any) -> None:
    """Switch each collection of a local client to WAL commits (see the module docstring).

    Reaches into qdrant-client's local storage, which has no option for it; when that layout
    changes, it logs and leaves the defaults (slower writes, nothing wrong).
    """
    collections = getattr(getattr(client, "_client", None), "collections", None)
    if not isinstance(collections, dict):
        log.warning("qdrant-client's local storage changed; index writes stay slow")
        return
    for name, collection in collections.items():
        conn = getattr(getattr(collection, "storage", None), "storage", None)
        if not isinstance(conn, sqlite3.Connection):
            continue  # in-memory collection: nothing is written to disk
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error as exc:
            log.warning("could not switch %s to WAL commits: %s", name, exc)
