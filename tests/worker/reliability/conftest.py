"""Fault tests: a private redis-server per test (so it can be killed and restarted without touching
the machine's shared one), real worker processes, and a callback receiver that counts what was
written back: a ticket with no call is lost, a second call is a duplicate.

Fixtures: `fleet` (the Redis, the receiver, a way to start workers), `writeback_worker` and
`classify_worker` (the pipeline split in two workers, as deployed), `frontier` (a local
OpenAI-compatible API to escalate to) and `webhook` (the HTTP app's webhook on the fleet's Redis).
A test sends tickets with `Fleet.send`, injects its fault, and counts with `Run.finish`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest
from redis import Redis
from starlette.testclient import TestClient

from producer import Ticket, enqueue_many
from producer.http import create_app
from producer.http.settings import HttpSettings
from producer.names import QUEUES
from producer.settings import ProducerSettings
from tests.polling import wait_for
from tests.receivers import CallbackReceiver
from tests.redis_server import RedisServer
from tests.wire_servers import OpenAIServer
from tests.worker.conftest import StartWorker, TinyTask, WorkerProcess

#: Fault-test timing, scaled down from production so recovery shows within a test: Redis hands a
#: dead worker's messages on after 10 s (production: an hour); the task time limits stay under
#: half of that, as the settings demand. Backoff is short so retries show within seconds.
FAULT_ENV = {
    "visibility_timeout_s": "10",
    "classify_time_limit_s": "4",
    "escalate_time_limit_s": "4",
    "writeback_time_limit_s": "4",
    "retry_backoff_s": "0.2",
    "retry_backoff_max_s": "2",
    "classifier_threshold": "0",  # the classifier decides: no frontier unless a test asks
    "callback_secret": "fault-secret",
    "callback_timeout_s": "3",  # a call must fit in the write-back lease (its time limit)
    "source_timeout_s": "3",
}
#: Thresholds no first pass reaches: every ticket goes on to the frontier.
UNSURE = {"classifier_threshold": "1.01", "retrieval_threshold": "1.01"}
WEBHOOK_SECRET = "hook-secret"


@dataclass
class Fleet:
    """The private Redis, the receiver, and a way to start workers against them."""

    redis: RedisServer
    receiver: CallbackReceiver
    start_worker: StartWorker
    tiny_task: TinyTask
    workers: list[WorkerProcess] = field(default_factory=list)

    @property
    def rdb(self) -> Redis:
        return Redis.from_url(self.redis.url, decode_responses=True)

    def start(self, queues: str = "classify,escalate,writeback", **env: str) -> WorkerProcess:
        worker = self.start_worker(queues, **{**FAULT_ENV, "redis_url": self.redis.url, **env})
        self.workers.append(worker)
        return worker

    def tickets(self, n: int, prefix: str = "t", source: str = "api") -> list[Ticket]:
        """`n` tickets with real Banking77 texts, each calling the receiver back."""
        texts = [row.text for row in self.tiny_task.test]
        return [
            Ticket(
                id=f"{prefix}{i}",
                body=texts[i % len(texts)],
                callback=self.receiver.url,  # type: ignore[arg-type]
                revision="r1",
                source=source,
            )
            for i in range(n)
        ]

    def send(self, tickets: list[Ticket]) -> Run:
        """Enqueue `tickets` now; the run counts from here."""
        run = Run(self, [])
        run.send(tickets)
        return run

    def enqueue(self, tickets: list[Ticket]) -> None:
        for start in range(0, len(tickets), 500):
            enqueue_many(tickets[start : start + 500])

    def wait_calls(self, n: int, timeout_s: float = 60) -> None:
        """Wait until the receiver took `n` calls: the run is well under way."""
        wait_for(
            lambda: len(self.receiver.calls) >= n,
            timeout_s=timeout_s,
            what=lambda: f"{n} write-backs (got {len(self.receiver.calls)})",
        )

    def wait_delivered(self, tickets: list[Ticket], timeout_s: float) -> float:
        """Wait until every ticket was called back; return when (monotonic) the last one was."""
        ids = {t.id for t in tickets}
        wait_for(
            lambda: ids <= set(self.receiver.delivered()),
            timeout_s=timeout_s,
            what=lambda: f"every ticket to be called back ({self._missing(ids)})",
            interval_s=0.1,
        )
        return time.monotonic()

    def wait_quiet(self, timeout_s: float = 30, quiet_until: float = 0.0) -> None:
        """Wait until no message is queued or held unacknowledged (retries included), then stay
        quiet half a second or till `quiet_until` (monotonic), whichever is later."""
        rdb = self.rdb
        wait_for(
            lambda: not sum(rdb.llen(q) for q in QUEUES) + rdb.hlen("unacked"),
            timeout_s=timeout_s,
            what=lambda: (
                "no message queued or unacked "
                f"(queued {[rdb.llen(q) for q in QUEUES]}, unacked {rdb.hlen('unacked')})"
            ),
            interval_s=0.2,
        )
        # A deliberate quiet window: a message redelivered while its first run was still going
        # (past the visibility timeout) leaves no trace in Redis to wait on; a duplicate call
        # from that first run lands now or never.
        time.sleep(max(0.5, quiet_until - time.monotonic()))

    def unacked(self, queue: str) -> int:
        """Messages of `queue` delivered to a worker and not acknowledged yet."""
        held = self.rdb.hvals("unacked")
        return sum(json.loads(m)[2] == queue for m in held)

    def tally(self, tickets: list[Ticket], started: float, done: float) -> Tally:
        delivered = self.receiver.delivered()
        lost = [t.id for t in tickets if delivered[t.id] == 0]
        duplicates = sum(n - 1 for n in delivered.values() if n > 1)
        dead = self.rdb.llen("triage:dead")
        return Tally(len(tickets), lost, duplicates, dead, started=started, done=done)

    def first_delivery_after(self, moment: float, timeout_s: float = 120) -> float:
        """Seconds from `moment` (monotonic) until the receiver's count next grows."""
        before = len(self.receiver.calls)
        wait_for(
            lambda: len(self.receiver.calls) > before,
            timeout_s=timeout_s,
            what="a write-back after the fault",
        )
        return time.monotonic() - moment

    def _missing(self, ids: set[str]) -> str:
        missing = sorted(ids - set(self.receiver.delivered()))
        return f"{len(missing)} missing: {missing[:10]}"


