"""A scored ticket never meets itself: the search of `triage tune` and `triage eval`.

An index can hold the very tickets being scored: tuning's in-memory index holds every held-out
ticket (under its tuning id), and the worker's index, once `triage demo` has seeded it, holds the
training set and the test tickets the demo wrote back. A ticket that finds itself or a copy of
its text among its neighbours votes for its own label, and the precision measured is not the
precision served (on Banking77: 96.4% served after 99% measured that way).

`Overlaps` wraps any `Search` and leaves out, for each ticket it knows (`know`), its own point
(same source and id), every neighbour whose text is a copy of the ticket's (compared
`normalise`d), and any neighbour of a label taken out of scope (`triage eval --unknown-labels`);
it asks the index for more neighbours until k remain, and counts what it left out.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Collection, Iterable, Sequence

import numpy as np

from models.cascade import Search
from models.index import SNIPPET_CHARS
from producer.schemas import Neighbour, Ticket

#: Neighbours asked for beyond k in a first query; the margin grows fourfold while short.
MARGIN = 8

Key = tuple[str, str]


def normalise(text: str) -> str:
    """What makes two texts copies: equal after NFKC, casefolding and collapsing whitespace."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


class Overlaps:
    """A `Search` that never returns a known ticket's own point or a copy of its text.

    The index keeps a neighbour's first `SNIPPET_CHARS` characters, not its whole text: a
    neighbour cut there is a copy when the ticket's text begins with it.
    """

    def __init__(self, search: Search, hidden_labels: Collection[str] = ()) -> None:
        self._search = search
        self._hidden = frozenset(hidden_labels)
        self._texts: dict[Key, str] = {}  # normalised
        self._own: set[tuple[Key, Key]] = set()
        self._copies: set[tuple[Key, Key]] = set()

    def know(self, tickets: Iterable[Ticket]) -> None:
        """Remember these tickets' texts: their searches leave out copies of them."""
        for t in tickets:
            self._texts[(t.source, t.id)] = normalise(t.text)

    def counts(self) -> dict[str, int]:
        """``own``: own points left out; ``copies``: copies of the ticket's text left out;
        ``tickets``: tickets that lost one or more (each pair counted once, however many
        searches met it)."""
        return {
            "own": len(self._own),
            "copies": len(self._copies),
            "tickets": len({q for q, _ in self._own | self._copies}),
        }

    def line(self) -> str:
        """The counts for people, e.g. ``left out 12 copies of 9 tickets (and 0 own points)``."""
        c = self.counts()
        return (
            f"left out {c['copies']:,} copies of {c['tickets']:,} tickets' own text "
            f"and {c['own']:,} own points among their neighbours"
        )

    def __call__(
        self, vectors: np.ndarray, k: int, exclude: Sequence[tuple[str, str]]
    ) -> list[list[Neighbour]]:
        out: list[list[Neighbour]] = [[] for _ in range(len(vectors))]
        todo = list(range(len(vectors)))
        margin = MARGIN
        while todo:
            # No exclusion below: the own point comes back, and is left out (and counted) here.
            found = self._search(vectors[todo], k + margin, [])
            short = []
            for i, row in zip(todo, found, strict=True):
                key = exclude[i] if i < len(exclude) else None
                kept = self._keep(key, row, k)
                if len(kept) < k and len(row) == k + margin:  # the index holds more
                    short.append(i)
                else:
                    out[i] = kept
            todo, margin = short, margin * 4
        return out

    def _keep(self, key: Key | None, row: Sequence[Neighbour], k: int) -> list[Neighbour]:
        """The first k of `row` that are not `key`'s own, a copy, or of a hidden label."""
        text = self._texts.get(key) if key is not None else None
        kept: list[Neighbour] = []
        for n in row:
            if len(kept) == k:
                break
            if n.label in self._hidden:
                continue
            if key is not None and (n.source, n.ticket_id) == key:
                self._own.add((key, key))
            elif key is not None and text is not None and _copy(text, n.snippet):
                self._copies.add((key, (n.source, n.ticket_id)))
            else:
                kept.append(n)
        return kept


def _copy(whole: str, snippet: str) -> bool:
    """Whether a neighbour's `snippet` is a copy of the `whole` (normalised) text."""
    cut = normalise(snippet)
    if not cut:
        return False
    return cut == whole if len(snippet) < SNIPPET_CHARS else whole.startswith(cut)
