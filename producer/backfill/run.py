"""Running a backfill: validate each row, enqueue in chunks, checkpoint, cap the rate, count.

A checkpoint (the last input line whose chunk Redis confirmed) is written after every chunk, so a
killed run resumes after it; a chunk sent but not checkpointed is sent again on resume and then
skipped as duplicates by the enqueue dedupe, so no ticket is enqueued twice.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from producer.backfill.reader import ByteCounter, Format, Row, open_rows, reject_line, row_to_ticket
from producer.backoff import backoff_s
from producer.client import refuse_unsafe_callbacks, send_tickets
from producer.errors import InvalidTicket, QueueFull
from producer.schemas import TICKET_SYSTEMS, Ticket
from producer.settings import ProducerSettings, get_settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackfillConfig:
    """How to read the input and how fast to send it."""

    #: Ticket source for rows without a ``source`` column.
    source: str = "api"
    fmt: Format = "jsonl"
    #: Ticket field -> input column, e.g. ``{"id": "ticket_id", "body": "text"}``.
    mapping: Mapping[str, str] = field(default_factory=dict)
    chunk_size: int = 500
    #: Most tickets per second (None: as fast as Redis takes them).
    rate_per_s: float | None = None
    #: Bad rows go here as JSON lines with their line number (None: only counted).
    rejects_path: Path | None = None
    #: Progress is recorded here; an existing checkpoint makes the run resume after it.
    checkpoint_path: Path | None = None
    force: bool = False
    #: Ticket systems (``github``, ``zendesk``, ``jira``) whose rows are taken, with their
    #: ``origin``; any other row naming one is rejected (docs/security.md).
    grants: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if self.chunk_size < 1:
            raise ValueError(f"chunk_size={self.chunk_size} must be at least 1")
        if self.rate_per_s is not None and self.rate_per_s <= 0:
            raise ValueError(f"rate_per_s={self.rate_per_s} must be positive")
        if unknown := sorted(set(self.grants) - set(TICKET_SYSTEMS)):
            raise ValueError(f"grants {unknown} are not ticket systems {list(TICKET_SYSTEMS)}")


@dataclass
class BackfillStats:
    read: int = 0
    enqueued: int = 0
    rejected: int = 0
    duplicates: int = 0
    #: Rows skipped because a previous run's checkpoint covers them.
    resumed_past: int = 0
    bytes_read: int = 0
    started: float = field(default_factory=time.monotonic)
    elapsed_s: float = 0.0

    @property
    def tickets_per_s(self) -> float:
        return self.read / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "read": self.read,
            "enqueued": self.enqueued,
            "rejected": self.rejected,
            "duplicates": self.duplicates,
            "resumed_past": self.resumed_past,
            "elapsed_s": round(self.elapsed_s, 3),
            "tickets_per_s": round(self.tickets_per_s, 1),
        }


def run_backfill(
    stream: IO[bytes],
    config: BackfillConfig,
    *,
    progress: Callable[[BackfillStats], None] | None = None,
    settings: ProducerSettings | None = None,
) -> BackfillStats:
    """Enqueue every valid row of `stream`; bad rows never stop the run. Raises
    `BrokerUnavailable` when Redis is down (the checkpoint then says where to resume)."""
    stats = BackfillStats()
    counter = ByteCounter()
    checked = _CallbackCheck(settings or get_settings())
    done_through = _read_checkpoint(config.checkpoint_path)
    chunk_size = config.chunk_size
    if config.rate_per_s is not None:  # small chunks, so the rate is smooth, not bursts
        chunk_size = max(1, min(chunk_size, int(config.rate_per_s / 4)))
    rejects = _open_rejects(config.rejects_path, append=done_through > 0)
    chunk: list[Ticket] = []
    last_line = done_through
    # One chunk in flight on a sender thread while the next is read and validated: Redis runs
    # the push script on its own core meanwhile. A chunk is checkpointed once Redis confirmed it.
    in_flight: tuple[Future[list[bool]], int] | None = None

    def settle() -> None:
        nonlocal in_flight
        if in_flight is None:
            return
        future, through_line = in_flight
        in_flight = None
        sent = future.result()
        new = sum(sent)
        stats.enqueued += new
        stats.duplicates += len(sent) - new
        _write_checkpoint(config.checkpoint_path, through_line)
        stats.bytes_read = counter.bytes
        stats.elapsed_s = time.monotonic() - stats.started
        if progress:
            progress(stats)

    def submit(tickets: list[Ticket], through_line: int) -> None:
        nonlocal in_flight
        settle()
        if config.rate_per_s is not None:
            # Sleep until this chunk is due: everything sent so far, at the capped rate.
            due = stats.started + (stats.enqueued + stats.duplicates) / config.rate_per_s
            time.sleep(max(0.0, due - time.monotonic()))
        future = sender.submit(_send_when_room, tickets, force=config.force, settings=settings)
        in_flight = (future, through_line)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="backfill-send") as sender:
        try:
            for row in open_rows(stream, config.fmt, counter):
                if row.line <= done_through:
                    stats.resumed_past += 1
                    continue
                stats.read += 1
                last_line = row.line
                ticket = _validate(row, config, stats, rejects, checked)
                if ticket is not None:
                    chunk.append(ticket)
                if len(chunk) >= chunk_size:
                    submit(chunk, last_line)
                    chunk = []
            if chunk:
                submit(chunk, last_line)
            settle()
            _write_checkpoint(config.checkpoint_path, last_line)
        finally:
            if in_flight is not None:
                in_flight[0].cancel()
            if rejects is not None:
                rejects.close()
    stats.bytes_read = counter.bytes
    stats.elapsed_s = time.monotonic() - stats.started
    if progress:
        progress(stats)
    log.info("backfill done: %s", stats.summary())
    return stats


def _send_when_room(
    tickets: list[Ticket], *, force: bool, settings: ProducerSettings | None
) -> list[bool]:
    """`send_tickets`, waiting while the queue is at its cap: a backfill is the load that cap
    is for, so it slows to the workers' pace instead of stopping."""
    for attempt in itertools.count():
        try:
            return send_tickets(tickets, force=force, settings=settings, channel="backfill")
        except QueueFull as exc:
            wait_s = backoff_s(attempt, base_s=0.5, cap_s=10.0)
            log.info("%s; the backfill waits %.1f s", exc, wait_s)
            time.sleep(wait_s)
    raise AssertionError("unreachable: the loop returns or raises")


