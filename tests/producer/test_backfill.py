"""Backfill against a real Redis: streaming, rejects with line numbers, chunks, resume."""

from __future__ import annotations

import io
import json

import pytest
import redis

from producer.backfill import BackfillConfig, run_backfill
from producer.names import CLASSIFY_QUEUE


def jsonl(n: int, start: int = 0) -> bytes:
    return b"".join(
        json.dumps({"id": str(i), "body": f"ticket number {i}", "label": "x"}).encode() + b"\n"
        for i in range(start, start + n)
    )


def test_bad_rows_land_in_rejects_with_line_numbers(rdb: redis.Redis, tmp_path) -> None:
    data = (
        b'{"id": "1", "body": "ok"}\n'
        b"{not json\n"
        b"\n"
        b'{"id": "2"}\n'
        b'{"id": "3", "body": "caf\xe9"}\n'
        b"[1, 2]\n"
        b'{"id": "4", "body": "ok too"}\n'
    )
    rejects = tmp_path / "rejects.jsonl"
    stats = run_backfill(io.BytesIO(data), BackfillConfig(rejects_path=rejects, chunk_size=2))
    assert (stats.read, stats.enqueued, stats.rejected) == (6, 2, 4)
    lines = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert [r["line"] for r in lines] == [2, 4, 5, 6]
    assert lines[1]["errors"][0]["error"] == "Value error, a ticket needs a subject or a body"
    assert rdb.llen(CLASSIFY_QUEUE) == 2


def test_csv_with_a_column_mapping(rdb: redis.Redis, tmp_path) -> None:
    data = (
        b"ticket_id,title,text,team\n"
        b'10,Card,"two\nlines",payments\n'
        b"11,,,ops\n"
        b"12,PIN,blocked,cards\n"
    )
    rejects = tmp_path / "rejects.jsonl"
    config = BackfillConfig(
        fmt="csv",
        source="helpdesk",
        mapping={"id": "ticket_id", "subject": "title", "body": "text"},
        rejects_path=rejects,
    )
    stats = run_backfill(io.BytesIO(data), config)
    assert (stats.enqueued, stats.rejected) == (2, 1)
    assert json.loads(rejects.read_text())["line"] == 4  # the quoted newline counts
    from base64 import b64decode

    first = json.loads(b64decode(json.loads(rdb.lindex(CLASSIFY_QUEUE, -1))["body"]))[1]["ticket"]
    assert first["id"] == "10" and first["source"] == "helpdesk" and first["body"] == "two\nlines"
    assert first["metadata"] == {"team": "payments"}


def test_duplicates_are_counted_not_sent(rdb: redis.Redis) -> None:
    run_backfill(io.BytesIO(jsonl(30)), BackfillConfig(chunk_size=7))
    stats = run_backfill(io.BytesIO(jsonl(40)), BackfillConfig(chunk_size=7))
    assert (stats.enqueued, stats.duplicates) == (10, 30)
    assert rdb.llen(CLASSIFY_QUEUE) == 40


def test_resume_skips_what_the_checkpoint_covers(rdb: redis.Redis, tmp_path) -> None:
    checkpoint = tmp_path / "in.checkpoint"
    config = BackfillConfig(chunk_size=10, checkpoint_path=checkpoint)
    calls = []

    def die_after_three_chunks(stats) -> None:
        calls.append(stats.read)
        if len(calls) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_backfill(io.BytesIO(jsonl(100)), config, progress=die_after_three_chunks)
    assert json.loads(checkpoint.read_text()) == {"line": 30}
    stats = run_backfill(io.BytesIO(jsonl(100)), config)
    assert (stats.resumed_past, stats.enqueued, stats.duplicates) == (30, 70, 0)
    assert rdb.llen(CLASSIFY_QUEUE) == 100


def test_rate_cap(rdb: redis.Redis) -> None:
    stats = run_backfill(io.BytesIO(jsonl(30)), BackfillConfig(rate_per_s=100))
    assert stats.enqueued == 30 and stats.elapsed_s >= 0.25
