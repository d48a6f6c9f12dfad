"""The ticket index: labelled tickets in Qdrant, one collection per label task.

Local mode (a directory) is the embedded default; a URL points at a Qdrant server. The same code
serves both. Point ids are uuid5 of (source, ticket id), so re-indexing a ticket replaces it.
In local mode a batch is searched in an in-process mirror of the collection's vectors, and
commits go through SQLite's WAL (`models.local_index` says why); a server does its own search.
"""

from __future__ import annotations

import threading
import uuid
import warnings
from collections.abc import Collection, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.local_index import LOAD_PAGE, VectorMirror, fast_commits, load_mirror
from producer.errors import IndexUnavailable
from producer.schemas import Neighbour, SetBy

_POINT_NAMESPACE = uuid.UUID("0b5e8f4a-62a4-4a4e-8d0e-6d2b8c9f31a7")
SNIPPET_CHARS = 300
#: HNSW graph of a collection: 16 links a node is Qdrant's default; a wider candidate list at
#: build time (128, default 100) buys recall on near-duplicate tickets for a little indexing time.
HNSW_M = 16
HNSW_EF_CONSTRUCT = 128
#: Payload fields given a keyword index on a server: what filtered searches and operators ask by
#: (a label's tickets, human-confirmed ones, one source). Local mode has no payload indexes.
PAYLOAD_INDEXES = ("label", "set_by", "source")


@dataclass(frozen=True)
class IndexedTicket:
    ticket_id: str
    source: str
    label: str
    text: str
    set_by: SetBy = "model"
    #: A human label's author and when it was set (ISO 8601); None for a model's label.
    labelled_by: str | None = None
    labelled_at: str | None = None


def point_id(source: str, ticket_id: str) -> str:
    return str(uuid.uuid5(_POINT_NAMESPACE, f"{source}\x1f{ticket_id}"))


def collection_name(task: str) -> str:
    return f"tickets_{task}"