@dataclass
class _CallbackCheck:
    """The intake's callback check per row, so an unsafe callback rejects its row alone (in
    `send_tickets` it would refuse the whole chunk); each host is resolved once a run."""

    settings: ProducerSettings
    resolved: dict[tuple[str, int], list[str]] = field(default_factory=dict)

    def __call__(self, ticket: Ticket) -> Ticket:
        if ticket.callback is not None:
            refuse_unsafe_callbacks([ticket], self.settings, self.resolved)
        return ticket


def _validate(
    row: Row,
    config: BackfillConfig,
    stats: BackfillStats,
    rejects: IO[str] | None,
    callbacks: _CallbackCheck,
) -> Ticket | None:
    error: str | InvalidTicket | None = row.error
    if row.data is not None and error is None:
        try:
            return callbacks(
                row_to_ticket(
                    row.data, mapping=config.mapping, source=config.source, grants=config.grants
                )
            )
        except InvalidTicket as exc:
            error = exc
    stats.rejected += 1
    if rejects is not None:
        rejects.write(reject_line(row, error or "unreadable") + "\n")
    return None


def _read_checkpoint(path: Path | None) -> int:
    if path is None or not path.exists():
        return 0
    return int(json.loads(path.read_text())["line"])


def _write_checkpoint(path: Path | None, line: int) -> None:
    if path is None:
        return
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"line": line}))
    os.replace(tmp, path)  # atomic: a kill mid-write leaves the previous checkpoint


def _open_rejects(path: Path | None, *, append: bool) -> IO[str] | None:
    if path is None:
        return None
    return path.open("a" if append else "w", encoding="utf-8")
