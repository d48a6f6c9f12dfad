"""A heartbeat key per running worker in Redis, so `triage status` can list the live ones.

Celery's `inspect ping` broadcasts and waits a timeout for answers (a second or more, and a
worker busy in a long batch answers late); a key with a TTL costs one SCAN to read, and a
worker that dies without a goodbye (kill -9) drops off by itself once its key expires.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import redis

from producer.names import KEY_PREFIX

log = logging.getLogger(__name__)

HEARTBEAT_PREFIX = f"{KEY_PREFIX}:worker:"
#: A key outlives this many missed beats: one slow beat (a Redis blip) is not a death.
MISSED_BEATS = 3


def heartbeat_key(node: str, pid: int) -> str:
    # With the pid: two workers on one host share Celery's default node name (celery@host).
    return f"{HEARTBEAT_PREFIX}{node}:{pid}"


class Heartbeat:
    """Renews the worker's key every `interval_s` from a daemon thread; `stop()` deletes it."""

    def __init__(
        self, r: redis.Redis, node: str, queues: Sequence[str], pool: str, interval_s: float
    ) -> None:
        self._r, self._interval_s = r, interval_s
        self.key = heartbeat_key(node, os.getpid())
        self._info: dict[str, Any] = {
            "node": node,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "queues": list(queues),
            "pool": pool,
            "started_at": datetime.now(UTC).isoformat(),
        }
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="triage-heartbeat", daemon=True)

    def start(self) -> None:
        try:
            self.beat()  # at once: a worker is listed as soon as it is ready
        except redis.RedisError as exc:  # Celery waits for Redis; the thread beats once it is back
            log.warning("first heartbeat failed: %s", exc)
        self._thread.start()

    def beat(self) -> None:
        info = {**self._info, "beat_at": datetime.now(UTC).isoformat()}
        ttl_ms = int(self._interval_s * MISSED_BEATS * 1000)
        self._r.set(self.key, json.dumps(info), px=max(ttl_ms, 1000))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        try:
            self._r.delete(self.key)
        except redis.RedisError:
            log.warning("could not delete heartbeat %s; it expires by itself", self.key)

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self.beat()
            except redis.RedisError as exc:  # the worker itself goes on; the key may lapse
                log.warning("heartbeat not renewed: %s", exc)


def live_workers(r: redis.Redis) -> list[dict[str, Any]]:
    """The info of every worker whose heartbeat has not expired, by node name."""
    keys = sorted(r.scan_iter(match=f"{HEARTBEAT_PREFIX}*", count=500))
    if not keys:
        return []
    workers: list[dict[str, Any]] = []
    for key, raw in zip(keys, r.mget(keys), strict=True):
        if raw is None:  # expired between the scan and the read
            continue
        try:
            info = json.loads(raw)
        except ValueError:
            info = {"node": str(key).removeprefix(HEARTBEAT_PREFIX).rpartition(":")[0]}
        workers.append(info)
    return workers
