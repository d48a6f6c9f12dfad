"""One tokenisation and one cut into batches per ticket, for the classifier and the embedder.

The cascade's first pass calls the classifier, then the embedder, on the same list of texts; on
MiniLM both read with the same tokenizer. Whichever comes first encodes the texts here
(`truncation.encode`, at the longer of the two readers' lengths: the other's cut is `recut` of
it) and plans the batches by length; the second finds both. One entry each per thread (first
passes may run side by side): the thread's next batch replaces them, so nothing grows with
traffic.

When the classifier runs on a shared trunk (`models.trunk`), it leaves here the embedder's
vectors of the texts it read whole, and the embedder runs only on the rest.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from models import truncation
from models.batches import plan_batches


class _Latest(threading.local):
    """One thread's latest entries (each thread starts with none)."""

    ids: tuple[tuple[str, ...], int, list[list[int]]] | None = None
    plan: tuple[tuple[Any, ...], list[list[int]]] | None = None
    vectors: tuple[tuple[str, ...], dict[int, np.ndarray]] | None = None


class SharedTokens:
    """Token ids (and batch plans) of the latest texts, for every reader of one tokenizer."""

    def __init__(self, tokenizer: Any, max_length: int = 8) -> None:
        self.tokenizer = tokenizer
        self.pad_id: int = tokenizer.pad_token_id
        self.left_pad = getattr(tokenizer, "padding_side", "right") == "left"
        #: The longest reader's length: texts are encoded at it once.
        self.max_length = max_length
        self._latest = _Latest()

    def widen(self, max_length: int) -> None:
        """Make room for a reader of `max_length` tokens (at load, before serving)."""
        self.max_length = max(self.max_length, max_length)

    def encode(self, texts: Sequence[str], max_length: int) -> list[list[int]]:
        """`truncation.encode(tokenizer, texts, max_length)`, tokenised once for all readers."""
        self.widen(max_length)
        key = tuple(texts)
        entry = self._latest.ids
        if entry is None or entry[1] != self.max_length or entry[0] != key:
            entry = (key, self.max_length, truncation.encode(self.tokenizer, key, self.max_length))
            self._latest.ids = entry
        ids = entry[2]
        if max_length >= entry[1]:
            return ids
        return [truncation.recut(self.tokenizer, row, max_length) for row in ids]

    def full_lengths(self, texts: Sequence[str]) -> list[int]:
        """Token counts of `texts` at the longest reader's length (after `encode` of them)."""
        return [len(ids) for ids in self.encode(texts, self.max_length)]

    def keep_vectors(self, texts: Sequence[str], vectors: dict[int, np.ndarray]) -> None:
        """The embedder's vectors of some of `texts` (by position), computed by a shared trunk."""
        self._latest.vectors = (tuple(texts), vectors)

    def vectors(self, texts: Sequence[str]) -> dict[int, np.ndarray]:
        """The vectors `keep_vectors` left for exactly these texts (empty when none)."""
        entry = self._latest.vectors
        if entry is None or entry[0] != tuple(texts):
            return {}
        return entry[1]

    def plan(
        self,
        token_ids: Sequence[Sequence[int]],
        *,
        batch_size: int,
        max_batch_tokens: int | None,
        overhead_tokens: int | None,
    ) -> list[list[int]]:
        """`plan_batches` of these ids' lengths, computed once for the same lengths and limits."""
        key = (
            tuple(len(ids) for ids in token_ids),
            batch_size,
            max_batch_tokens,
            overhead_tokens,
        )
        entry = self._latest.plan
        if entry is None or entry[0] != key:
            batches = plan_batches(
                key[0],
                batch_size=batch_size,
                max_batch_tokens=max_batch_tokens,
                overhead_tokens=overhead_tokens,
            )
            entry = self._latest.plan = (key, batches)
        return entry[1]
