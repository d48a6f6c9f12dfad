"""Fault tests: a private redis-server per test (so it can be killed and restarted without touching
the machine's shared one), real worker processes, and a callback receiver that counts what was
written back: a ticket with no call is lost, a second call is a duplicate."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest
import redis

from producer import Ticket, enqueue_many
from producer.names import QUEUES
from tests.receivers import CallbackReceiver
from tests.redis_server import RedisServer
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


@dataclass
class Fleet:
    """The private Redis, the receiver, and a way to start workers against them."""

    redis: RedisServer
    receiver: CallbackReceiver
    start_worker: StartWorker
    tiny_task: TinyTask
    workers: list[WorkerProcess] = field(default_factory=list)

    @property
    def rdb(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis.url, decode_responses=True)

    def start(self, queues: str = "classify,escalate,writeback", **env: str) -> WorkerProcess:
        worker = self.start_worker(queues, **{**FAULT_ENV, "redis_url": self.redis.url, **env})
        self.workers.append(worker)
        return worker

    def tickets(self, n: int, prefix: str = "t") -> list[Ticket]:
        """`n` tickets with real Banking77 texts, each calling the receiver back."""
        texts = [row.text for row in self.tiny_task.test]
        return [
            Ticket(
                id=f"{prefix}{i}",
                body=texts[i % len(texts)],
                callback=self.receiver.url,  # type: ignore[arg-type]
                revision="r1",
            )
            for i in range(n)
        ]

    def enqueue(self, tickets: list[Ticket]) -> None:
        for start in range(0, len(tickets), 500):
            enqueue_many(tickets[start : start + 500])

    def wait_delivered(self, tickets: list[Ticket], timeout_s: float) -> float:
        """Wait until every ticket was called back; return when (monotonic) the last one was."""
        ids = {t.id for t in tickets}
        deadline = time.monotonic() + timeout_s
        while not ids <= set(self.receiver.delivered()):
            if time.monotonic() > deadline:
                return float("inf")
            time.sleep(0.1)
        return time.monotonic()

    def wait_quiet(self, timeout_s: float = 30) -> None:
        """Wait until no message is queued or held unacknowledged (retries included)."""
        rdb = self.rdb
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            busy = sum(rdb.llen(q) for q in QUEUES) + rdb.hlen("unacked")
            if not busy:
                break
            time.sleep(0.2)
        time.sleep(0.5)  # a redelivered duplicate in flight lands now or never

    def unacked(self, queue: str) -> int:
        """Messages of `queue` delivered to a worker and not acknowledged yet."""
        held = self.rdb.hvals("unacked")
        return sum(json.loads(m)[2] == queue for m in held)

    def tally(self, tickets: list[Ticket]) -> Tally:
        delivered = self.receiver.delivered()
        lost = [t.id for t in tickets if delivered[t.id] == 0]
        duplicates = sum(n - 1 for n in delivered.values() if n > 1)
        return Tally(lost=lost, duplicates=duplicates, dead=self.rdb.llen("triage:dead"))

    def first_delivery_after(self, moment: float, poll_s: float = 0.05) -> float:
        """Seconds from `moment` (monotonic) until the receiver's count next grows."""
        before = len(self.receiver.calls)
        while len(self.receiver.calls) == before:
            time.sleep(poll_s)
            if time.monotonic() - moment > 120:
                return float("inf")
        return time.monotonic() - moment


@dataclass(frozen=True)
class Tally:
    lost: list[str]
    duplicates: int
    dead: int

    def __str__(self) -> str:
        return f"lost={len(self.lost)} duplicates={self.duplicates} dead-lettered={self.dead}"


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


def report(name: str, **figures: object) -> None:
    """One line per fault test for the closing table (shown with `pytest -s` or in -rA)."""
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
