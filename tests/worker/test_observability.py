"""A real worker, observed: its /metrics after tickets, `triage status` (text and --json), and
its ticket event log lines (key=value, and JSON with TRIAGE_LOG_FORMAT=json)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import uuid

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from producer import Ticket, TriageResult, enqueue_many, wire
from producer.client import send_writeback
from producer.names import CLASSIFY_QUEUE, CLASSIFY_TASK, EVENTS_STREAM, QUEUES
from tests.polling import wait_for
from tests.receivers import CallbackReceiver
from tests.wire_servers import OpenAIServer
from tests.worker.conftest import ROOT, StartWorker, TinyTask
from tests.worker.test_end_to_end import make_tickets, wait_results
from worker.observe.heartbeat import live_workers

pytestmark = pytest.mark.slow

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(port: int) -> Samples:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(found: Samples, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels` (0 when there are none)."""
    return sum(v for (n, ls), v in found.items() if n == name and set(labels.items()) <= set(ls))


def wait_for_metric(port: int, name: str, expected: float, **labels: str) -> None:
    """Scrape until `name` (summed over `labels`) reaches `expected`."""
    wait_for(
        lambda: value(scrape(port), name, **labels) == expected,
        timeout_s=60,
        what=lambda: f"{name}{labels} == {expected} (is {value(scrape(port), name, **labels)})",
        interval_s=0.2,
    )


