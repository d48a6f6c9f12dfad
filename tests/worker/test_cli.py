"""The `triage` command line, in-process, against a real Redis."""

from __future__ import annotations

import json

import redis
from click.testing import CliRunner

from cli.main import main
from producer.names import CLASSIFY_QUEUE


def test_enqueue_from_stdin_prints_ids(rdb: redis.Redis) -> None:
    lines = "\n".join(json.dumps({"id": str(i), "body": "card missing"}) for i in range(3))
    out = CliRunner().invoke(main, ["enqueue", "-"], input=lines)
    assert out.exit_code == 0, out.output
    assert out.output.split() == ["0", "1", "2"]
    assert rdb.llen(CLASSIFY_QUEUE) == 3


def test_enqueue_refuses_a_bad_ticket_and_sends_nothing(rdb: redis.Redis) -> None:
    out = CliRunner().invoke(main, ["enqueue"], input='[{"id": "1", "body": "ok"}, {"body": "x"}]')
    assert out.exit_code == 2
    assert "id" in out.output and "Field required" in out.output
    assert rdb.llen(CLASSIFY_QUEUE) == 0


def test_enqueue_refuses_garbage(rdb: redis.Redis) -> None:
    out = CliRunner().invoke(main, ["enqueue"], input="{not json")
    assert out.exit_code == 2 and "not JSON" in out.output


def test_result_of_an_unknown_ticket_exits_1(redis_url: str) -> None:
    out = CliRunner().invoke(main, ["result", "nope"])
    assert out.exit_code == 1 and "no result yet" in out.output


def test_unknown_queue_is_refused() -> None:
    out = CliRunner().invoke(main, ["worker", "-Q", "classify,bogus"])
    assert out.exit_code == 2 and "unknown queue 'bogus'" in out.output


def test_bad_settings_stop_the_worker_at_start_up(monkeypatch) -> None:
    from worker import settings

    monkeypatch.setenv("TRIAGE_VISIBILITY_TIMEOUT_S", "60")
    settings.get_settings.cache_clear()
    try:
        out = CliRunner().invoke(main, ["worker", "-Q", "writeback"])
    finally:
        settings.get_settings.cache_clear()
    assert out.exit_code == 2 and "TRIAGE_VISIBILITY_TIMEOUT_S=60" in out.output
