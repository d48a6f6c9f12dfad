"""The neighbour index: a labelled ticket goes in at once, so the next similar ticket benefits.

One upsert per label task for the whole batch. A result without a label (needs review) is not
learnt from. A human label's point says who set it and when (``labelled_by``, ``labelled_at``);
a model's upsert never replaces it (`models.index`). A human label may come without a vector
(feedback through the HTTP app, which has no models): those texts are embedded here, together.
"""

from __future__ import annotations

import numpy as np
import redis

from models.index import IndexedTicket
from producer.schemas import SetBy
from worker import resources
from worker.observe.metrics import get_metrics
from worker.writeback.item import Item


class Index:
    name = "index"

    def may_act(self, item: Item) -> bool:
        """A label to learn, with its vector or a person's (embedded here)."""
        labelled = item.result.status == "labelled" and bool(item.result.label)
        return labelled and bool(item.vector.size or _set_by(item) == "human")

    def write(self, r: redis.Redis, todo: list[Item], deadline: float) -> None:
        learn: list[Item] = []
        for item in todo:
            if self.may_act(item):
                learn.append(item)
            else:
                item.outcomes[self.name] = "skipped"
        unembedded = [i for i in learn if not i.vector.size]
        if unembedded:
            try:
                vectors = resources.embedder().embed([i.ticket.text for i in unembedded])
            except Exception as exc:
                _failed(unembedded, exc)
                learn = [i for i in learn if i.vector.size]
            else:
                for item, vector in zip(unembedded, vectors, strict=True):
                    item.vector = np.asarray(vector, dtype=np.float32)
        by_task: dict[str, list[Item]] = {}
        for item in learn:
            by_task.setdefault(item.ticket.task, []).append(item)
        index = resources.index() if by_task else None
        for task, items in by_task.items():
            assert index is not None
            rows = [_row(i) for i in items]
            try:
                index.upsert(task, rows, np.stack([i.vector for i in items]).astype(np.float32))
            except Exception as exc:  # the index refused them all: each is retried
                _failed(items, exc)
                continue
            for item in items:
                item.outcomes[self.name] = "upserted"


def _row(item: Item) -> IndexedTicket:
    """The index row of `item`: a human label with who set it and when."""
    ticket, result = item.ticket, item.result
    human = _set_by(item) == "human"
    return IndexedTicket(
        ticket.id,
        ticket.source,
        str(result.label),
        ticket.text,
        _set_by(item),
        labelled_by=(result.labelled_by or result.via or "human") if human else None,
        labelled_at=result.decided_at.isoformat() if human else None,
    )


def _set_by(item: Item) -> SetBy:
    return "human" if item.result.decided_by == "human" else "model"


def _failed(items: list[Item], exc: Exception) -> None:
    get_metrics().sink_failures.labels("index").inc()
    for item in items:
        item.error = exc