def triage(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_metrics_status_and_log_lines_of_a_real_worker(
    start_worker: StartWorker, tiny_task: TinyTask, rdb: redis.Redis
) -> None:
    port = free_port()
    with OpenAIServer(label="pin_blocked") as frontier, CallbackReceiver() as receiver:
        receiver.failing.set()  # one ticket's callback always fails: counted, then dead-lettered
        worker = start_worker(
            classifier_threshold="1.01",  # every ticket escalates to the frontier
            retrieval_threshold="1.01",
            disagreement_margin="1.01",
            frontier_provider="openai",
            frontier_url=frontier.url,
            frontier_api_key="sk-test",
            sink_max_retries="1",
            callback_secret="s3cret",
            metrics_port=str(port),
            metrics_host="127.0.0.1",
            heartbeat_s="1",
        )
        tickets = make_tickets(tiny_task, 4)
        tickets[3] = Ticket.model_validate({**tickets[3].model_dump(), "callback": receiver.url})
        enqueue_many(tickets)
        bad = wire.Message(str(uuid.uuid4()), json.dumps({"ticket": {"id": "bad", "body": ""}}))
        rdb.lpush(CLASSIFY_QUEUE, wire.envelope(CLASSIFY_TASK, CLASSIFY_QUEUE, bad))
        results = wait_results(tickets)
        wait_for_metric(port, "triage_dead_letters", 2)
        wait_for_metric(port, "triage_worker_tickets_total", 3, stage="writeback")
        # The last write-back try is timed once its task returns, just after it dead-letters.
        wait_for_metric(port, "triage_stage_seconds_count", 5, stage="writeback")
        found = scrape(port)

    spent = sum(s.cost_usd for r in results for s in r.trace)
    assert spent > 0
    # Counters and histograms, counted where things happened.
    assert value(found, "triage_worker_tickets_total", stage="classify", outcome="escalated") == 4
    assert value(found, "triage_worker_tickets_total", stage="classify", outcome="decided") == 0
    assert value(found, "triage_worker_tickets_total", stage="escalate", outcome="labelled") == 4
    assert value(found, "triage_decisions_total", decided_by="frontier", status="labelled") == 4
    assert value(found, "triage_decisions_total") == 4
    assert value(found, "triage_first_pass_seconds_count", task="category") == 4
    assert value(found, "triage_decision_seconds_count", decided_by="frontier") == 4
    assert value(found, "triage_stage_seconds_count", stage="escalate") == 4
    assert value(found, "triage_stage_seconds_count", stage="writeback") == 3 + 2  # 2 tries
    assert value(found, "triage_stage_seconds_count", stage="classify_batch") >= 1
    assert value(found, "triage_classify_batch_size_sum") == 5  # the bad message too
    assert value(found, "triage_writeback_failures_total", sink="callback") == 2
    assert value(found, "triage_writeback_failures_total", sink="store") == 0
    assert value(found, "triage_writeback_sink_seconds_count", sink="store") == 4
    assert value(found, "triage_dead_lettered_total", stage="classify") == 1
    assert value(found, "triage_dead_lettered_total", stage="writeback") == 1
    assert value(found, "triage_frontier_tokens_total", kind="input") > 0
    assert value(found, "triage_frontier_tokens_total", kind="output") > 0
    assert value(found, "triage_frontier_spend_usd_total") == pytest.approx(spent)
    # State, read from Redis at scrape time.
    assert value(found, "triage_redis_up") == 1
    assert value(found, "triage_frontier_spend_today_usd") == pytest.approx(spent)
    assert value(found, "triage_workers_alive") == 1
    for queue in QUEUES:
        assert ("triage_queue_messages", (("queue", queue),)) in found
    assert value(found, "triage_queue_messages") == 0

    # `triage status --json`: the same truth, for scripts.
    out = triage("status", "--json")
    assert out.returncode == 0, out.stderr
    status = json.loads(out.stdout)
    assert status["redis"] == "ok" and status["queues"] == dict.fromkeys(QUEUES, 0)
    assert status["dead_letters"] == 2
    [alive] = status["workers"]
    assert sorted(alive["queues"]) == sorted(QUEUES) and alive["pool"] == "threads"
    assert alive["beat_age_s"] < 5
    assert status["last_hour"] == {
        "total": 4,
        "truncated": False,
        "by_decision": [{"decided_by": "frontier", "status": "labelled", "count": 4}],
    }
    assert status["spend_today_usd"] == pytest.approx(spent)

    # ...and for people.
    out = triage("status")
    assert out.returncode == 0, out.stderr
    for text in ("Workers alive: 1", alive["node"], "Results in the last hour: 4", "frontier"):
        assert text in out.stdout
    assert f"${spent:.4f}" in out.stdout

    # One key=value line per ticket event, with the same fields each time.
    log = worker.output()
    lines = {e: [ln for ln in log.splitlines() if f"event={e} " in ln] for e in EVENTS}
    assert {e: len(v) for e, v in lines.items()} == {
        "classified": 4,
        "escalated": 4,
        "written_back": 3,
        "dead_lettered": 2,
    }
    for line in lines["escalated"] + lines["written_back"]:
        for field in ("ticket_id=t", "source=api", "task=category", "latency_ms="):
            assert field in line
        assert "decided_by=frontier status=labelled label=pin_blocked" in line

    # A worker that stops takes its heartbeat with it.
    worker.stop()
    assert live_workers(rdb) == []


EVENTS = ("classified", "escalated", "written_back", "dead_lettered")


def test_worker_logs_json_lines_when_asked(start_worker: StartWorker, tiny_task: TinyTask) -> None:
    worker = start_worker(classifier_threshold="0", log_format="json")
    tickets = make_tickets(tiny_task, 2)
    enqueue_many(tickets)
    wait_results(tickets)
    wait_for(
        lambda: worker.output().count('"event": "written_back"') == 2,
        timeout_s=30,
        what="two written_back events in the log",
    )
    objects = []
    for line in worker.output().splitlines():
        if line.startswith("{"):
            objects.append(json.loads(line))
    assert any(o.get("msg") == "warm-up done" for o in objects), "other lines are JSON too"
    events = [o for o in objects if "event" in o]
    assert sorted(o["event"] for o in events) == ["classified"] * 2 + ["written_back"] * 2
    for o in events:
        assert o["ticket_id"] in {"t0", "t1"} and o["source"] == "api"
        assert o["decided_by"] == "classifier" and o["status"] == "labelled"
        assert isinstance(o["latency_ms"], float) and o["level"] == "info"
    assert not any("event=classified" in line for line in worker.output().splitlines())


def test_status_exits_3_when_redis_is_unreachable() -> None:
    out = triage(
        "status",
        "--json",
        env={"TRIAGE_REDIS_URL": "redis://127.0.0.1:1/0", "TRIAGE_BROKER_TIMEOUT_S": "1"},
    )
    assert out.returncode == 3
    assert json.loads(out.stdout)["redis"].startswith("unreachable")
    assert "Redis is unreachable" in out.stderr


def test_a_metrics_port_in_use_stops_the_worker_with_its_name(redis_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = subprocess.run(
            [sys.executable, "-m", "cli.main", "worker", "-Q", "writeback"],
            cwd=ROOT,
            env={
                **os.environ,
                "TRIAGE_METRICS_PORT": str(port),
                "TRIAGE_METRICS_HOST": "127.0.0.1",
            },
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert out.returncode != 0
    assert f"cannot serve metrics on 127.0.0.1:{port} (TRIAGE_METRICS_PORT)" in out.stderr


def test_a_prefork_worker_sums_its_childrens_metrics(
    start_worker: StartWorker, rdb: redis.Redis
) -> None:
    # Each child counts in its own memory; the parent serves the port. Without the multiprocess
    # directory the parent would report none of its children's write-backs.
    port = free_port()
    start_worker("writeback", worker_pool="prefork", worker_concurrency="2", metrics_port=str(port))
    n = 8
    for i in range(n):
        ticket = Ticket(id=f"h{i}", body="card not here")
        result = TriageResult(
            ticket_id=ticket.id,
            source=ticket.source,
            task=ticket.task,
            revision=ticket.effective_revision,
            label=None,
            confidence=0.5,
            decided_by="classifier",
            status="needs_review",
        )
        send_writeback(ticket, result)
    wait_for_metric(port, "triage_stage_seconds_count", n, stage="writeback")
    found = scrape(port)
    assert value(found, "triage_worker_tickets_total", stage="writeback", outcome="written") == n
    assert value(found, "triage_writeback_sink_seconds_count", sink="store") == n
    assert rdb.xlen(EVENTS_STREAM) == n
