"""The dead-letter list (`triage:dead`): park a message there, read it, and send its entries back
to their queues.

Every entry is a JSON object ``{"task", "reason", "payload", "at"}`` pushed by `dead_letter` (newest
first); an item that was not even a message envelope has ``"task": null`` and cannot be replayed.
Replay is idempotent: an entry is queued again with a gate key derived from its exact bytes, set in
the same atomic step as the push, then removed from the list. Replaying it again (two operators, a
crash between push and removal) finds the gate closed and only removes it, so no entry is queued
twice.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import redis

from producer import wire
from producer.callbacks import scrub_urls
from producer.errors import BrokerUnavailable
from producer.names import (
    CLASSIFY_TASK,
    DEAD_LETTER_LIST,
    ESCALATE_TASK,
    KEY_PREFIX,
    ROUTES,
)
from producer.settings import ProducerSettings
from worker import resources
from worker.observe import events

#: How many list items one round trip reads.
_PAGE = 500
_TASK_ID_NAMESPACE = uuid.UUID("a3d7b0a4-1f51-4c8e-9a59-2f3c6e0d8b12")


def dead_letter(task_name: str, payload: Any, reason: str) -> None:
    """Park a message that will not succeed, with why, for an operator to inspect or replay.
    URLs in `reason` lose any credentials and query (a callback's may carry a token)."""
    reason = scrub_urls(reason)
    entry = {
        "task": task_name,
        "reason": reason,
        "payload": payload,
        "at": datetime.now(UTC).isoformat(),
    }
    events.dead_lettered(task_name, payload, reason)
    try:
        resources.redis_conn().lpush(DEAD_LETTER_LIST, json.dumps(entry, default=str))
    except redis.RedisError as exc:
        raise BrokerUnavailable(f"Redis is unreachable; cannot dead-letter: {exc}") from exc


@dataclass(frozen=True)
class DeadLetter:
    """One entry; `raw` is the list item exactly as stored (the handle to remove it)."""

    raw: str
    task: str | None
    reason: str
    payload: Any
    at: str

    @property
    def replayable(self) -> bool:
        return self.task in ROUTES and isinstance(self.payload, dict)

    @property
    def ticket(self) -> str:
        """``source/id`` of the ticket the entry is about, or ``-``."""
        found = _ticket_of(self.task, self.payload)
        if not isinstance(found, dict):
            return "-"
        return f"{found.get('source', 'api')}/{found.get('id', '?')}"


@dataclass
class ReplayReport:
    replayed: list[DeadLetter] = field(default_factory=list)
    #: Queued by an earlier replay that did not get to remove them; removed now.
    already: list[DeadLetter] = field(default_factory=list)
    #: Not replayable (no task, or a payload that is not a task's arguments); left in the list.
    skipped: list[DeadLetter] = field(default_factory=list)


def entries(
    client: redis.Redis, *, reason: str | None = None, limit: int | None = None
) -> list[DeadLetter]:
    """Entries whose reason contains `reason` (any case), oldest first, at most `limit`."""
    wanted = reason.lower() if reason else None
    out: list[DeadLetter] = []
    for entry in _oldest_first(client):
        if wanted is None or wanted in entry.reason.lower():
            out.append(entry)
            if limit is not None and len(out) >= limit:
                break
    return out


def replay(
    client: redis.Redis, chosen: list[DeadLetter], settings: ProducerSettings
) -> ReplayReport:
    """Queue `chosen` entries again (each once, ever) and remove them from the list.

    Stops with `QueueFull` when a queue is at its cap (what was replayed so far stays
    replayed) and raises `BrokerUnavailable` when Redis does not answer.
    """
    report = ReplayReport()
    try:
        for entry in chosen:
            if not entry.replayable or entry.task is None:
                report.skipped.append(entry)
                continue
            digest = hashlib.sha256(entry.raw.encode()).hexdigest()[:32]
            message = wire.Message(
                # Stable per entry, so the replayed task is recognisable across a second try.
                task_id=str(uuid.uuid5(_TASK_ID_NAMESPACE, digest)),
                kwargs_json=json.dumps(_kwargs(entry.task, entry.payload)),
                kwargsrepr=f"{{replay of: {entry.ticket}}}",
            )
            gate = wire.Gate(f"{KEY_PREFIX}:replayed:{digest}", ttl_s=settings.dedupe_ttl_s)
            try:
                wire.push(
                    client,
                    entry.task,
                    ROUTES[entry.task],
                    [message],
                    ttl_s=settings.dedupe_ttl_s,
                    gate=gate,
                    max_depth=settings.max_queue_depth,
                )
                report.replayed.append(entry)
            except wire.GateClosed:
                report.already.append(entry)
            client.lrem(DEAD_LETTER_LIST, 1, entry.raw)
    except redis.RedisError as exc:
        raise BrokerUnavailable(f"Redis is unreachable while replaying: {exc}") from exc
    return report


def _kwargs(task: str, payload: dict[str, Any]) -> dict[str, Any]:
    """The task's keyword arguments from what `dead_letter` stored for it."""
    if task == ESCALATE_TASK:
        return {"first": payload}  # the escalate task parks its `first` argument alone
    if task == CLASSIFY_TASK:
        return {**payload, "retries": 0}  # a fresh set of tries: the cause is meant to be fixed
    return dict(payload)  # writeback: {"ticket", "result"}; its sinks are idempotent


def _ticket_of(task: str | None, payload: Any) -> Any:
    # Each task's payload holds the ticket under "ticket" (escalate's is a `FirstPass`).
    if task not in ROUTES or not isinstance(payload, dict):
        return None
    return payload.get("ticket")


def _oldest_first(client: redis.Redis) -> Iterator[DeadLetter]:
    # LPUSH puts the newest at the head: walk from the tail. Indexes shift while workers push,
    # which at worst shows an entry twice; replay removes by value, so it stays exact.
    try:
        end = -1
        while True:
            page: list[str] = client.lrange(DEAD_LETTER_LIST, end - _PAGE + 1, end)  # type: ignore[assignment]
            for raw in reversed(page):
                yield _parse(raw)
            if len(page) < _PAGE:
                return
            end -= _PAGE
    except redis.RedisError as exc:
        raise BrokerUnavailable(f"Redis is unreachable: {exc}") from exc


def _parse(raw: str) -> DeadLetter:
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        return DeadLetter(raw, None, "not a dead-letter entry", raw, "")
    task = data.get("task")
    return DeadLetter(
        raw=raw,
        task=task if isinstance(task, str) else None,
        reason=str(data.get("reason", "")),
        payload=data.get("payload"),
        at=str(data.get("at", "")),
    )
