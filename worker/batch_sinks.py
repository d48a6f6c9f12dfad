"""Write-back of many results at once: what `worker.sinks.write_back` does for one ticket, with one
Redis round trip per step for the whole batch and one index upsert.

The guarantees are the single path's, per ticket revision: each sink runs once (the same
`written` hash), a model never overwrites a human label (the same script), and a run holds the
revision's lease, renewed before each sink, while it writes. A ticket whose sink fails, or whose
lease another run holds, leaves the batch with its error and its lease released; the caller
retries it alone (`triage.writeback`, with backoff, then the dead-letter list) while the others
go on. Redis unreachable fails the whole batch: every step is idempotent, so it may run again.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import redis

from models.index import IndexedTicket
from models.vectors import pack, unpack
from producer.errors import BrokerUnavailable, SinkUnavailable
from producer.names import EVENTS_STREAM, result_key, written_key
from producer.schemas import Ticket, TriageResult
from worker import resources, sinks
from worker.metrics import get_metrics
from worker.settings import get_settings
from worker.sources import write_to_source
from worker.sources.callback import post_callback

log = logging.getLogger(__name__)

#: What each ticket ends with: the sinks done (as `write_back` returns them), or its error.
Outcome = dict[str, str] | Exception
#: What the callback and source sinks return when they had nothing to do (no side effect).
NO_EFFECT = frozenset({"none", "skipped", "not-configured"})
#: Share of the time limit (= the lease) by which the last per-ticket call must have ended.
DEADLINE_SHARE = 0.8


@dataclass(eq=False)  # compared by identity: `in` over a batch stays cheap
class _Item:
    ticket: Ticket
    result: TriageResult
    vector: np.ndarray  # empty: none came (a human label); the index sink embeds the text
    key: str
    error: Exception | None = None
    outcomes: dict[str, str] = field(default_factory=dict)
    recorded: set[str] = field(default_factory=set)  # sinks recorded as they ran

    @property
    def lease_key(self) -> str:
        return self.key + ":lease"


def write_back_many(
    items: Sequence[tuple[Ticket, TriageResult, str | np.ndarray | Sequence[float]]],
) -> list[Outcome]:
    """Run every sink not yet done for each ticket revision; one outcome per item, in order.

    A vector may come packed (`models.vectors`), as numbers, or empty (the index sink embeds).

    Raises `BrokerUnavailable` when Redis is unreachable (nothing is lost: run it again).
    """
    r = resources.redis_conn()
    # The time limit less a margin for the steps after the last call (`_one_by_one`).
    deadline = time.monotonic() + get_settings().writeback_lease_s * DEADLINE_SHARE
    token = uuid.uuid4().hex  # one run, one token: each ticket revision has its own lease key
    batch = [
        _Item(t, res, unpack(v), written_key(t.task, t.source, t.id, t.effective_revision))
        for t, res, v in items
    ]
    seen: set[str] = set()
    for item in batch:  # the same revision twice in one run would pass its own lease: retry it
        if item.key in seen:
            item.error = sinks.WriteInProgress(
                f"{item.key} is twice in one batch", retry_after_s=0.1
            )
        seen.add(item.key)
    try:
        try:
            for name, run_sink in _SINKS:
                todo = _hold_and_check(r, batch, name, token)
                if todo:
                    _timed(name, run_sink, r, todo, deadline)
                    done = [i for i in todo if i.error is None and name not in i.recorded]
                    _record_many(r, done, name)
            live = [i for i in batch if i.error is None]
            pipe = r.pipeline(transaction=False)
            for item in live:
                pipe.hgetall(item.key)
            for item, done in zip(live, pipe.execute(), strict=True):
                item.outcomes = done
        finally:
            _release(r, batch, token)
    except redis.RedisError as exc:
        raise BrokerUnavailable(f"Redis is unreachable during write-back: {exc}") from exc
    return [i.error if i.error is not None else i.outcomes for i in batch]


def _hold_and_check(r: redis.Redis, batch: list[_Item], name: str, token: str) -> list[_Item]:
    """Take or renew each live ticket's lease and ask whether `name` is done; return the to-dos.

    Asked per sink, not once: a run paused past its lease may find a sink done since.
    """
    live = [i for i in batch if i.error is None]
    ttl_s = get_settings().writeback_lease_s
    pipe = r.pipeline(transaction=False)
    for item in live:
        pipe.eval(sinks.TAKE_LEASE, 1, item.lease_key, token, ttl_s)
        pipe.hexists(item.key, name)
        pipe.pttl(item.lease_key)
    replies = pipe.execute()
    todo: list[_Item] = []
    for n, item in enumerate(live):
        held, done, left_ms = replies[3 * n : 3 * n + 3]
        if not held:
            item.error = sinks.WriteInProgress(
                f"{item.lease_key} is held by another write-back run",
                retry_after_s=max(0.1, int(left_ms) / 1000.0),
            )
        elif not done:
            todo.append(item)
    return todo


def _store(r: redis.Redis, todo: list[_Item], _: float) -> None:
    pipe = r.pipeline(transaction=False)
    for item in todo:
        res = item.result
        pipe.eval(
            sinks.STORE_UNLESS_HUMAN,
            1,
            result_key(res.task, res.source, res.ticket_id),
            res.model_dump_json(),
            res.decided_by,
        )
    for item, stored in zip(todo, pipe.execute(), strict=True):
        item.outcomes["store"] = "stored" if stored else "kept-human-label"


def _event(r: redis.Redis, todo: list[_Item], _: float) -> None:
    pipe = r.pipeline(transaction=False)
    maxlen = get_settings().events_maxlen
    for item in todo:
        pipe.xadd(EVENTS_STREAM, sinks.event_fields(item.result), maxlen=maxlen, approximate=True)
    for item, event_id in zip(todo, pipe.execute(), strict=True):
        item.outcomes["event"] = str(event_id)


def _one_by_one(name: str, sink: Callable[[Ticket, TriageResult], str]) -> _Sink:
    """A sink that talks to one peer per ticket (HTTP): its failure is that ticket's alone.

    Its calls are sequential, so a slow peer could outlast the task's time limit (which is also
    the lease, renewed before this step): a call starts only while it would end, timed out at
    worst, before `deadline`; the tickets left go on alone. A call that did something is
    recorded at once, as the single path does: killed later in the step, the batch must not
    repeat it.
    """

    def run(r: redis.Redis, todo: list[_Item], deadline: float) -> None:
        s = get_settings()
        slowest = max(s.callback_timeout_s, s.source_timeout_s)
        for item in todo:
            if time.monotonic() + slowest > deadline:
                item.error = SinkUnavailable(f"{name} sink: batch out of time", retry_after_s=0.1)
                continue
            try:
                outcome = sink(item.ticket, item.result)
            except Exception as exc:
                get_metrics().sink_failures.labels(name).inc()
                log.warning("%s sink failed for %s: %r", name, item.key, exc)
                item.error = exc
                continue
            item.outcomes[name] = outcome
            if outcome not in NO_EFFECT:
                sinks.record(r, item.key, name, outcome)
                item.recorded.add(name)

    return run


def _index(_: redis.Redis, todo: list[_Item], __: float) -> None:
    """One upsert for the model's labels; the rare others (a human label without its vector)
    go through the single path's sink, which embeds them."""
    batched = [
        i for i in todo if i.result.status == "labelled" and i.result.label and i.vector.size
    ]
    for item in todo:
        if item in batched:
            continue
        try:
            item.outcomes["index"] = sinks.index_one(item.ticket, item.result, item.vector)
        except Exception as exc:
            get_metrics().sink_failures.labels("index").inc()
            item.error = exc
    if not batched:
        return
    rows = [
        IndexedTicket(
            i.ticket.id,
            i.ticket.source,
            str(i.result.label),
            i.ticket.text,
            "human" if i.result.decided_by == "human" else "model",
        )
        for i in batched
    ]
    by_task: dict[str, list[int]] = {}
    for n, item in enumerate(batched):
        by_task.setdefault(item.ticket.task, []).append(n)
    index = resources.index()
    for task, rows_of_task in by_task.items():
        try:
            index.upsert(
                task,
                [rows[n] for n in rows_of_task],
                np.stack([batched[n].vector for n in rows_of_task]).astype(np.float32),
            )
        except Exception as exc:  # the index refused them all: each is retried alone
            get_metrics().sink_failures.labels("index").inc()
            for n in rows_of_task:
                batched[n].error = exc
            continue
        for n in rows_of_task:
            batched[n].outcomes["index"] = "upserted"


