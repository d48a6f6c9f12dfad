"""The pydantic contract: what goes on the queue (`Ticket`) and what comes back (`TriageResult`)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from producer.errors import InvalidTicket

MAX_ID_CHARS = 256
MAX_SUBJECT_CHARS = 1_000
MAX_BODY_CHARS = 50_000
MAX_METADATA_BYTES = 16_384
MAX_METADATA_DEPTH = 32

Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
DecidedBy = Literal["classifier", "retrieval", "frontier", "human"]
Status = Literal["labelled", "needs_review"]
SetBy = Literal["model", "human"]


#: The ticket systems a label is written back to; their sources are reserved (docs/security.md).
TICKET_SYSTEMS = ("github", "zendesk", "jira")
#: GitHub: an owner (user or organisation) and a repository name, as GitHub allows them.
GITHUB_REPO = r"^[A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9._-]{1,100}$"
#: Jira: a project key and the issue's number ("OPS-42").
JIRA_KEY = r"^[A-Z][A-Z0-9_]{0,49}-[1-9][0-9]{0,17}$"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _utcnow() -> datetime:
    return datetime.now(UTC)


class GitHubIssue(BaseModel):
    """Where a GitHub issue lives, as its signed webhook named it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    system: Literal["github"] = "github"
    repo: str = Field(pattern=GITHUB_REPO)
    number: int = Field(gt=0, lt=2**31)

    @field_validator("repo")
    @classmethod
    def _not_a_dot_path(cls, value: str) -> str:
        if value.split("/")[1] in {".", ".."}:
            raise ValueError("is not a repository name")
        return value


class ZendeskTicket(BaseModel):
    """A Zendesk ticket, as its signed trigger named it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    system: Literal["zendesk"] = "zendesk"
    id: int = Field(gt=0, lt=2**53)


class JiraIssue(BaseModel):
    """A Jira issue, as its signed webhook named it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    system: Literal["jira"] = "jira"
    key: str = Field(pattern=JIRA_KEY)


#: A ticket's write-back coordinates, recorded at intake from the channel it arrived on.
Origin = Annotated[GitHubIssue | ZendeskTicket | JiraIssue, Field(discriminator="system")]


class Ticket(BaseModel):
    """One support ticket to label. `id` is unique within `source`."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    id: str = Field(min_length=1, max_length=MAX_ID_CHARS)
    source: Name = "api"
    subject: str = Field(default="", max_length=MAX_SUBJECT_CHARS)
    body: str = Field(default="", max_length=MAX_BODY_CHARS)
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime = Field(default_factory=_utcnow)
    revision: str | None = Field(default=None, min_length=1, max_length=128)
    callback: AnyHttpUrl | None = None
    task: Name = "category"
    #: Where a label may be written back: set by the verified channel the ticket came through
    #: (a signed webhook) or a credential granted write-back to that system; never by metadata.
    origin: Origin | None = None

    @field_validator("id", "revision")
    @classmethod
    def _no_control_characters(cls, value: str | None) -> str | None:
        # Ids end up in keys, URLs, logs and headers: nothing there may be steered by a byte.
        if value is not None and _CONTROL.search(value):
            raise ValueError("must not contain control characters")
        return value

    @field_validator("subject", "body")
    @classmethod
    def _no_nul(cls, value: str) -> str:
        if "\x00" in value:
            raise ValueError("must not contain NUL bytes")
        return value

    @field_validator("metadata")
    @classmethod
    def _metadata_bounded(cls, value: dict[str, Any]) -> dict[str, Any]:
        # Depth too: a few hundred nested objects pass the size cap but break serialising.
        if _depth(value) > MAX_METADATA_DEPTH:
            raise ValueError(f"is nested more than {MAX_METADATA_DEPTH} levels deep")
        size = len(json.dumps(value, default=str).encode())
        if size > MAX_METADATA_BYTES:
            raise ValueError(f"is {size} bytes as JSON; the limit is {MAX_METADATA_BYTES}")
        return value

    @model_validator(mode="after")
    def _has_text(self) -> Ticket:
        if not self.subject and not self.body:
            raise ValueError("a ticket needs a subject or a body")
        return self

    @property
    def text(self) -> str:
        """What the models read: the subject and the body."""
        return f"{self.subject}\n{self.body}".strip()

    @property
    def effective_revision(self) -> str:
        """The revision write-back keys on; tickets without one are classified once."""
        return self.revision or "0"

    @classmethod
    def parse(cls, data: Any) -> Ticket:
        """Validate `data` (a dict or a JSON string), raising `InvalidTicket` with field errors."""
        try:
            if isinstance(data, str | bytes):
                return cls.model_validate_json(data)
            return cls.model_validate(data)
        except ValidationError as exc:
            errors = [
                {"field": ".".join(str(p) for p in e["loc"]) or "ticket", "error": e["msg"]}
                for e in exc.errors()
            ]
            fields = ", ".join(f"{e['field']}: {e['error']}" for e in errors)
            raise InvalidTicket(f"invalid ticket ({fields})", errors) from exc


class Neighbour(BaseModel):
    """A similar, already-labelled ticket from the index: evidence for a label."""

    ticket_id: str
    source: str
    label: str
    score: float
    set_by: SetBy = "model"
    snippet: str = ""


class StageTrace(BaseModel):
    """What one stage of the cascade concluded, and what it cost."""

    stage: Literal["classifier", "retrieval", "cascade", "frontier", "human"]
    label: str | None
    confidence: float
    latency_ms: float
    cost_usd: float = 0.0
    detail: dict[str, Any] = Field(default_factory=dict)


class TriageResult(BaseModel):
    """The label of one ticket, with everything needed to explain and audit it."""

    ticket_id: str
    source: str
    task: str
    revision: str
    label: str | None
    confidence: float = Field(ge=0.0, le=1.0)
    decided_by: DecidedBy
    status: Status
    reason: str | None = None
    evidence: list[Neighbour] = Field(default_factory=list)
    trace: list[StageTrace] = Field(default_factory=list)
    versions: dict[str, str] = Field(default_factory=dict)
    enqueued_at: datetime | None = None
    decided_at: datetime = Field(default_factory=_utcnow)
    #: A human label's author (a login, an account id, a credential's name) and the channel it
    #: came through ("api", "review", "github", "jira", "zendesk"); None for a model's label.
    labelled_by: str | None = Field(default=None, max_length=256)
    via: str | None = Field(default=None, max_length=64)

    @property
    def latency_ms(self) -> float | None:
        """From enqueue to decision, when the enqueue time is known."""
        if self.enqueued_at is None:
            return None
        return (self.decided_at - self.enqueued_at).total_seconds() * 1000.0


def _depth(value: Any) -> int:
    """How deeply lists and objects nest in `value` (a scalar is 0), without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            node = list(node.values())
        if isinstance(node, list):
            deepest = max(deepest, depth + 1)
            stack.extend((child, depth + 1) for child in node)
    return deepest
