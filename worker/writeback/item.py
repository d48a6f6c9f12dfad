"""A decision on its way through the write-back targets, with what each target made of it."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from producer.schemas import Ticket, TriageResult


@dataclass(eq=False)  # compared by identity: `in` over a batch stays cheap
class Item:
    """One decision on its way through the targets."""

    ticket: Ticket
    result: TriageResult
    vector: np.ndarray  # empty when none came (a human label): the index target embeds the text
    key: str  # the revision's `written` hash: which targets are done
    error: Exception | None = None
    outcomes: dict[str, str] = field(default_factory=dict)
    recorded: set[str] = field(default_factory=set)  # targets recorded as they ran

    @property
    def lease_key(self) -> str:
        return self.key + ":lease"
