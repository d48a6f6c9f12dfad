"""`triage backfill` end to end: the CLI in-process and as a real process killed midway."""

from __future__ import annotations

import base64
import contextlib
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner

from cli.main import main
from producer.names import CLASSIFY_QUEUE, result_key
from producer.schemas import TriageResult
from tests.polling import wait_for

ROOT = Path(__file__).resolve().parents[2]


def write_jsonl(path: Path, n: int) -> Path:
    with path.open("w") as fh:
        for i in range(n):
            fh.write(json.dumps({"id": str(i), "body": f"ticket {i} about my card"}) + "\n")
    return path


def queued_ids(rdb: redis.Redis) -> list[str]:
    return [
        json.loads(base64.b64decode(json.loads(m)["body"]))[1]["ticket"]["id"]
        for m in rdb.lrange(CLASSIFY_QUEUE, 0, -1)
    ]


def test_csv_backfill_with_rejects_summary_and_results(rdb: redis.Redis, tmp_path) -> None:
    src = tmp_path / "old.csv"
    src.write_text("key,text,label\nA1,card not here,card_arrival\nA2,,pin\nA3,pin blocked,pin\n")
    for tid, label in [("A1", "card_arrival"), ("A3", "pin_blocked")]:
        res = TriageResult(
            ticket_id=tid,
            source="desk",
            task="category",
            revision="0",
            label=label,
            confidence=0.97,
            decided_by="classifier",
            status="labelled",
        )
        rdb.set(result_key("category", "desk", tid), res.model_dump_json())
    out = tmp_path / "labelled.csv"
    run = CliRunner().invoke(
        main,
        [
            "backfill",
            str(src),
            "--ticket-source",
            "desk",
            "--map",
            "id=key",
            "--map",
            "body=text",
            "--wait",
            "--out",
            str(out),
            "--timeout",
            "5",
        ],
    )
    assert run.exit_code == 0, run.output
    assert "enqueued" in run.output and "rejected" in run.output
    assert sorted(queued_ids(rdb)) == ["A1", "A3"]
    [reject] = [
        json.loads(x) for x in (tmp_path / "old.csv.rejects.jsonl").read_text().splitlines()
    ]
    assert reject["line"] == 3
    rows = out.read_text().splitlines()
    assert rows[0] == "key,text,label,triage_label,triage_confidence,triage_decided_by"
    assert rows[1] == "A1,card not here,card_arrival,card_arrival,0.97,classifier"
    assert rows[2] == "A3,pin blocked,pin,pin_blocked,0.97,classifier"


def test_stdin_and_option_errors(rdb: redis.Redis) -> None:
    lines = "\n".join(json.dumps({"id": str(i), "body": "x"}) for i in range(5))
    run = CliRunner().invoke(main, ["backfill", "-"], input=lines)
    assert run.exit_code == 0, run.output
    assert rdb.llen(CLASSIFY_QUEUE) == 5
    assert CliRunner().invoke(main, ["backfill", "-", "--wait"], input=lines).exit_code == 2
    assert CliRunner().invoke(main, ["backfill", "-", "--map", "id"], input=lines).exit_code == 2


def test_ticket_systems_need_a_grant(rdb: redis.Redis, tmp_path) -> None:
    origin = {"system": "github", "repo": "acme/app", "number": 7}
    src = tmp_path / "gh.jsonl"
    src.write_text(
        json.dumps({"id": "acme/app#7", "body": "card", "origin": origin})
        + "\n"
        + json.dumps({"id": "x", "body": "card", "source": "zendesk"})
        + "\n"
    )
    refused = CliRunner().invoke(main, ["backfill", str(src), "--ticket-source", "github"])
    assert refused.exit_code == 2 and "--grant github" in refused.output
    assert rdb.llen(CLASSIFY_QUEUE) == 0
    ok = CliRunner().invoke(
        main, ["backfill", str(src), "--ticket-source", "github", "--grant", "github"]
    )
    assert ok.exit_code == 0, ok.output
    [ticket] = [
        json.loads(base64.b64decode(json.loads(m)["body"]))[1]["ticket"]
        for m in rdb.lrange(CLASSIFY_QUEUE, 0, -1)
    ]
    assert ticket["origin"] == origin and ticket["source"] == "github"
    [reject] = [
        json.loads(x) for x in (tmp_path / "gh.jsonl.rejects.jsonl").read_text().splitlines()
    ]
    assert reject["line"] == 2 and "--grant zendesk" in reject["errors"][0]["error"]
    bad = CliRunner().invoke(main, ["backfill", str(src), "--grant", "helpdesk"])
    assert bad.exit_code == 2


