"""Seed a task's neighbour index with labelled tickets: `triage seed` and the demo alike.

Seeded tickets carry human labels (a person gave them), so the worker's later model labels never
replace them. Each ticket's id is stable, the row's own id or a digest of its text, so seeding the
same file again replaces its points instead of adding copies, and a text that occurs twice in the
file is one point. Texts are embedded by the worker's own embedder, in batches, with progress.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from models.data import LabelledText
from models.progress import progress

if TYPE_CHECKING:
    from models.embedder import Embedder
    from models.index import TicketIndex

#: Tickets embedded and upserted at a time: big enough to keep the embedder busy, small enough
#: that progress moves every few seconds on a CPU.
SEED_BATCH = 256


@dataclass(frozen=True)
class SeedReport:
    """What `seed_index` did."""

    task: str
    source: str
    rows: int
    #: Distinct tickets written (rows sharing an id or a text are one ticket; the last row wins).
    tickets: int
    #: Texts that occur more than once with different labels (the last row's label is kept).
    conflicts: int
    #: The task's collection after seeding (earlier tickets and the worker's included).
    index_total: int
    seconds: float
    #: Tickets of this source an earlier seed put in and this one no longer holds, removed
    #: (`replace`); 0 when not asked.
    removed: int = 0


def text_id(text: str) -> str:
    """A ticket id stable across re-seeds and row order: a digest of the text."""
    return "text-" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


def seed_index(
    index: TicketIndex,
    embedder: Embedder,
    task: str,
    rows: Sequence[LabelledText],
    *,
    source: str,
    ids: Sequence[str] | None = None,
    labelled_by: str = "seed",
    show_progress: bool = True,
    replace: bool = False,
) -> SeedReport:
    """Upsert `rows` into `task`'s collection as human-labelled tickets of `source`.

    `ids` (one per row, e.g. `triage export`'s ticket ids) name the tickets; by default each is
    `text_id` of its text. `replace`: then remove the tickets of `source` that are not among
    them (rows dropped from the file since an earlier seed), once every row is in.
    """
    from models.index import IndexedTicket

    if ids is not None and len(ids) != len(rows):
        raise ValueError(f"{len(ids)} ids for {len(rows)} rows")
    started = time.perf_counter()
    chosen: dict[str, LabelledText] = {}
    labels_of: dict[str, set[str]] = {}
    for i, row in enumerate(rows):
        key = ids[i] if ids is not None else text_id(row.text)
        chosen.pop(key, None)  # re-inserted: the last row wins and keeps its place
        chosen[key] = row
        labels_of.setdefault(row.text, set()).add(row.label)
    at = datetime.now(UTC).isoformat()
    items = list(chosen.items())
    with progress("seeding the index", len(items), enabled=show_progress) as step:
        for start in range(0, len(items), SEED_BATCH):
            chunk = items[start : start + SEED_BATCH]
            tickets = [
                IndexedTicket(key, source, r.label, r.text, "human", labelled_by, at)
                for key, r in chunk
            ]
            index.upsert(task, tickets, embedder.embed([r.text for _, r in chunk]))
            step.advance(len(chunk))
    removed = index.remove_source_except(task, source, chosen.keys()) if replace else 0
    return SeedReport(
        task=task,
        source=source,
        rows=len(rows),
        tickets=len(items),
        conflicts=sum(len(labels) > 1 for labels in labels_of.values()),
        index_total=index.count(task),
        seconds=time.perf_counter() - started,
        removed=removed,
    )
