"""`triage dead-letter list|replay` against a real Redis: entries as the worker parks them."""

from __future__ import annotations

import base64
import json
from typing import Any

import redis
from click.testing import CliRunner

from cli.main import main
from producer import Ticket
from producer.names import (
    CLASSIFY_QUEUE,
    CLASSIFY_TASK,
    DEAD_LETTER_LIST,
    ESCALATE_QUEUE,
    ESCALATE_TASK,
    WRITEBACK_QUEUE,
    WRITEBACK_TASK,
)
from worker.writeback.dead_letter import dead_letter


def _ticket(i: int) -> dict[str, Any]:
    return TICKETS[i]


TICKETS = {
    i: Ticket(id=str(i), source="helpdesk", body=f"card {i} missing").model_dump(mode="json")
    for i in (1, 2, 3)
}


def _queued(rdb: redis.Redis, queue: str) -> list[tuple[str, dict[str, Any]]]:
    """(task name, kwargs) of every message on `queue`, as a Celery worker would decode them."""
    out = []
    for raw in rdb.lrange(queue, 0, -1):
        envelope = json.loads(raw)
        args, kwargs, _embed = json.loads(base64.b64decode(envelope["body"]))
        assert args == []
        out.append((envelope["headers"]["task"], kwargs))
    return out


def _park_three(rdb: redis.Redis) -> None:
    dead_letter(CLASSIFY_TASK, {"ticket": _ticket(1), "retries": 5}, "gave up after 6 tries: 503")
    dead_letter(WRITEBACK_TASK, {"ticket": _ticket(2), "result": {"x": 1}}, "callback said 401")
    dead_letter(ESCALATE_TASK, {"ticket": _ticket(3), "label": "a"}, "frontier said 401")


def test_list_shows_oldest_first_and_filters_by_reason(rdb: redis.Redis) -> None:
    _park_three(rdb)
    out = CliRunner().invoke(main, ["dead-letter", "list", "--json"])
    assert out.exit_code == 0, out.output
    tasks = [json.loads(line)["task"] for line in out.output.splitlines()]
    assert tasks == [CLASSIFY_TASK, WRITEBACK_TASK, ESCALATE_TASK]

    out = CliRunner().invoke(main, ["dead-letter", "list", "--reason", "401", "--limit", "1"])
    assert out.exit_code == 0, out.output
    assert "helpdesk/2" in out.output and "helpdesk/1" not in out.output
    assert "helpdesk/3" not in out.output


def test_replay_sends_each_entry_to_its_queue_with_its_arguments(rdb: redis.Redis) -> None:
    _park_three(rdb)
    out = CliRunner().invoke(main, ["dead-letter", "replay"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output) == {"replayed": 3, "already_replayed": 0, "skipped": 0}
    assert rdb.llen(DEAD_LETTER_LIST) == 0

    [(task, kwargs)] = _queued(rdb, CLASSIFY_QUEUE)
    assert task == CLASSIFY_TASK and kwargs["retries"] == 0  # a fresh count of tries
    assert kwargs["ticket"]["id"] == "1"
    [(task, kwargs)] = _queued(rdb, WRITEBACK_QUEUE)
    assert task == WRITEBACK_TASK and kwargs == {"ticket": _ticket(2), "result": {"x": 1}}
    [(task, kwargs)] = _queued(rdb, ESCALATE_QUEUE)
    assert task == ESCALATE_TASK and kwargs == {"first": {"ticket": _ticket(3), "label": "a"}}


def test_replay_only_takes_the_matching_entries(rdb: redis.Redis) -> None:
    _park_three(rdb)
    out = CliRunner().invoke(main, ["dead-letter", "replay", "--reason", "401", "--limit", "1"])
    assert out.exit_code == 0, out.output
    assert rdb.llen(WRITEBACK_QUEUE) == 1 and rdb.llen(ESCALATE_QUEUE) == 0
    left = [json.loads(raw)["task"] for raw in rdb.lrange(DEAD_LETTER_LIST, 0, -1)]
    assert sorted(left) == [CLASSIFY_TASK, ESCALATE_TASK]


def test_an_entry_is_queued_once_even_when_its_removal_was_lost(rdb: redis.Redis) -> None:
    dead_letter(WRITEBACK_TASK, {"ticket": _ticket(2), "result": {}}, "target down")
    raw = rdb.lindex(DEAD_LETTER_LIST, 0)
    assert isinstance(raw, str)
    assert CliRunner().invoke(main, ["dead-letter", "replay"]).exit_code == 0
    # A crash between the push and the removal leaves the entry in the list: put it back.
    rdb.lpush(DEAD_LETTER_LIST, raw)
    out = CliRunner().invoke(main, ["dead-letter", "replay"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output) == {"replayed": 0, "already_replayed": 1, "skipped": 0}
    assert rdb.llen(WRITEBACK_QUEUE) == 1 and rdb.llen(DEAD_LETTER_LIST) == 0


def test_entries_without_a_task_stay_and_the_exit_code_says_so(rdb: redis.Redis) -> None:
    rdb.lpush(
        DEAD_LETTER_LIST,
        json.dumps({"task": None, "reason": "not a message envelope", "payload": "garbage"}),
    )
    dead_letter(CLASSIFY_TASK, {"ticket": _ticket(1)}, "model crashed")
    dry = CliRunner().invoke(main, ["dead-letter", "replay", "--dry-run"])
    assert dry.exit_code == 0 and "would replay 1 of 2" in dry.output
    assert rdb.llen(CLASSIFY_QUEUE) == 0

    out = CliRunner().invoke(main, ["dead-letter", "replay"])
    assert out.exit_code == 1
    assert json.loads(out.output) == {"replayed": 1, "already_replayed": 0, "skipped": 1}
    assert rdb.llen(DEAD_LETTER_LIST) == 1 and rdb.llen(CLASSIFY_QUEUE) == 1


def test_redis_down_exits_3(monkeypatch) -> None:
    from producer import settings

    monkeypatch.setenv("TRIAGE_REDIS_URL", "redis://127.0.0.1:1/0")
    settings.get_settings.cache_clear()
    try:
        out = CliRunner().invoke(main, ["dead-letter", "list"])
    finally:
        settings.get_settings.cache_clear()
    assert out.exit_code == 3 and "unreachable" in out.output