@dataclass
class Run:
    """Tickets sent to the fleet from `started` (monotonic) on."""

    fleet: Fleet
    tickets: list[Ticket]
    started: float = field(default_factory=time.monotonic)

    def send(self, more: list[Ticket]) -> None:
        self.fleet.enqueue(more)
        self.tickets += more

    def finish(self, timeout_s: float, quiet_until: float = 0.0) -> Tally:
        """Wait until every ticket was called back and nothing is left in flight (`wait_quiet`);
        count the calls."""
        done = self.fleet.wait_delivered(self.tickets, timeout_s)
        self.fleet.wait_quiet(quiet_until=quiet_until)
        return self.fleet.tally(self.tickets, self.started, done)


@dataclass(frozen=True)
class Tally:
    """What a run wrote back: lost tickets, duplicate calls, dead letters, and when it ended."""

    tickets: int
    lost: list[str]
    duplicates: int
    dead: int
    started: float
    done: float  # monotonic: the last ticket's first call

    @property
    def exactly_once(self) -> bool:
        return not self.lost and self.duplicates == 0

    def since(self, moment: float) -> str:
        """Seconds from `moment` (monotonic) to the last ticket's call, for the report."""
        return f"{self.done - moment:.1f}"

    def __str__(self) -> str:
        return f"lost={len(self.lost)} duplicates={self.duplicates} dead-lettered={self.dead}"


@dataclass
class Frontier:
    """A local OpenAI-compatible frontier, and a way to start workers that escalate to it."""

    fleet: Fleet
    server: OpenAIServer

    def start_workers(self, **env: str) -> None:
        """An escalate-and-writeback worker calling the frontier (`env`: more settings for it)
        and a classify worker, both unsure of every ticket."""
        frontier = {
            "frontier_provider": "openai",
            "frontier_url": self.server.url,
            "frontier_api_key": "sk-test",
        }
        self.fleet.start("escalate,writeback", **frontier, **UNSURE, **env)
        self.fleet.start("classify", **UNSURE)


OpenWebhook = Callable[..., TestClient]


@pytest.fixture
def fleet(
    start_worker: StartWorker,
    tiny_task: TinyTask,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Fleet]:
    server = RedisServer(tmp_path / "redis")
    server.start()
    # The test process enqueues (and reads results) on the private Redis too.
    monkeypatch.setenv("TRIAGE_REDIS_URL", server.url)
    _clear_caches()
    with CallbackReceiver() as receiver:
        fleet = Fleet(server, receiver, start_worker, tiny_task)
        try:
            yield fleet
        finally:
            for worker in fleet.workers:
                kill_tree(worker)
            server.kill()
            _clear_caches()


