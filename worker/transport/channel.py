"""kombu's Redis transport with an atomic pop-and-record, and doorbells to block on.

See the package docstring for the design; this module is the kombu side of it.
"""

from __future__ import annotations

import hashlib
import logging
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from queue import Empty
from time import monotonic, time
from typing import Any

import redis
from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import dumps

from producer.names import bell_key
from worker.transport.pop import BELL_TOKEN, POP_SCRIPT, PopCall, pop_call
from worker.transport.quarantine import decode_or_quarantine

log = logging.getLogger(__name__)

#: EVALSHA's name for the script (SHA-1 of its text, as Redis computes it).
_POP_SHA = hashlib.sha1(POP_SCRIPT.encode()).hexdigest()


class QoS(kombu_redis.QoS):  # type: ignore[misc]
    """kombu's QoS, minus the second write of a record the pop script already made, and with
    acks written together.

    kombu removes each acked message from the unacked record in a round trip of its own, on the
    event loop that also takes the messages: a classify batch's 64 acks were 64 round trips in a
    row. In an event loop (`Transport.register_with_event_loop`) an ack is written with the
    others of the same loop turn, in one pipeline, before the loop next waits. Outside one (a
    plain `Consumer`, `basic_get`) it is written at once. An ack whose write fails leaves its
    message recorded: it comes back after the visibility timeout, as when kombu's ack fails.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._acked: deque[str] = deque()  # acked, not yet removed from the record in Redis

    def ack(self, delivery_tag: str) -> None:
        if not self.channel.connection.acks_together:
            super().ack(delivery_tag)
            return
        self._acked.append(delivery_tag)
        virtual.QoS.ack(self, delivery_tag)  # kombu's bookkeeping: the prefetch slot is free

    def write_acks(self) -> None:
        """Remove every message acked since the last call from the unacked record."""
        tags = [self._acked.popleft() for _ in range(len(self._acked))]
        if not tags:
            return
        try:
            with self.pipe_or_acquire() as pipe:
                for tag in tags:
                    self._remove_from_indices(tag, pipe)
                pipe.execute()
        except self.channel.connection_errors as exc:
            log.warning("could not write %d acks (%s); they come back later", len(tags), exc)

    def append(self, message: Any, delivery_tag: str) -> None:
        recorded: set[str] = self.channel.recorded
        if delivery_tag in recorded:
            recorded.discard(delivery_tag)
            virtual.QoS.append(self, message, delivery_tag)
        else:  # basic_get with no_ack=False on another channel, or a rejected inbound message
            super().append(message, delivery_tag)


class Channel(kombu_redis.Channel):  # type: ignore[misc]
    """Consumes with `POP_SCRIPT` and waits on the queues' bells; publishes ring the bell."""

    QoS = QoS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        #: Delivery tags the pop script recorded whose `QoS.append` has not come yet.
        self.recorded: set[str] = set()
        self._no_ack_queues: set[str] = set()
        #: The command in flight on the polling connection: "pop", "bell" or "".
        self._pending = ""
        #: The last pop found nothing: the next command waits on the bells.
        self._waiting = False
        #: Redis has the script cached (EVALSHA); False sends it whole (EVAL), as after a restart.
        self._script_cached = False
        super().__init__(*args, **kwargs)
        if self.global_keyprefix:
            raise ValueError(
                "broker transport option global_keyprefix is not supported: producers "
                "(producer.wire) write unprefixed queue keys"
            )

    # -- consuming --------------------------------------------------------------------------

    def basic_consume(self, queue: str, no_ack: bool, *args: Any, **kwargs: Any) -> Any:
        # No record for a no_ack consumer: nothing would ever ack it, so it would come back.
        (self._no_ack_queues.add if no_ack else self._no_ack_queues.discard)(queue)
        return super().basic_consume(queue, no_ack, *args, **kwargs)

    def _brpop_start(self, timeout: float | None = None) -> None:
        if timeout is None:
            timeout = self.brpop_timeout
        queues = self._queue_cycle.consume(len(self.active_queues))
        if not queues:
            return
        if self._waiting:
            # A bell gets its token in the same step as its message, so a message pushed since
            # the empty pop has rung already. A foreign push rings nothing: the timeout is the
            # longest it waits.
            command: list[Any] = ["BRPOP", *(bell_key(q) for q in queues), timeout or 0]
            self._pending = "bell"
        else:
            command = self._pop_command(queues)
            self._pending = "pop"
        self._in_poll = self.client.connection
        self._brpop_sent_at = monotonic()
        self.client.connection.send_command(*command)

    def _brpop_read(self, **options: Any) -> bool:
        pending, self._pending = self._pending, ""
        try:
            reply = self._read_reply(pending, **options)
            if pending != "pop":  # a bell rang, or its wait timed out: pop next
                self._waiting = False
                raise Empty()
            if not reply:
                self._waiting = True
                raise Empty()
            dest, item, tag = reply
            queue = bytes_to_str(dest).rsplit(self.sep, 1)[0]
            self._queue_cycle.rotate(queue)
            self.connection._deliver(self._decode(item, bytes_to_str(tag)), queue)
            return True
        finally:
            self._in_poll = None
            self._flush_brpop_reauth()

    def _read_reply(self, pending: str, **options: Any) -> Any:
        connection = self.client.connection
        try:
            reply = self.client.parse_response(
                connection, "BRPOP" if pending == "bell" else "EVALSHA", **options
            )
        except self.connection_errors:
            # Disconnect so the next poll reconnects. A popped message whose reply is lost
            # here is recorded unacked: it comes back after the visibility timeout. Pop first
            # after reconnecting, and send the script whole: Redis may have restarted.
            connection.disconnect()
            self._waiting = self._script_cached = False
            raise
        except redis.exceptions.NoScriptError:
            self._script_cached = False  # a restarted Redis: send the script itself next
            raise Empty() from None
        except self.ResponseError as exc:
            # Nothing was popped (the script checks before it pops). After a failed pop wait on
            # the bells before trying again; after a failed wait, pop (it repairs the bells).
            log.warning("Redis refused the %s command (%s); trying again", pending, exc)
            self._waiting = pending == "pop"
            raise Empty() from exc
        if pending == "pop":
            self._script_cached = True
        return reply

    def _poll_error(self, kind: str, **options: Any) -> None:
        # kombu reads and drops the pending reply here; ours may hold a message, so deliver it.
        if kind != "BRPOP":
            super()._poll_error(kind, **options)
            return
        with suppress(Empty):
            self._brpop_read(**options)

    def basic_get(self, queue: str, no_ack: bool = False, **kwargs: Any) -> Any:
        """kombu's basic_get, made atomic with the same script (its `_get` knows no no_ack)."""
        record = self.ack_emulation and not no_ack
        call = self._pop_call([queue], record=[record])
        with self.conn_or_acquire() as client:
            reply = client.register_script(POP_SCRIPT)(keys=call.keys, args=call.args)
        if not reply:
            return None
        _, item, tag = reply
        message = self.Message(self._decode(item, bytes_to_str(tag)), channel=self)
        if not no_ack:
            self.qos.append(message, message.delivery_tag)
        return message

    def _decode(self, item: bytes, tag: str) -> dict[str, Any]:
        payload = decode_or_quarantine(item, tag)
        if tag:
            self.recorded.add(tag)
        return payload

    def _pop_command(self, queues: list[str]) -> list[Any]:
        record = [self.ack_emulation and q not in self._no_ack_queues for q in queues]
        call = self._pop_call(queues, record)
        head: list[Any] = ["EVALSHA", _POP_SHA] if self._script_cached else ["EVAL", POP_SCRIPT]
        return [*head, len(call.keys), *call.keys, *call.args]

    def _pop_call(self, queues: list[str], record: list[bool]) -> PopCall:
        lists = [self._q_for_pri(q, pri) for pri in self.priority_steps for q in queues]
        return pop_call(queues, lists, record, time(), self.unacked_key, self.unacked_index_key)

    # -- publishing: every push rings the queue's bell in the same step -----------------------

    def _put(self, queue: str, message: Any, **kwargs: Any) -> None:
        pri = self._get_message_priority(message, reverse=False)
        key = self._q_for_pri(queue, pri)
        expires = self._expires.get(queue) if self._expires else None
        batch = kwargs.pop("_publish_batch", None)
        if batch is not None:  # kombu's batch runs one message's commands together
            batch.add("lpush", key, dumps(message))
            batch.add("lpush", bell_key(queue), BELL_TOKEN)
            for p in self.priority_steps if expires is not None else ():
                batch.add("pexpire", self._q_for_pri(queue, p), expires)
            return
        with self._transaction() as pipe:
            pipe.lpush(key, dumps(message)).lpush(bell_key(queue), BELL_TOKEN)
            for p in self.priority_steps if expires is not None else ():
                pipe.pexpire(self._q_for_pri(queue, p), expires)

    def _do_restore_message(
        self, payload: Any, exchange: str, routing_key: str, pipe: Any, leftmost: bool = False
    ) -> None:
        # kombu's, plus the bell, in the caller's MULTI: restore_visible and reject(requeue).
        try:
            try:
                payload["headers"]["redelivered"] = True
                payload["properties"]["delivery_info"]["redelivered"] = True
            except KeyError:
                pass
            for queue in self._lookup(exchange, routing_key):
                pri = self._get_message_priority(payload, reverse=False)
                push = pipe.lpush if leftmost else pipe.rpush
                push(self._q_for_pri(queue, pri), dumps(payload))
                pipe.lpush(bell_key(queue), BELL_TOKEN)
        except self.connection_errors:
            raise  # abort the transaction, or the record would go without its message
        except Exception:
            log.critical("Could not restore message: %r", payload, exc_info=True)

    def _purge(self, queue: str) -> int:
        size: int = super()._purge(queue)
        with self.conn_or_acquire() as client:
            client.delete(bell_key(queue))
        return size

    def _delete(self, queue: str, *args: Any, **kwargs: Any) -> None:
        super()._delete(queue, *args, **kwargs)
        with self.conn_or_acquire(client=kwargs.get("client")) as client:
            client.delete(bell_key(queue))

    def close(self) -> None:
        if self._qos is not None and not self.closed:
            self._qos.write_acks()  # before kombu closes the pools (a warm shutdown's last acks)
        super().close()

    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        with self.conn_or_acquire() as client, client.pipeline(transaction=True) as pipe:
            yield pipe
            pipe.execute()


class Transport(kombu_redis.Transport):  # type: ignore[misc]
    """kombu's Redis transport with `Channel`; `worker.transport.install` points kombu at it."""

    Channel = Channel
    #: Acks are written together, once a loop turn (`QoS`): set once an event loop runs them.
    acks_together = False

    def register_with_event_loop(self, connection: Any, loop: Any) -> None:
        super().register_with_event_loop(connection, loop)
        # The hub runs its tick callbacks after the turn's ready callbacks (Celery's acks
        # among them) and before it polls: each turn's acks go in one pipeline, at once.
        loop.on_tick.add(self._write_acks)
        self.acks_together = True

    def _write_acks(self) -> None:
        for channel in list(self.cycle._channels):
            qos = getattr(channel, "_qos", None)
            if qos is not None:
                qos.write_acks()
