"""Database rows to the plain records the ledger hands out (`producer.ledger.records`): each
record field is read off the row's column of the same name."""

from __future__ import annotations

from dataclasses import fields
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Row

from producer.ledger.records import (
    DecisionRecord,
    HumanLabelRecord,
    ReviewItem,
    Suggestion,
    TicketRecord,
)

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

R = TypeVar("R", bound="DataclassInstance")


def item(row: Row[Any]) -> ReviewItem:
    return _record(ReviewItem, row)


def ticket(row: Row[Any]) -> TicketRecord:
    return _record(TicketRecord, row)


def decision(row: Row[Any]) -> DecisionRecord:
    return _record(
        DecisionRecord,
        row,
        versions=dict(row.versions),
        neighbours=list(row.neighbours),
        stages=list(row.stages),
        suggestions=[Suggestion(str(s["label"]), float(s["confidence"])) for s in row.suggestions],
    )


def human_label(row: Row[Any]) -> HumanLabelRecord:
    return _record(HumanLabelRecord, row)


def _record(kind: type[R], row: Row[Any], **given: Any) -> R:
    """A `kind` whose fields are `given`, the others read off `row`'s columns of those names."""
    read = {f.name: getattr(row, f.name) for f in fields(kind) if f.name not in given}
    return kind(**read, **given)
