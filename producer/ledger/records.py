"""What the ledger hands back: plain frozen dataclasses (no SQLAlchemy), for the desk and CLI."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

#: Why an item is on the desk (`producer.ledger.facts.why_for` reads it off a result's reason).
Why = Literal[
    "unsure", "frontier_refused", "budget", "disagreement", "no_frontier", "audit", "other"
]
#: `review`: the cascade could not decide; `audit`: a sampled auto label, to measure precision.
Kind = Literal["review", "audit"]
#: `claimed` with an expired claim counts as open; `resolved` and `skipped` are final.
State = Literal["open", "claimed", "resolved", "skipped"]
#: The channels a person's label comes through (TriageResult.via "review" is the desk).
VIAS = ("desk", "api", "github", "jira", "zendesk")
Split = Literal["train", "holdout"]


@dataclass(frozen=True)
class TicketRecord:
    """A ticket as last seen, with the write-back coordinates its verified channel gave."""

    source: str
    ticket_id: str
    subject: str
    body: str
    origin: dict[str, Any] | None
    first_seen_at: datetime
    last_seen_at: datetime

    @property
    def text(self) -> str:
        """What the models read (as `Ticket.text`)."""
        return f"{self.subject}\n{self.body}".strip()


@dataclass(frozen=True)
class Suggestion:
    """A label the cascade considered, with its confidence."""

    label: str
    confidence: float


@dataclass(frozen=True)
class DecisionRecord:
    """One decision for one revision of a ticket, as recorded."""

    id: int
    task: str
    source: str
    ticket_id: str
    revision: str
    label: str | None
    confidence: float
    decided_by: str
    status: str
    reason: str | None
    model_version: str | None
    adapter_version: str | None
    versions: dict[str, str]
    #: The neighbours' ids with their labels and scores ({source, ticket_id, label, score, set_by}).
    neighbours: list[dict[str, Any]]
    #: Each stage that ran: {stage, label, confidence, latency_ms, cost_usd}.
    stages: list[dict[str, Any]]
    suggestions: list[Suggestion]
    cost_usd: float
    decided_at: datetime
    #: None: applied; else why the write-back applied it nowhere (`Ledger.record`).
    superseded: str | None = None


@dataclass(frozen=True)
class HumanLabelRecord:
    """A person's label, who set it, through which channel, and what the model had said."""

    id: int
    task: str
    source: str
    ticket_id: str
    revision: str
    label: str
    labelled_by: str
    via: str
    note: str | None
    labelled_at: datetime
    #: The label of the latest model decision before this one (None: there was none).
    model_label: str | None
    model_adapter_version: str | None


@dataclass(frozen=True)
class ReviewItem:
    """One item on the desk."""

    id: int
    task: str
    source: str
    ticket_id: str
    revision: str
    kind: Kind
    why: Why
    state: State
    claimed_by: str | None
    claim_expires_at: datetime | None
    resolved_by: str | None
    resolved_at: datetime | None
    answer_label: str | None
    note: str | None
    created_at: datetime


@dataclass(frozen=True)
class QueueEntry:
    """A row of the queue page: the item, the ticket's subject and the model's suggestion."""

    item: ReviewItem
    subject: str
    label: str | None
    confidence: float | None


@dataclass(frozen=True)
class ItemView:
    """A ticket page: the item, its ticket, the decision it is about, and the person's labels."""

    item: ReviewItem
    ticket: TicketRecord | None
    decision: DecisionRecord | None
    human_labels: list[HumanLabelRecord] = field(default_factory=list)

    @property
    def neighbour_ids(self) -> list[tuple[str, str]]:
        """(source, ticket id) of each neighbour the decision cited."""
        if self.decision is None:
            return []
        return [(str(n["source"]), str(n["ticket_id"])) for n in self.decision.neighbours]


@dataclass(frozen=True)
class Counts:
    """How many items of a task are in each state (`claimed`: claims not yet expired)."""

    open: int
    claimed: int
    resolved: int
    skipped: int

    @property
    def waiting(self) -> int:
        """Open and claimed: what the desk still has to answer."""
        return self.open + self.claimed


@dataclass(frozen=True)
class ExportRow:
    """One training example: the latest person's label if any, else the model's."""

    ticket_id: str
    source: str
    text: str
    label: str
    split: Split
    set_by: Literal["human", "model"]


@dataclass(frozen=True)
class Interval:
    """A proportion with its 95% Wilson score interval."""

    value: float
    low: float
    high: float


@dataclass(frozen=True)
class VersionStats:
    """Figures for one adapter version of a task over the window (model decisions only)."""

    adapter_version: str | None
    decisions: int
    auto: int
    #: auto / decisions: the share labelled without a person.
    coverage: float
    audited: int
    audit_correct: int
    #: audit_correct / audited with its 95% interval; None before the first audit.
    precision: Interval | None
    #: Auto labels a person later changed (any channel), and their share of `auto`.
    corrected: int
    correction_rate: float


@dataclass(frozen=True)
class Confusion:
    """People changed the model's `model_label` into `human_label` this many times."""

    model_label: str
    human_label: str
    count: int


@dataclass(frozen=True)
class Stats:
    """A task's quality over [since, until): per adapter version, the desk, the confusions."""

    task: str
    since: datetime
    until: datetime
    versions: list[VersionStats]
    queue_depth: int
    #: Age in seconds of the oldest item still waiting (None: the desk is empty).
    oldest_age_s: float | None
    confusions: list[Confusion]
