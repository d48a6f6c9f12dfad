"""Our Redis transport for Celery: no message is lost between Redis and a worker.

kombu's Redis transport takes a message with BRPOP and records it as unacknowledged (ZADD
``unacked_index`` + HSET ``unacked``, in `QoS.append`) in a second command, from the consume
callback. A worker killed between the two, or a Redis that dies between them, drops the message:
it is in no queue and in no record, so no visibility timeout brings it back. Here:

1. **Pop and record in one step.** A worker takes a message with `pop.POP_SCRIPT`: over the keys
   kombu would BRPOP (each queue x priority step, in kombu's round-robin order) it takes the first
   item and, in the same script, writes exactly kombu's record: ``HSET unacked <tag>
   [envelope, exchange, routing_key]`` and ``ZADD unacked_index <worker's clock> <tag>`` (the
   worker's clock, as kombu's `restore_visible` compares with it). Redis runs a script whole or
   not at all, and the AOF holds it whole, so a message is always in its queue or in the record.
   Not recorded: items that are not envelopes (`quarantine` dead-letters them) and queues
   consumed with no_ack. kombu's `QoS.append` then skips its own, second write of that record.
   `basic_get` uses the same script. After a Redis restart the script cache is empty: a NOSCRIPT
   reply makes the next call send the script itself (EVAL) instead of its hash.
2. **Block on doorbells, not on the queues.** A script cannot block, so a worker whose pop found
   nothing sends ``BRPOP <its queues' bells> <brpop_timeout>`` and pops again when that returns.
   Every publish we make pushes a token onto the queue's bell (`producer.names.bell_key`) in the
   same atomic step as the message (`producer.wire`'s push script, this channel's `_put`, and
   kombu's restore paths, `restore_visible` and reject(requeue)), so no wake-up is missed: a
   message pushed after the empty pop has rung its bell before the BRPOP is sent. A message
   pushed by someone else (a plain Celery ``send_task``, an LPUSH by hand) rings nothing and is
   taken when the BRPOP times out: within ``brpop_timeout`` (1 s). Tokens are hints, not counts:
   the pop script removes one per message taken while others are left, keeps at least one on
   any queue that still holds messages (a worker woken by a token may pop another of its queues,
   and its BRPOP has already taken one), and drops the bell of an empty queue; purge and delete
   drop it too.
3. **Acks together.** kombu removes an acked message from the record in a round trip of its
   own; in an event loop the acks of one loop turn (a classify batch's, say) go in one
   pipeline, on the turn's tick before the loop polls again, and a closing channel writes what
   is left (`channel.QoS`). A lost ack still only means a redelivery, which write-back absorbs.
4. **Every worker, every URL.** kombu picks the transport class by the URL's scheme (``redis``
   for ``redis://`` and the embedded ``redis+socket://``, ``rediss`` for TLS), so `install`
   points those two aliases at `channel.Transport`. Celery's ``broker_transport`` setting cannot
   do it: kombu lets ``redis+socket://`` override it, and a class there skips kombu's ``rediss``
   TLS defaults.

What is left: a reply (with its message) held unread while the worker has no prefetch credit is
recorded with the time it was popped, so one held longer than the visibility timeout is handed to
another worker too (kombu's BRPOP held it unrecorded instead, lost if the worker died).
"""

from __future__ import annotations

from worker.transport.quarantine import UNDECODABLE

__all__ = ["TRANSPORT", "UNDECODABLE", "install"]

#: kombu's spelling of our transport class.
TRANSPORT = "worker.transport.channel:Transport"


def install() -> None:
    """Make kombu use our transport for every Redis URL; idempotent. Called by `make_app`."""
    from kombu import transport as kombu_transport

    for scheme in ("redis", "rediss"):
        kombu_transport.TRANSPORT_ALIASES[scheme] = TRANSPORT
        # kombu caches a resolved alias; drop a stale one so the next connection resolves ours.
        kombu_transport._transport_cache.pop(scheme, None)