#: A sink over the tickets still to do; `deadline` (monotonic) bounds the calls it starts.
_Sink = Callable[[redis.Redis, list[_Item], float], None]
#: The single path's sinks, in its order (`worker.sinks.write_back`).
_SINKS: list[tuple[str, _Sink]] = [
    ("store", _store),
    ("event", _event),
    ("callback", _one_by_one("callback", post_callback)),
    ("source", _one_by_one("source", write_to_source)),
    ("index", _index),
]


def _timed(name: str, sink: _Sink, r: redis.Redis, todo: list[_Item], deadline: float) -> None:
    """Run one sink over `todo`; each ticket's share of the time goes to the sink histogram."""
    started = time.perf_counter()
    try:
        sink(r, todo, deadline)
    finally:
        share = (time.perf_counter() - started) / len(todo)
        histogram = get_metrics().sink_seconds.labels(name)
        for _ in todo:
            histogram.observe(share)


def _record_many(r: redis.Redis, done: list[_Item], name: str) -> None:
    """Record that a sink is done for these tickets; a Redis blip is waited out, as `_record`
    does: the side effects happened, and a retry without the record would repeat them."""
    if not done:
        return
    deadline = time.monotonic() + get_settings().publish_retry_s
    while True:
        try:
            pipe = r.pipeline(transaction=False)
            for item in done:
                pipe.hset(item.key, name, item.outcomes[name])
                pipe.expire(item.key, sinks.WRITTEN_TTL_S)
            pipe.execute()
            return
        except (redis.ConnectionError, redis.TimeoutError):
            if time.monotonic() > deadline:
                raise
            log.warning("Redis is unreachable; waiting for it to record %s of %d", name, len(done))
            time.sleep(0.5)


def _release(r: redis.Redis, batch: list[_Item], token: str) -> None:
    """Release every lease this run may hold (a lease taken by another run is left alone)."""
    try:
        pipe = r.pipeline(transaction=False)
        for item in batch:
            pipe.eval(sinks.RELEASE_LEASE, 1, item.lease_key, token)
        pipe.execute()
    except redis.RedisError:
        log.warning("could not release %d leases; they expire by themselves", len(batch))


def as_payload(ticket: Ticket, result: TriageResult, vector: str | np.ndarray) -> dict[str, Any]:
    """One item of a `triage.writeback_batch` message (the single task's kwargs); the vector
    packed (`models.vectors`)."""
    return {
        "ticket": ticket.model_dump(mode="json"),
        "result": result.model_dump(mode="json"),
        "vector": vector if isinstance(vector, str) else pack(vector),
    }
