"""A decision on its way through the write-back targets, with what each target made of it."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from producer.names import label_key
from producer.schemas import Ticket, TriageResult
from worker.writeback import decide
from worker.writeback.decide import APPLY


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
    #: Targets done and not recorded yet (target -> outcome): the next gate call records them.
    unrecorded: dict[str, str] = field(default_factory=dict)
    #: `decide.APPLY`, or why no target applies it (``kept-human-label``, ``stale-revision``).
    decision: str = APPLY

    @cached_property
    def lease_key(self) -> str:
        return self.key + ":lease"

    @cached_property
    def label_key(self) -> str:
        """The ticket's label state (`worker.writeback.decide`)."""
        return label_key(self.ticket.task, self.ticket.source, self.ticket.id)

    @cached_property
    def gate_args(self) -> list[str]:
        """What `decide.GATE` decides on, the same at every step of a run: human ("1"/"0"),
        revision kind and key, created key, human label time key, labelled_by, label, revision."""
        kind, key = decide.revision_order(self.ticket.effective_revision)
        result = self.result
        return [
            "1" if self.by_human else "0",
            kind,
            key,
            decide.time_order(self.ticket.created_at),
            decide.time_order(result.decided_at) if self.by_human else "",
            result.labelled_by or "",
            result.label or "",
            self.ticket.effective_revision,
        ]

    @property
    def by_human(self) -> bool:
        return self.result.decided_by == "human"
