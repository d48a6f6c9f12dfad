"""Bodies of the HTTP API that are not the service's contract (`producer.schemas`): what an
enqueue answers, and a person's label sent as feedback."""

from __future__ import annotations

from pydantic import BaseModel, Field

from producer.schemas import Name


class Accepted(BaseModel):
    id: str
    source: str
    duplicate: bool = Field(description="this revision was enqueued before; not sent again")


class Feedback(BaseModel):
    """A person's label for a ticket the service knows. The ticket's text and coordinates are
    the service's stored copy; anything else in the body is ignored."""

    label: str = Field(min_length=1, max_length=256)
    task: Name = "category"
    note: str | None = Field(default=None, max_length=1000)
