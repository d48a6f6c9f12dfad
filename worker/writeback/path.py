"""The one write-back path: record decisions in every target, once per (task, source, id,
revision), whatever route brought them here. A single ticket is a batch of one.

Every target runs over the whole batch with one Redis round trip per step and one index upsert
(`targets`). Per revision: each target runs once (`done`: the `written` hash), and a run holds
the revision's lease, renewed before each target, while it writes: one script call per target
for the whole batch (`done.hold_and_check`), which records the targets before it too. A target
that can do nothing outside for any ticket of the batch (no callback, no ticket system, no
person's label for the feedback stream) needs no gate: it runs on the last gate's decision and
is recorded by the next call. A result applies only where
nothing overtook it (`decide`): a model's result for a ticket a person labelled, or for an older
revision than one already written, is applied in no target and recorded in each as
``kept-human-label`` or ``stale-revision``; the ledger alone records every decision, with that
verdict (`targets.ledger`). A ticket whose target fails, or whose lease another run
holds, leaves the batch with its error and its lease released, while the others go on; the
caller retries it (`worker.tasks.writeback`: backoff, then the dead-letter list). Redis
unreachable fails the whole batch: every step is idempotent, so it may run again.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np
import redis

from models.vectors import pack, unpack
from producer.errors import BrokerUnavailable
from producer.names import written_key
from producer.schemas import Ticket, TriageResult
from worker import resources
from worker.observe.metrics import get_metrics
from worker.settings import get_settings
from worker.writeback import done
from worker.writeback.decide import APPLY
from worker.writeback.item import Item
from worker.writeback.targets.base import PerTicket, Target
from worker.writeback.targets.callback import has_callback, post_callback
from worker.writeback.targets.event import Event
from worker.writeback.targets.feedback import Feedback
from worker.writeback.targets.index import Index
from worker.writeback.targets.ledger import LedgerTarget
from worker.writeback.targets.source import has_writer, write_to_source
from worker.writeback.targets.store import Store

#: What each ticket ends with: the targets done (name -> outcome), or its error.
Outcome = dict[str, str] | Exception
#: A decision to write back: its vector packed (`models.vectors`), as numbers, or empty.
Decision = tuple[Ticket, TriageResult, str | np.ndarray | Sequence[float]]
#: In order: the store first, so `get_result` answers as soon as anything is written; the
#: ledger before the outside world, so nothing ships unrecorded (`targets.ledger`).
TARGETS: list[Target] = [
    Store(),
    Feedback(),
    Event(),
    LedgerTarget(),
    PerTicket("callback", post_callback, "callback_timeout_s", has_callback),
    PerTicket("source", write_to_source, "source_timeout_s", has_writer),
    Index(),
]
#: Share of the time limit (= the lease) by which the last per-ticket call must have ended.
DEADLINE_SHARE = 0.8


def write_back(decisions: Sequence[Decision]) -> list[Outcome]:
    """Run every target not yet done for each ticket revision; one outcome per decision, in order.

    Raises `BrokerUnavailable` when Redis is unreachable (nothing is lost: run it again).
    """
    r = resources.redis_conn()
    deadline = time.monotonic() + get_settings().writeback_lease_s * DEADLINE_SHARE
    token = uuid.uuid4().hex  # one run, one token: each revision has its own lease key
    batch = [
        Item(t, res, unpack(v), written_key(t.task, t.source, t.id, t.effective_revision))
        for t, res, v in decisions
    ]
    seen: set[str] = set()
    for item in batch:  # the same revision twice in one run would pass its own lease: retry it
        if item.key in seen:
            item.error = done.WriteInProgress(
                f"{item.key} is twice in one batch", retry_after_s=0.1
            )
        seen.add(item.key)
    finished = False
    try:
        try:
            for target in TARGETS:
                live = [i for i in batch if i.error is None]
                if any(target.may_act(i) for i in live):
                    todo = done.hold_and_check(r, live, target.name, token)
                else:
                    # Nothing to guard: no gate (the decision stays the last gate's), and what
                    # it answers is recorded by the next one, unless a run recorded it before.
                    todo = live
                # A target that records every decision (the ledger) gets those that do not
                # apply too, and records the verdict itself; the others never see them.
                every = bool(getattr(target, "every_decision", False))
                run = [i for i in todo if every or i.decision == APPLY]
                for item in todo:
                    if not (every or item.decision == APPLY):
                        item.outcomes[target.name] = item.decision
                if run:
                    _timed(target, r, run, deadline)
                for item in todo:
                    if item.error is None and target.name not in item.recorded:
                        item.unrecorded[target.name] = item.outcomes[target.name]
            done.finish(r, batch, token)
            finished = True
            # A target some run had done before this one: what it did is in the hash alone.
            done.outcomes(r, [i for i in batch if i.error is None and _found_done(i)])
        finally:
            if not finished:
                done.release(r, batch, token)
    except redis.RedisError as exc:
        raise BrokerUnavailable(f"Redis is unreachable during write-back: {exc}") from exc
    return [i.error if i.error is not None else i.outcomes for i in batch]


def write_back_one(ticket: Ticket, result: TriageResult, vector: Any = ()) -> dict[str, str]:
    """`write_back` of one decision: what each target did, or its error raised."""
    outcome = write_back([(ticket, result, vector)])[0]
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def as_payload(ticket: Ticket, result: TriageResult, vector: Any = ()) -> dict[str, Any]:
    """One item of a `triage.writeback` message; the vector packed (`models.vectors`)."""
    return {
        "ticket": ticket.model_dump(mode="json"),
        "result": result.model_dump(mode="json"),
        "vector": vector if isinstance(vector, str) else pack(unpack(vector)),
    }


def _found_done(item: Item) -> bool:
    return any(target.name not in item.outcomes for target in TARGETS)


def _timed(target: Target, r: redis.Redis, todo: list[Item], deadline: float) -> None:
    """Run one target over `todo`; each ticket's share of the time goes to the sink histogram."""
    started = time.perf_counter()
    try:
        target.write(r, todo, deadline)
    finally:
        share = (time.perf_counter() - started) / len(todo)
        histogram = get_metrics().sink_seconds.labels(target.name)
        for _ in todo:
            histogram.observe(share)
