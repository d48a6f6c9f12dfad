"""Local mode: the in-process mirror answers as Qdrant's own search would, and commits use WAL."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
from qdrant_client import models as qm

from models.index import IndexedTicket, TicketIndex, collection_name

DIM = 8


def _unit(n: int, seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)
    unit: np.ndarray = v / np.linalg.norm(v, axis=1, keepdims=True)
    return unit


def _tickets(n: int, label: str = "a") -> list[IndexedTicket]:
    return [IndexedTicket(str(i), "src", f"{label}{i % 3}", f"text {i}") for i in range(n)]


def _qdrant_ids(index: TicketIndex, queries: np.ndarray, limit: int) -> list[list[str]]:
    """What Qdrant's own local search answers, for comparison."""
    requests = [qm.QueryRequest(query=q.tolist(), limit=limit, with_payload=True) for q in queries]
    responses = index._client.query_batch_points(collection_name("t"), requests=requests)
    return [[str(p.payload["ticket_id"]) for p in r.points if p.payload] for r in responses]


def _mirror_ids(index: TicketIndex, queries: np.ndarray, k: int) -> list[list[str]]:
    return [[n.ticket_id for n in found] for found in index.neighbours("t", queries, k)]


def test_the_mirror_finds_what_qdrant_finds_before_and_after_upserts(tmp_path: Path) -> None:
    index = TicketIndex(path=tmp_path / "q")
    index.upsert("t", _tickets(300), _unit(300, 0))
    queries = _unit(20, 1)
    assert _mirror_ids(index, queries, 5) == _qdrant_ids(index, queries, 5)
    # Replace some points (same ids, new vectors and labels) and add new ones: both see them.
    index.upsert("t", _tickets(350, "b")[250:], _unit(100, 2))
    assert _mirror_ids(index, queries, 5) == _qdrant_ids(index, queries, 5)
    found = index.neighbours("t", _unit(100, 2)[:1], 1)[0][0]
    assert (found.ticket_id, found.label) == ("250", "b1")
    index.close()


def test_removed_points_leave_the_collection_and_the_mirror_alike(tmp_path: Path) -> None:
    index = TicketIndex(path=tmp_path / "q")
    index.upsert("t", _tickets(300), _unit(300, 0))
    others = [IndexedTicket(f"o{i}", "other", "z", f"other {i}") for i in range(50)]
    index.upsert("t", others, _unit(50, 3))
    queries = np.concatenate([_unit(20, 1), _unit(300, 0)[::15]])
    assert _mirror_ids(index, queries, 5) == _qdrant_ids(index, queries, 5)  # mirror loaded
    keep = {str(i) for i in range(300) if i % 4}  # every fourth of "src" goes
    assert index.remove_source_except("t", "src", keep) == 75
    assert index.count("t") == 300 - 75 + 50
    assert _mirror_ids(index, queries, 5) == _qdrant_ids(index, queries, 5)
    found = {n.ticket_id for row in index.neighbours("t", queries, 20) for n in row}
    assert found and not {str(i) for i in range(0, 300, 4)} & found
    assert any(t.startswith("o") for t in found)  # the other source untouched
    assert index.remove_source_except("t", "src", keep) == 0
    assert index.remove_source_except("missing", "src", keep) == 0
    index.close()


def test_a_reopened_index_searches_what_was_stored(tmp_path: Path) -> None:
    index = TicketIndex(path=tmp_path / "q")
    index.upsert("t", _tickets(50), _unit(50, 0))
    queries = _unit(5, 3)
    before = _mirror_ids(index, queries, 4)
    index.close()
    again = TicketIndex(path=tmp_path / "q")
    assert _mirror_ids(again, queries, 4) == before == _qdrant_ids(again, queries, 4)
    again.close()


def test_a_ticket_is_not_its_own_neighbour_and_scores_are_dot_products(tmp_path: Path) -> None:
    index = TicketIndex(path=tmp_path / "q")
    vectors = _unit(10, 4)
    index.upsert("t", _tickets(10), vectors)
    found = index.neighbours("t", vectors[:1], 3, [("src", "0")])[0]
    assert [n.ticket_id for n in found] and "0" not in [n.ticket_id for n in found]
    best = found[0]
    assert abs(best.score - float(vectors[0] @ vectors[int(best.ticket_id)])) < 1e-5
    index.close()


def test_local_storage_commits_through_the_wal(tmp_path: Path) -> None:
    index = TicketIndex(path=tmp_path / "q")
    index.upsert("t", _tickets(3), _unit(3, 0))
    index.close()
    (db,) = (tmp_path / "q").rglob("storage.sqlite")
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_large_local_collection_takes_upserts_without_warnings() -> None:
    # Local mode warns past 20,000 points about its own search; ours goes through the mirror,
    # and pytest turns warnings into errors, so a repeated warning would fail here.
    index = TicketIndex()
    rng = np.random.default_rng(0)
    n = 20_050
    vectors = rng.normal(size=(n, 4)).astype(np.float32)
    tickets = [IndexedTicket(str(i), "big", "a", "t", "human") for i in range(n)]
    for start in range(0, n, 5_000):
        index.upsert("category", tickets[start : start + 5_000], vectors[start : start + 5_000])
    assert index.count("category") == n
    index.close()
