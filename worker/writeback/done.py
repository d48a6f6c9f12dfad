"""Which targets are done for a ticket revision, and who may write it now.

A hash per (task, source, id, revision) records the targets done, so a retried or redelivered
write-back only redoes what had not finished. Two runs of the same revision at once (a message
redelivered while its first run still goes on, a ticket classified twice) would both find a
target not done yet, so a lease lets one run at a time: the other is retried once the lease is
free, and then finds the work done. The lease expires by itself when its run dies; a run renews
it before each target and stops if it lost it (it was paused past its lease, and another took
over). The same step decides whether the result applies at all (`decide`). Everything here is
one pipeline for the whole batch.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import redis

from producer.backoff import wait_out
from producer.errors import SinkUnavailable
from worker.settings import get_settings
from worker.writeback import decide
from worker.writeback.item import Item

log = logging.getLogger(__name__)

WRITTEN_TTL_S = 30 * 24 * 3600

# Release the lease only if it is still ours (it may have expired and been taken since).
RELEASE_LEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class WriteInProgress(SinkUnavailable):
    """Another run is writing this ticket revision back; try again when its lease is free."""


def hold_and_check(r: redis.Redis, live: list[Item], name: str, token: str) -> list[Item]:
    """Take or renew each ticket's lease, ask whether target `name` is done for it and decide
    whether its result applies (``item.decision``, `decide.GATE`); return the tickets still to
    do. A ticket whose lease another run holds gets `WriteInProgress`.

    Asked per target, not once: a run paused past its lease may find a target done since, and
    a result may be overtaken (a person's label, a newer revision) between two targets.
    """
    ttl_s = get_settings().writeback_lease_s
    # EVALSHA: the script's text would otherwise travel, and be hashed, once per ticket and step.
    gate = r.register_script(decide.GATE)
    pipe = r.pipeline(transaction=False)
    for item in live:
        keys = [item.lease_key, item.key, item.label_key]
        gate(keys=keys, args=[token, ttl_s, name, *_gate_args(item)], client=pipe)
    todo: list[Item] = []
    for item, (held, done, answer) in zip(live, pipe.execute(), strict=True):
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
    pipe = r.pipeline(transaction=False)
    for item in live:
        pipe.hgetall(item.key)
    for item, done in zip(live, pipe.execute(), strict=True):
        item.outcomes = {k: v for k, v in done.items() if k != decide.DECISION_FIELD}


def release(r: redis.Redis, batch: Iterable[Item], token: str) -> None:
    """Release every lease this run may hold (a lease taken by another run is left alone)."""
    items = list(batch)
    release_lease = r.register_script(RELEASE_LEASE)
    try:
        pipe = r.pipeline(transaction=False)
        for item in items:
            release_lease(keys=[item.lease_key], args=[token], client=pipe)
        pipe.execute()
    except redis.RedisError:
        log.warning("could not release %d leases; they expire by themselves", len(items))


def _gate_args(item: Item) -> list[str | int]:
    """`decide.GATE`'s ARGV after the token, lease ttl and target name."""
    kind, key = decide.revision_order(item.ticket.effective_revision)
    result = item.result
    return [
        "1" if item.by_human else "0",
        kind,
        key,
        decide.time_order(item.ticket.created_at),
        decide.time_order(result.decided_at) if item.by_human else "",
        result.labelled_by or "",
        result.label or "",
        WRITTEN_TTL_S,
        item.ticket.effective_revision,
    ]
