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


# -- provenance: ticket systems only with --grant -------------------------------------------


def queued_tickets(rdb: redis.Redis) -> list[dict]:
    from base64 import b64decode

    return [
        json.loads(b64decode(json.loads(m)["body"]))[1]["ticket"]
        for m in rdb.lrange(CLASSIFY_QUEUE, 0, -1)
    ]


def rows(*items: dict) -> bytes:
    return b"".join(json.dumps(i).encode() + b"\n" for i in items)


GH_ORIGIN = {"system": "github", "repo": "acme/app", "number": 7}


def test_a_ticket_systems_source_is_rejected_without_a_grant(rdb: redis.Redis, tmp_path) -> None:
    """Today's main took any source and origin from a row: a backfill could aim the bot."""
    data = rows(
        {"id": "a", "body": "x", "source": "github", "metadata": {"repo": "victim/r"}},
        {"id": "b", "body": "x", "source": "zendesk", "origin": {"system": "zendesk", "id": 1}},
        {"id": "c", "body": "x", "origin": GH_ORIGIN},
        {"id": "d", "body": "x", "source": "helpdesk", "origin": GH_ORIGIN},
        {"id": "e", "body": "fine", "source": "helpdesk"},
    )
    rejects = tmp_path / "rejects.jsonl"
    stats = run_backfill(io.BytesIO(data), BackfillConfig(rejects_path=rejects))
    assert (stats.enqueued, stats.rejected) == (1, 4)
    reasons = [json.loads(line)["errors"][0] for line in rejects.read_text().splitlines()]
    assert reasons[0] == {
        "field": "source",
        "error": "'github' is a ticket system: a backfill may enqueue for it only with "
        "--grant github",
    }
    assert reasons[1]["field"] == "source" and "--grant zendesk" in reasons[1]["error"]
    assert [r["field"] for r in reasons[2:]] == ["origin", "origin"]
    [ticket] = queued_tickets(rdb)
    assert ticket["id"] == "e" and ticket["origin"] is None


def test_a_granted_system_takes_the_rows_origin_validated(rdb: redis.Redis, tmp_path) -> None:
    data = rows(
        {"id": "acme/app#7", "body": "x", "source": "github", "origin": GH_ORIGIN},
        {"id": "n", "body": "x", "source": "github"},  # no origin: classified, never written
        {
            "id": "t",
            "body": "x",
            "source": "github",
            "origin": {**GH_ORIGIN, "repo": "../../orgs/x"},
        },
        {"id": "z", "body": "x", "source": "zendesk", "origin": {"system": "zendesk", "id": 3}},
        {"id": "w", "body": "x", "source": "github", "origin": {"system": "zendesk", "id": 3}},
        {
            "id": "s",
            "body": "x",
            "source": "zendesk",
            "origin": {"system": "zendesk", "id": "1/../../users/me"},
        },
    )
    rejects = tmp_path / "rejects.jsonl"
    config = BackfillConfig(rejects_path=rejects, grants=frozenset({"github"}))
    stats = run_backfill(io.BytesIO(data), config)
    assert (stats.enqueued, stats.rejected) == (2, 4)
    lines = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert [r["line"] for r in lines] == [3, 4, 5, 6]
    assert lines[0]["errors"][0]["field"].startswith("origin")
    assert "--grant zendesk" in lines[1]["errors"][0]["error"]
    assert "origin cannot be written back for source 'github'" in lines[2]["errors"][0]["error"]
    got = {t["id"]: t["origin"] for t in queued_tickets(rdb)}
    assert got == {"acme/app#7": GH_ORIGIN, "n": None}


def test_a_csv_origin_cell_is_json_text(rdb: redis.Redis) -> None:
    data = (
        b"id,body,source,origin\n"
        b'1,x,jira,"{""system"": ""jira"", ""key"": ""OPS-1""}"\n'
        b"2,y,jira,\n"
        b"3,z,jira,OPS-3\n"
    )
    config = BackfillConfig(fmt="csv", grants=frozenset({"jira"}))
    stats = run_backfill(io.BytesIO(data), config)
    assert (stats.enqueued, stats.rejected) == (2, 1)
    got = {t["id"]: t["origin"] for t in queued_tickets(rdb)}
    assert got == {"1": {"system": "jira", "key": "OPS-1"}, "2": None}


def test_backfill_claims_its_own_dedupe_keys(rdb: redis.Redis) -> None:
    run_backfill(io.BytesIO(jsonl(2)), BackfillConfig())
    keys = sorted(rdb.scan_iter("triage:enqueued:*"))
    assert len(keys) == 2 and all(k.startswith("triage:enqueued:backfill:") for k in keys)


def test_unreadable_json_lines_are_rejects_not_a_crash(rdb: redis.Redis, tmp_path) -> None:
    data = b"[" * 100_000 + b"\n" + b'{"id": "1", "body": ' + b"9" * 5000 + b"}\n"
    data += b'{"id": "2", "body": "ok"}\n'
    stats = run_backfill(io.BytesIO(data), BackfillConfig())
    assert (stats.enqueued, stats.rejected) == (1, 2)


def test_grants_name_ticket_systems() -> None:
    with pytest.raises(ValueError, match="not ticket systems"):
        BackfillConfig(grants=frozenset({"helpdesk"}))


def test_a_row_with_an_internal_callback_is_rejected_alone(rdb: redis.Redis, tmp_path) -> None:
    rows = [
        {"id": "1", "body": "ok", "callback": "https://93.184.215.14/hook"},
        {"id": "2", "body": "steered", "callback": "http://169.254.169.254/latest/meta-data"},
        {"id": "3", "body": "steered", "callback": "http://2130706433:6379/"},
        {"id": "4", "body": "ok too"},
    ]
    data = b"".join(json.dumps(r).encode() + b"\n" for r in rows)
    rejects = tmp_path / "rejects.jsonl"
    stats = run_backfill(io.BytesIO(data), BackfillConfig(rejects_path=rejects, chunk_size=10))
    assert (stats.enqueued, stats.rejected) == (2, 2)
    refused = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert [r["line"] for r in refused] == [2, 3]
    assert all(r["errors"][0]["field"] == "callback" for r in refused)
    assert rdb.llen(CLASSIFY_QUEUE) == 2
