"""Reading backfill input one row at a time (memory stays flat), and mapping rows to tickets.

A row may name a ticket system's source (``github``, ``zendesk``, ``jira``) and carry an
``origin`` (where its label is written back) only when the run is granted that system
(``triage backfill --grant github``); otherwise the row is rejected, saying so
(docs/security.md).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any, Literal

from producer.errors import InvalidTicket
from producer.schemas import TICKET_SYSTEMS, Ticket

Format = Literal["jsonl", "csv"]
_TICKET_FIELDS = set(Ticket.model_fields)


@dataclass
class Row:
    """One input record: its first line number, and its columns or why it could not be read."""

    line: int
    data: dict[str, Any] | None
    error: str | None = None


class ByteCounter:
    """Counts the bytes read so far, for a progress bar over the file's size."""

    def __init__(self) -> None:
        self.bytes = 0


def open_rows(stream: IO[bytes], fmt: Format, counter: ByteCounter | None = None) -> Iterator[Row]:
    """Yield the rows of a binary JSONL or CSV stream (CSV: the first row names the columns)."""
    counter = counter or ByteCounter()
    if fmt == "jsonl":
        return _jsonl(stream, counter)
    return _csv(stream, counter)


def row_to_ticket(
    data: Mapping[str, Any],
    *,
    mapping: Mapping[str, str],
    source: str,
    grants: Collection[str] = (),
) -> Ticket:
    """A `Ticket` from a row: `mapping` names the column of each ticket field (``body=text``);
    columns of the same name as a field are taken as they are; the rest go into `metadata`.

    `grants`: the ticket systems this run may enqueue for, with the rows' ``origin`` (a JSON
    object, or its text in a CSV cell). A ticket system not granted, or an origin without its
    grant, raises `InvalidTicket` saying so."""
    used = set(mapping.values())
    fields: dict[str, Any] = {"source": source}
    metadata: dict[str, Any] = {}
    for column, value in data.items():
        if column in used:
            continue
        if column in _TICKET_FIELDS and column not in mapping:
            fields[column] = value
        else:
            metadata[column] = value
    for field, column in mapping.items():
        if column in data:
            fields[field] = data[column]
    if isinstance(fields.get("id"), int):
        fields["id"] = str(fields["id"])
    if metadata:
        given = fields.get("metadata")
        fields["metadata"] = {**metadata, **(given if isinstance(given, dict) else {})}
    for key in ("revision", "callback", "created_at", "origin"):
        if fields.get(key) == "":  # an empty CSV cell means "not given"
            del fields[key]
    _check_grant(fields, grants)
    ticket = Ticket.parse(fields)
    if ticket.origin is not None and ticket.origin.system != ticket.source:
        raise _refused(
            "origin",
            f"a {ticket.origin.system} origin cannot be written back for source {ticket.source!r}",
        )
    return ticket


def valid_tickets(
    rows: Iterable[Row], *, mapping: Mapping[str, str], source: str, grants: Collection[str] = ()
) -> Iterator[tuple[dict[str, Any], Ticket]]:
    """Each readable row that makes a valid ticket, with its columns; the rest are skipped
    (`run_backfill` is what reports them)."""
    for row in rows:
        if row.data is None:
            continue
        try:
            ticket = row_to_ticket(row.data, mapping=mapping, source=source, grants=grants)
        except InvalidTicket:
            continue
        yield row.data, ticket


def _check_grant(fields: dict[str, Any], grants: Collection[str]) -> None:
    """Refuse a ticket system's source, or an origin, that the run is not granted."""
    source = fields.get("source")
    if isinstance(source, str) and source in TICKET_SYSTEMS and source not in grants:
        raise _refused(
            "source",
            f"{source!r} is a ticket system: a backfill may enqueue for it only with "
            f"--grant {source}",
        )
    origin = fields.get("origin")
    if origin is None:
        return
    if not (isinstance(source, str) and source in TICKET_SYSTEMS):
        raise _refused(
            "origin", "write-back coordinates come only with a granted ticket system's source"
        )
    if isinstance(origin, str):  # a CSV cell holds the object as JSON text
        try:
            fields["origin"] = json.loads(origin)
        except (ValueError, RecursionError) as exc:
            raise _refused("origin", "is not a JSON object") from exc


def _refused(field: str, error: str) -> InvalidTicket:
    return InvalidTicket(f"invalid ticket ({field}: {error})", [{"field": field, "error": error}])


def _jsonl(stream: IO[bytes], counter: ByteCounter) -> Iterator[Row]:
    for n, raw in enumerate(stream, start=1):
        counter.bytes += len(raw)
        if not raw.strip():
            continue
        try:
            data = json.loads(raw)
        except UnicodeDecodeError:
            yield Row(n, None, "not UTF-8")
            continue
        except json.JSONDecodeError as exc:
            yield Row(n, None, f"not JSON: {exc.msg}")
            continue
        except (ValueError, RecursionError):  # an integer of 5,000 digits, arrays 10,000 deep
            yield Row(n, None, "not JSON we read: a number too long or nesting too deep")
            continue
        if not isinstance(data, dict):
            yield Row(n, None, "not a JSON object")
            continue
        yield Row(n, data)


def _csv(stream: IO[bytes], counter: ByteCounter) -> Iterator[Row]:
    def lines() -> Iterator[str]:
        for raw in stream:
            counter.bytes += len(raw)
            # A bad byte spoils one cell, not the run; the row then fails validation or not.
            yield raw.decode("utf-8-sig" if counter.bytes == len(raw) else "utf-8", "replace")

    reader = csv.DictReader(lines())
    try:
        reader.fieldnames  # noqa: B018  (reads the header, so line numbers start after it)
    except csv.Error as exc:
        yield Row(1, None, f"not CSV: {exc}")
        return
    while True:
        start = reader.line_num + 1
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield Row(start, None, f"not CSV: {exc}")
            continue
        if None in record:
            yield Row(start, None, "more cells than columns")
            continue
        yield Row(start, dict(record))


def reject_line(row: Row, error: str | InvalidTicket) -> str:
    """One line of the rejects file (JSON): the line number, the error(s) and the row."""
    if isinstance(error, InvalidTicket):
        entry: dict[str, Any] = {"line": row.line, "errors": error.errors, "row": row.data}
    else:
        entry = {"line": row.line, "errors": [{"field": "row", "error": error}], "row": row.data}
    return json.dumps(entry, default=str)
