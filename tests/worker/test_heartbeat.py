"""Heartbeat keys: one per worker process, gone on stop, and gone by themselves when not renewed."""

from __future__ import annotations

import time

import redis

from worker.observe.heartbeat import Heartbeat, live_workers


def test_workers_sharing_a_node_name_are_listed_apart(rdb: redis.Redis, monkeypatch) -> None:
    first = Heartbeat(rdb, "celery@host", ["triage.classify"], "solo", interval_s=5)
    monkeypatch.setattr("os.getpid", lambda: 999_999)  # a second process on the same host
    second = Heartbeat(rdb, "celery@host", ["triage.writeback"], "threads", interval_s=5)
    first.start()
    second.start()
    try:
        found = sorted(live_workers(rdb), key=lambda w: w["pool"])
        assert [(w["node"], w["pool"]) for w in found] == [
            ("celery@host", "solo"),
            ("celery@host", "threads"),
        ]
        assert found[1]["queues"] == ["triage.writeback"] and found[1]["pid"] == 999_999
    finally:
        first.stop()
    assert [w["pool"] for w in live_workers(rdb)] == ["threads"]
    second.stop()
    assert live_workers(rdb) == []


def test_a_heartbeat_not_renewed_expires(rdb: redis.Redis) -> None:
    beat = Heartbeat(rdb, "celery@gone", ["triage.classify"], "solo", interval_s=0.1)
    beat.beat()  # no thread: as if the worker was killed right after its last beat
    assert len(live_workers(rdb)) == 1
    time.sleep(1.2)  # three missed beats, at least a second
    assert live_workers(rdb) == []
