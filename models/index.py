"""The ticket index: labelled tickets in Qdrant, one collection per label task.

Local mode (a directory) is the embedded default; a URL points at a Qdrant server. The same code
serves both. Point ids are uuid5 of (source, ticket id), so re-indexing a ticket replaces it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from producer.errors import IndexUnavailable
from producer.schemas import Neighbour, SetBy

_POINT_NAMESPACE = uuid.UUID("0b5e8f4a-62a4-4a4e-8d0e-6d2b8c9f31a7")
SNIPPET_CHARS = 300


@dataclass(frozen=True)
class IndexedTicket:
    ticket_id: str
    source: str
    label: str
    text: str
    set_by: SetBy = "model"


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
        else:
            self._client = QdrantClient(location=":memory:")
        self._known: set[str] = set()

    def ensure_collection(self, task: str, dim: int) -> None:
        from qdrant_client import models as qm

        name = collection_name(task)
        if name in self._known:
            return
        try:
            if not self._client.collection_exists(name):
                # Vectors are unit length, so DOT is the cosine; local mode re-normalises the
                # whole collection on every COSINE query (~10 ms over 10k points), DOT does not.
                self._client.create_collection(
                    name,
                    vectors_config=qm.VectorParams(size=dim, distance=qm.Distance.DOT),
                    hnsw_config=qm.HnswConfigDiff(m=16, ef_construct=128),
                )
                if not self._local:  # local mode ignores payload indexes (and warns)
                    self._client.create_payload_index(name, "label", qm.PayloadSchemaType.KEYWORD)
        except Exception as exc:  # qdrant raises several transport-specific types
            raise IndexUnavailable(f"Qdrant could not create {name}: {exc}") from exc
        self._known.add(name)

    def count(self, task: str) -> int:
        name = collection_name(task)
        try:
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
                },
            )
            for t, v in zip(tickets, vectors, strict=True)
        ]
        try:
            self._client.upsert(collection_name(task), points=points, wait=True)
        except Exception as exc:
            raise IndexUnavailable(
                f"Qdrant upsert into {collection_name(task)} failed: {exc}"
            ) from exc

    def neighbours(
        self, task: str, vectors: np.ndarray, k: int, exclude: Sequence[tuple[str, str]] = ()
    ) -> list[list[Neighbour]]:
        """The k nearest labelled tickets of each vector, in one batched query.

        `exclude` holds (source, ticket id) per vector: a ticket is never its own neighbour
        (it is in the index already when it is classified again after a retry or an edit).
        """
        from qdrant_client import models as qm

        name = collection_name(task)
        if len(vectors) == 0:
            return []
        try:
            if name not in self._known and not self._client.collection_exists(name):
                return [[] for _ in range(len(vectors))]
            requests = [
                qm.QueryRequest(query=v.tolist(), limit=k + 1, with_payload=True) for v in vectors
            ]
            responses = self._client.query_batch_points(name, requests=requests)
        except Exception as exc:
            raise IndexUnavailable(f"Qdrant query on {name} failed: {exc}") from exc
        self._known.add(name)
        out: list[list[Neighbour]] = []
        for i, response in enumerate(responses):
            own = point_id(*exclude[i]) if i < len(exclude) else None
            found = [
                _neighbour(p.payload or {}, p.score) for p in response.points if str(p.id) != own
            ]
            out.append(found[:k])
        return out

    def close(self) -> None:
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