@pytest.mark.slow
def test_killed_backfill_resumes_with_every_ticket_once(
    rdb: redis.Redis, redis_url, tmp_path
) -> None:
    src = write_jsonl(tmp_path / "big.jsonl", 3000)
    cmd = [sys.executable, "-m", "cli.main", "backfill", str(src), "--rate", "1500"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(
            lambda: rdb.llen(CLASSIFY_QUEUE) >= 600,
            timeout_s=30,
            what="the backfill to queue 600 tickets",
            interval_s=0.02,
        )
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    partial = rdb.llen(CLASSIFY_QUEUE)
    assert 0 < partial < 3000
    run = CliRunner().invoke(main, ["backfill", str(src), "--resume"])
    assert run.exit_code == 0, run.output
    ids = queued_ids(rdb)
    assert len(ids) == 3000 and len(set(ids)) == 3000


@pytest.mark.slow
def test_100k_lines_are_enqueued_with_flat_memory(rdb: redis.Redis, redis_url, tmp_path) -> None:
    import psutil

    src = write_jsonl(tmp_path / "100k.jsonl", 100_000)
    cmd = [sys.executable, "-m", "cli.main", "backfill", str(src), "--chunk-size", "1000"]
    errors = tmp_path / "stderr.txt"
    with errors.open("wb") as err:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err)
    child = psutil.Process(proc.pid)
    samples = []  # the RSS of the running command (ru_maxrss would count the fork of pytest)

    def finished() -> bool:  # and, while it runs, sample its memory
        if proc.poll() is not None:
            return True
        with contextlib.suppress(psutil.Error):
            samples.append(child.memory_info().rss)
        return False

    try:
        wait_for(finished, timeout_s=240, what="the 100k-line backfill to finish")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, errors.read_text()[-2000:]
    assert rdb.llen(CLASSIFY_QUEUE) == 100_000
    # Input ~5 MB, messages ~50 MB; flat means the last quarter of the run holds no more than
    # the first quarter did, give or take allocator noise.
    quarter = max(1, len(samples) // 4)
    early, late = max(samples[quarter : 2 * quarter]), max(samples[-quarter:])
    assert late < early + 15 * 2**20, f"RSS grew from {early / 2**20:.0f} to {late / 2**20:.0f} MB"
    assert max(samples) < 150 * 2**20, f"peak RSS {max(samples) / 2**20:.0f} MB"


@pytest.mark.slow
def test_dry_run_classifies_a_sample_and_writes_nothing(
    rdb: redis.Redis, tiny_task, tmp_path, monkeypatch
) -> None:
    import shutil

    from models import settings as model_settings
    from worker import resources

    shutil.copytree(tiny_task.qdrant_seed, tmp_path / "data" / "qdrant")
    monkeypatch.setenv("TRIAGE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TRIAGE_LABELS", json.dumps({"category": str(tiny_task.labels_path)}))
    monkeypatch.setenv("TRIAGE_ADAPTERS", json.dumps({"category": str(tiny_task.adapter_dir)}))
    model_settings.get_settings.cache_clear()
    src = tmp_path / "old.jsonl"
    with src.open("w") as fh:
        for i, row in enumerate(tiny_task.test[:8]):
            fh.write(json.dumps({"id": str(i), "body": row.text, "label": row.label}) + "\n")
    try:
        run = CliRunner().invoke(main, ["backfill", str(src), "--dry-run", "--sample", "6"])
    finally:
        resources.close_all()
        resources.task_models.cache_clear()
        model_settings.get_settings.cache_clear()
    assert run.exit_code == 0, run.output
    assert "6 tickets classified, nothing written" in run.output
    assert "agrees with the input on" in run.output and "/6 labelled tickets" in run.output
    assert rdb.llen(CLASSIFY_QUEUE) == 0 and not (tmp_path / "old.jsonl.checkpoint").exists()
