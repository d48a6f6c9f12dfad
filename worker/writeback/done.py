"""Which targets are done for a ticket revision, and who may write it now.

A hash per (task, source, id, revision) records the targets done, so a retried or redelivered
write-back only redoes what had not finished. Two runs of the same revision at once (a message
redelivered while its first run still goes on, a ticket classified twice) would both find a
target not done yet, so a lease lets one run at a time: the other is retried once the lease is
free, and then finds the work done. The lease expires by itself when its run dies; a run renews
it before each target and stops if it lost it (it was paused past its lease, and another took
over). The same step decides whether the result applies at all (`decide`), and records the
step before it: one script call for the whole batch per target (`decide.GATE`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import cast

import redis

from producer.backoff import wait_out
from producer.errors import SinkUnavailable
from worker.settings import get_settings
from worker.writeback import decide
from worker.writeback.item import Item

log = logging.getLogger(__name__)

WRITTEN_TTL_S = 30 * 24 * 3600


class WriteInProgress(SinkUnavailable):
    """Another run is writing this ticket revision back; try again when its lease is free."""


def hold_and_check(r: redis.Redis, live: list[Item], name: str, token: str) -> list[Item]:
    """Take or renew each ticket's lease, ask whether target `name` is done for it and decide
    whether its result applies (``item.decision``, `decide.GATE`); return the tickets still to
    do. A ticket whose lease another run holds gets `WriteInProgress`. In the same call, first,
    the targets done since the last call are recorded (``item.unrecorded``, as `record` would).

    One script call for the batch. Asked per target, not once: a run paused past its lease may
    find a target done since, and a result may be overtaken (a person's label, a newer
    revision) between two targets.
    """
    todo: list[Item] = []
    for item, (held, done, answer) in zip(live, _gate(r, live, token, name), strict=True):
        if not held:
            item.error = WriteInProgress(
                f"{item.lease_key} is held by another write-back run",
                retry_after_s=max(0.1, int(done) / 1000.0),
            )
            continue
        item.decision = str(answer)
        if not done:
            todo.append(item)
    return todo


def finish(r: redis.Redis, batch: Sequence[Item], token: str) -> None:
    """Record the targets done and not recorded yet (``item.unrecorded``), and release every
    lease of `batch` this run holds (a lease taken by another run is left alone), in one call."""
    _gate(r, batch, token, "")


def record(r: redis.Redis, done: list[Item], name: str) -> None:
    """Record that target `name` is done for these tickets. Its side effects have happened:
    without the record a retry would repeat them (a second callback), so a Redis blip is
    waited out, not given up on."""
    if not done:
        return

    def write() -> None:
        pipe = r.pipeline(transaction=False)
        for item in done:  # the hash's expiry was set by the gate of this step
            pipe.hset(item.key, name, item.outcomes[name])
        pipe.execute()

    wait_out(
        write,
        retry_on=(redis.ConnectionError, redis.TimeoutError),
        for_s=get_settings().publish_retry_s,
        what=f"Redis is unreachable recording {name} of {len(done)} tickets",
    )


def outcomes(r: redis.Redis, live: list[Item]) -> None:
    """Fill each ticket's outcomes with every target done for its revision, by any run."""
    if not live:
        return
    pipe = r.pipeline(transaction=False)
    for item in live:
        pipe.hgetall(item.key)
    for item, done in zip(live, pipe.execute(), strict=True):
        item.outcomes = {k: v for k, v in done.items() if k != decide.DECISION_FIELD}


def release(r: redis.Redis, batch: Sequence[Item], token: str) -> None:
    """`finish`, when the run ends early: tried once (the error that ended it may have been a
    wait for Redis already), and a Redis error is logged, not raised (the leases expire by
    themselves)."""
    try:
        _gate(r, batch, token, "", patient=False)
    except redis.RedisError:
        log.warning("could not release %d leases; they expire by themselves", len(batch))


def _gate(
    r: redis.Redis, items: Sequence[Item], token: str, name: str, *, patient: bool = True
) -> list[list[int | str]]:
    """One `decide.GATE` call over `items`: record what they did since the last call, then gate
    target `name` (or, with none, release the leases). Recorded outcomes are side effects that
    happened: a Redis blip is waited out then, as in `record` (unless not `patient`)."""
    if not items:
        return []
    rows: list[list[object]] = []
    keys: list[str] = []
    for item in items:
        rows.append([item.unrecorded, *item.gate_args] if name else [item.unrecorded])
        keys += (item.lease_key, item.key, item.label_key)
    ttl_s = get_settings().writeback_lease_s
    args: list[str | int] = [
        token,
        ttl_s,
        WRITTEN_TTL_S,
        name,
        json.dumps(rows, ensure_ascii=False),
    ]
    # EVALSHA: the script's text travels once per process, not once per call.
    script = r.register_script(decide.GATE)

    def call() -> list[list[int | str]]:
        reply = script(keys=keys, args=args)
        return cast(list[list[int | str]], json.loads(reply) if reply else [])

    recording = sum(len(item.unrecorded) for item in items)
    if not (recording and patient):
        return call()
    verdicts = wait_out(
        call,
        retry_on=(redis.ConnectionError, redis.TimeoutError),
        for_s=get_settings().publish_retry_s,
        what=f"Redis is unreachable recording {recording} targets done",
    )
    for item in items:
        item.unrecorded = {}
    return verdicts