@pytest.fixture
def writeback_worker(fleet: Fleet) -> WorkerProcess:
    """A worker for the stages after classify (escalate, writeback), as deployed."""
    return fleet.start("escalate,writeback")


@pytest.fixture
def classify_worker(fleet: Fleet, writeback_worker: WorkerProcess) -> WorkerProcess:
    """A classify worker beside `writeback_worker`: the whole pipeline, split in two."""
    return fleet.start("classify")


@pytest.fixture
def frontier(fleet: Fleet) -> Iterator[Frontier]:
    server = OpenAIServer()
    with server:
        yield Frontier(fleet, server)


@pytest.fixture
def webhook(fleet: Fleet) -> Iterator[OpenWebhook]:
    """Opens the HTTP app, with a webhook for the ticket system `generic`, on the fleet's Redis;
    keyword arguments are `ProducerSettings` (the queue cap, the broker timeout)."""
    with ExitStack() as stack:

        def open_webhook(**producer: Any) -> TestClient:
            app = create_app(
                HttpSettings(
                    api_tokens=["t"],
                    webhook_sources=["generic"],
                    webhook_secrets={"generic": [WEBHOOK_SECRET]},
                ),
                ProducerSettings(redis_url=fleet.redis.url, **producer),
            )
            return stack.enter_context(TestClient(app))

        yield open_webhook


class WebhookSender(threading.Thread):
    """A ticket system: sends each ticket as a signed webhook, and again later after a 503.
    The webhook's key creates `generic` tickets only: make them with `source="generic"`."""

    def __init__(
        self,
        client: TestClient,
        tickets: list[Ticket],
        statuses: Counter[int],
        accepted: list[str],
        pause_s: float = 0.05,
    ) -> None:
        super().__init__(daemon=True)
        self.client, self.statuses, self.accepted = client, statuses, accepted
        self.pending = deque(tickets)
        self.pause_s = pause_s

    def run(self) -> None:
        while self.pending:
            ticket = self.pending.popleft()
            body = ticket.model_dump_json().encode()
            stamp = int(time.time())
            sig = hmac.new(WEBHOOK_SECRET.encode(), f"{stamp}.".encode() + body, hashlib.sha256)
            response = self.client.post(
                "/v1/webhooks/generic",
                content=body,
                headers={
                    "Content-Type": "application/json",
                    "X-Triage-Signature": f"t={stamp},v1={sig.hexdigest()}",
                    "X-Triage-Delivery": f"delivery-{ticket.id}",
                },
            )
            self.statuses[response.status_code] += 1
            # Pauses pace the traffic like a ticket system's; nothing waits on them.
            # 200: a delivery taken before its answer was lost, sent again: it is in.
            if response.status_code in (200, 202):
                self.accepted.append(ticket.id)
                time.sleep(self.pause_s)
            else:  # the sender keeps it and tries again later
                self.pending.append(ticket)
                time.sleep(0.2)


def report(name: str, tally: Tally | None = None, **figures: object) -> None:
    """One line per fault test for the closing table (shown with `pytest -s` or in -rA); a
    `tally` adds the run's tickets, lost, duplicates and run time."""
    if tally is not None:
        figures = {
            "tickets": tally.tickets,
            **figures,
            "lost": len(tally.lost),
            "duplicates": tally.duplicates,
            "run_s": tally.since(tally.started),
        }
    line = f"FAULT {name}: " + " ".join(f"{k}={v}" for k, v in figures.items())
    print(line)
    path = os.environ.get("TRIAGE_FAULT_REPORT")
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")


def children(worker: WorkerProcess) -> list[int]:
    """The pids of a prefork worker's pool processes."""
    return [c.pid for c in psutil.Process(worker.proc.pid).children()]


def kill_tree(worker: WorkerProcess) -> None:
    """kill -9 the worker and its pool processes, as a power cut would."""
    if worker.proc.poll() is None:
        for pid in children(worker):
            os.kill(pid, signal.SIGKILL)
        worker.proc.kill()
        worker.proc.wait()


def _clear_caches() -> None:
    from producer import settings
    from producer.client import redis_client

    settings.get_settings.cache_clear()
    redis_client.cache_clear()