class TicketIndex:
    """Nearest labelled tickets for a batch of vectors, and upserts of newly labelled ones."""

    def __init__(
        self, *, path: Path | None = None, url: str | None = None, api_key: str | None = None
    ) -> None:
        from qdrant_client import QdrantClient

        self._local = not url
        if url:
            self._client = QdrantClient(url=url, api_key=api_key)
        elif path is not None:
            path.mkdir(parents=True, exist_ok=True)
            self._client = QdrantClient(path=str(path))
            fast_commits(self._client)
        else:
            self._client = QdrantClient(location=":memory:")
        self._known: set[str] = set()
        self._mirrors: dict[str, VectorMirror] = {}  # local mode only, filled on first search
        # Local mode's client is plain Python over SQLite, not made for threads (a threads
        # worker writes back while it classifies): one call at a time. A server needs none.
        self._serial: AbstractContextManager[Any] = (
            threading.RLock() if self._local else nullcontext()
        )

    def ensure_collection(self, task: str, dim: int) -> None:
        name = collection_name(task)
        if name in self._known:
            return
        try:
            with self._serial:
                if not self._client.collection_exists(name):
                    self._create(name, dim)
        except Exception as exc:  # qdrant raises several transport-specific types
            raise IndexUnavailable(f"Qdrant could not create {name}: {exc}") from exc
        self._known.add(name)

    def _create(self, name: str, dim: int) -> None:
        from qdrant_client import models as qm

        try:
            # Vectors are unit length, so DOT is the cosine; local mode re-normalises the
            # whole collection on every COSINE query (~10 ms over 10k points), DOT does not.
            self._client.create_collection(
                name,
                vectors_config=qm.VectorParams(size=dim, distance=qm.Distance.DOT),
                hnsw_config=qm.HnswConfigDiff(m=HNSW_M, ef_construct=HNSW_EF_CONSTRUCT),
            )
        except Exception:
            # Workers share a server: another one may have created it since we looked (409).
            if not self._client.collection_exists(name):
                raise
        if self._local:  # local mode has no payload indexes (it warns and ignores them)
            fast_commits(self._client)  # the new collection's storage was opened just now
            return
        for field in PAYLOAD_INDEXES:  # creating an index that exists is a no-op on a server
            self._client.create_payload_index(name, field, qm.PayloadSchemaType.KEYWORD, wait=True)

    def count(self, task: str) -> int:
        name = collection_name(task)
        try:
            with self._serial:
                if not self._client.collection_exists(name):
                    return 0
                return int(self._client.count(name, exact=True).count)
        except Exception as exc:
            raise IndexUnavailable(f"Qdrant could not count {name}: {exc}") from exc

    def upsert(self, task: str, tickets: Sequence[IndexedTicket], vectors: np.ndarray) -> None:
        from qdrant_client import models as qm

        if not tickets:
            return
        self.ensure_collection(task, int(vectors.shape[1]))
        keep = self._human_points(task, [t for t in tickets if t.set_by != "human"])
        if keep:  # a model label never replaces a person's
            chosen = [
                i for i, t in enumerate(tickets) if point_id(t.source, t.ticket_id) not in keep
            ]
            tickets, vectors = [tickets[i] for i in chosen], vectors[chosen]
            if not tickets:
                return
        points = [
            qm.PointStruct(
                id=point_id(t.source, t.ticket_id),
                vector=v.tolist(),
                payload={
                    "ticket_id": t.ticket_id,
                    "source": t.source,
                    "label": t.label,
                    "set_by": t.set_by,
                    "snippet": t.text[:SNIPPET_CHARS],
                    "labelled_by": t.labelled_by,
                    "labelled_at": t.labelled_at,
                },
            )
            for t, v in zip(tickets, vectors, strict=True)
        ]
        name = collection_name(task)
        with self._serial:  # the mirror is loaded under it too: it misses no upsert
            try:
                with warnings.catch_warnings():
                    # Local mode warns past 20,000 points about its own search, which we do not
                    # use (the float32 mirror searches instead); every upsert would repeat it.
                    warnings.filterwarnings("ignore", "Local mode is not recommended", UserWarning)
                    self._client.upsert(name, points=points, wait=True)
            except Exception as exc:
                raise IndexUnavailable(f"Qdrant upsert into {name} failed: {exc}") from exc
            mirror = self._mirrors.get(name)
            if mirror is not None:  # after the collection took them: it stays the truth
                ids = [str(p.id) for p in points]
                mirror.put(ids, vectors, [p.payload or {} for p in points])

    def remove_source_except(self, task: str, source: str, keep: Collection[str]) -> int:
        """Delete `task`'s points of `source` whose ticket id is not in `keep` (what an earlier
        seed put in and the new file no longer holds); how many went."""
        from qdrant_client import models as qm

        name = collection_name(task)
        only = qm.Filter(must=[qm.FieldCondition(key="source", match=qm.MatchValue(value=source))])
        gone: list[str] = []
        try:
            with self._serial:
                if not self._client.collection_exists(name):
                    return 0
                offset: Any = None
                while True:
                    points, offset = self._client.scroll(
                        name,
                        scroll_filter=only,
                        limit=LOAD_PAGE,
                        offset=offset,
                        with_payload=["ticket_id"],
                        with_vectors=False,
                    )
                    gone += [
                        str(p.id)
                        for p in points
                        if str((p.payload or {}).get("ticket_id")) not in keep
                    ]
                    if offset is None:
                        break
                if gone:
                    self._client.delete(name, points_selector=qm.PointIdsList(points=gone))
                    mirror = self._mirrors.get(name)
                    if mirror is not None:  # after the collection: it stays the truth
                        mirror.remove(gone)
        except Exception as exc:
            raise IndexUnavailable(f"Qdrant could not remove points from {name}: {exc}") from exc
        return len(gone)

    def _human_points(self, task: str, tickets: Sequence[IndexedTicket]) -> set[str]:
        """The ids among `tickets`' points that hold a human label now."""
        if not tickets:
            return set()
        name = collection_name(task)
        ids = [point_id(t.source, t.ticket_id) for t in tickets]
        mirror = self._mirrors.get(name)
        if mirror is not None:  # local mode: the mirror follows every upsert; no collection read
            found_payloads = mirror.payloads(ids)
            return {
                i
                for i, p in zip(ids, found_payloads, strict=True)
                if p and p.get("set_by") == "human"
            }
        try:
            with self._serial:
                found = self._client.retrieve(
                    name, ids, with_payload=["set_by"], with_vectors=False
                )
        except Exception as exc:
            raise IndexUnavailable(f"Qdrant could not read {name}: {exc}") from exc
        return {str(p.id) for p in found if (p.payload or {}).get("set_by") == "human"}

    def neighbours(
        self, task: str, vectors: np.ndarray, k: int, exclude: Sequence[tuple[str, str]] = ()
    ) -> list[list[Neighbour]]:
        """The k nearest labelled tickets of each vector, in one batched query.

        `exclude` holds (source, ticket id) per vector: a ticket is never its own neighbour
        (it is in the index already when it is classified again after a retry or an edit).
        """
        name = collection_name(task)
        if len(vectors) == 0:
            return []
        try:
            if name not in self._known:
                with self._serial:
                    if not self._client.collection_exists(name):
                        return [[] for _ in range(len(vectors))]
            hits = self._search(name, vectors, k + 1)
        except Exception as exc:
            raise IndexUnavailable(f"Qdrant query on {name} failed: {exc}") from exc
        self._known.add(name)
        out: list[list[Neighbour]] = []
        for i, found in enumerate(hits):
            own = point_id(*exclude[i]) if i < len(exclude) else None
            out.append(
                [_neighbour(payload, score) for pid, score, payload in found if pid != own][:k]
            )
        return out

    def _search(self, name: str, vectors: np.ndarray, limit: int) -> list[list[Any]]:
        """(point id, score, payload) of the `limit` best points per vector, best first."""
        from qdrant_client import models as qm

        if self._local:
            mirror = self._mirrors.get(name)
            if mirror is None:
                with self._serial:  # another thread may have loaded it meanwhile
                    mirror = self._mirrors.get(name)
                    if mirror is None:
                        mirror = load_mirror(self._client, name, vectors.shape[1])
                        self._mirrors[name] = mirror
            return list(mirror.top(vectors, limit))
        requests = [
            qm.QueryRequest(query=v.tolist(), limit=limit, with_payload=True) for v in vectors
        ]
        responses = self._client.query_batch_points(name, requests=requests)
        return [[(str(p.id), p.score, p.payload or {}) for p in r.points] for r in responses]

    def close(self) -> None:
        with self._serial:
            self._client.close()


def _neighbour(payload: dict[str, Any], score: float) -> Neighbour:
    return Neighbour(
        ticket_id=str(payload.get("ticket_id", "")),
        source=str(payload.get("source", "")),
        label=str(payload.get("label", "")),
        score=float(score),
        set_by="human" if payload.get("set_by") == "human" else "model",
        snippet=str(payload.get("snippet", "")),
    )
