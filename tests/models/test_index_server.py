"""The ticket index against a Qdrant server (the REST wire format) and in local mode: same code."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from models.index import (
    HNSW_EF_CONSTRUCT,
    HNSW_M,
    PAYLOAD_INDEXES,
    IndexedTicket,
    TicketIndex,
    collection_name,
)
from tests.qdrant_server import QdrantServer


def _unit(rows: list[list[float]]) -> np.ndarray:
    v = np.asarray(rows, dtype=np.float32)
    unit: np.ndarray = v / np.linalg.norm(v, axis=1, keepdims=True)
    return unit


TICKETS = [
    IndexedTicket("1", "helpdesk", "card_arrival", "my card has not arrived"),
    IndexedTicket("2", "helpdesk", "card_arrival", "still waiting for the card", set_by="human"),
    IndexedTicket("3", "github", "refund", "I want my money back"),
]
VECTORS = _unit([[1.0, 0.1, 0.0], [0.9, 0.2, 0.0], [0.0, 0.1, 1.0]])


def connect(server: QdrantServer) -> TicketIndex:
    """A server-mode index whose background version check is done (see `QdrantServer`)."""
    checks = sum(r.path == "/" for r in server.requests)
    index = TicketIndex(url=server.url)
    server.wait_for_version_checks(checks + 1)
    return index


def test_a_server_collection_gets_hnsw_parameters_and_payload_indexes() -> None:
    with QdrantServer() as server:
        index = connect(server)
        index.upsert("category", TICKETS, VECTORS)
        index.close()

    created = server.collections[collection_name("category")]
    assert created.config["vectors"] == {"size": 3, "distance": "Dot"}
    assert created.config["hnsw_config"] == {"m": HNSW_M, "ef_construct": HNSW_EF_CONSTRUCT}
    assert created.payload_indexes == dict.fromkeys(PAYLOAD_INDEXES, "keyword")
    assert {"label", "set_by", "source"} <= set(created.payload_indexes)
    stored = {p["payload"]["ticket_id"]: p["payload"] for p in created.points.values()}
    assert stored["2"]["set_by"] == "human" and stored["3"]["source"] == "github"


def test_neighbours_and_count_come_back_from_the_server() -> None:
    with QdrantServer() as server:
        index = connect(server)
        index.upsert("category", TICKETS, VECTORS)
        found = index.neighbours("category", VECTORS[:1], k=2, exclude=[("helpdesk", "1")])
        assert index.count("category") == 3
        assert index.count("priority") == 0  # no collection yet: zero, not an error
        index.close()

    assert [n.ticket_id for n in found[0]] == ["2", "3"]  # itself excluded, nearest first
    assert found[0][0].set_by == "human" and found[0][0].label == "card_arrival"


def test_a_collection_another_worker_created_meanwhile_is_not_an_error() -> None:
    with QdrantServer() as server:
        first = connect(server)
        first.ensure_collection("category", 3)
        server.racing.add(collection_name("category"))
        second = connect(server)
        second.ensure_collection("category", 3)  # sees "absent", gets 409, looks again
        second.upsert("category", TICKETS, VECTORS)
        first.close()
        second.close()

    creates = [r for r in server.requests if r.method == "PUT" and r.path.count("/") == 2]
    assert len(creates) == 2  # both tried; one collection, with its indexes
    assert len(server.collections[collection_name("category")].points) == 3
    assert set(server.collections[collection_name("category")].payload_indexes) == set(
        PAYLOAD_INDEXES
    )


def test_local_mode_creates_no_payload_index_and_raises_no_warning(tmp_path: Path) -> None:
    # pytest turns warnings into errors: local mode's "payload indexes have no effect" would fail.
    index = TicketIndex(path=tmp_path / "qdrant")
    index.upsert("category", TICKETS, VECTORS)
    found = index.neighbours("category", VECTORS[2:], k=1)
    index.close()
    assert [n.ticket_id for n in found[0]] == ["3"]
