"""Tickets through a real Redis and a real worker process, back to written-back labels."""

from __future__ import annotations

import base64
import json
import uuid

import redis

from models.index import TicketIndex
from producer import Ticket, TriageResult, enqueue_many, get_result, wire
from producer.names import (
    CLASSIFY_QUEUE,
    CLASSIFY_TASK,
    DEAD_LETTER_LIST,
    ESCALATE_QUEUE,
    EVENTS_STREAM,
    QUEUES,
)
from tests.polling import wait_for
from tests.receivers import CallbackReceiver
from tests.wire_servers import AnthropicServer, OpenAIServer, RawReply
from tests.worker.conftest import StartWorker, TinyTask


def wait_results(tickets: list[Ticket], timeout_s: float = 60) -> list[TriageResult]:
    found: dict[str, TriageResult] = {}

    def all_found() -> bool:
        for t in tickets:
            if t.id not in found and (r := get_result(t.id, t.source)) is not None:
                found[t.id] = r
        return len(found) == len(tickets)

    wait_for(
        all_found,
        timeout_s=timeout_s,
        what=lambda: f"a result for {[t.id for t in tickets if t.id not in found]}",
    )
    return [found[t.id] for t in tickets]


def settled(rdb: redis.Redis) -> bool:
    """No message queued, none held by a worker (a task running, a retry waiting): nothing
    more can reach a callback."""
    return not sum(rdb.llen(q) for q in QUEUES) and not rdb.hlen("unacked")


def make_tickets(task: TinyTask, n: int, **extra: object) -> list[Ticket]:
    return [
        Ticket(id=f"t{i}", body=row.text, **extra)  # type: ignore[arg-type]
        for i, row in enumerate(task.test[:: max(1, len(task.test) // n)][:n])
    ]


def test_confident_tickets_come_back_labelled_with_evidence(
    start_worker: StartWorker, tiny_task: TinyTask, rdb: redis.Redis
) -> None:
    worker = start_worker(classifier_threshold="0", retrieval_threshold="0")
    tickets = make_tickets(tiny_task, 10)
    enqueue_many(tickets)
    results = wait_results(tickets)

    truth = {f"t{i}": r.label for i, r in enumerate(tiny_task.test[:: len(tiny_task.test) // 10])}
    for r in results:
        assert r.status == "labelled" and r.decided_by == "classifier"
        assert r.label in {
            "card_arrival",
            "exchange_rate",
            "lost_or_stolen_card",
            "pin_blocked",
            "cash_withdrawal_charge",
        }
        assert [s.stage for s in r.trace] == ["classifier", "retrieval", "cascade"]
        assert len(r.evidence) == 10 and all(n.source == "seed" for n in r.evidence)
        assert r.versions["adapter"] and r.versions["embedder"]
        assert r.latency_ms is not None and r.latency_ms > 0
    correct = sum(r.label == truth[r.ticket_id] for r in results)
    assert correct >= 6, f"only {correct}/10 right: the model or the wiring is broken"
    assert rdb.xlen(EVENTS_STREAM) == 10

    # The labelled tickets went into the index, so the next similar ticket benefits.
    worker.stop()
    index = TicketIndex(path=worker.data_dir / "qdrant")
    try:
        assert index.count("category") == 150 + 10
    finally:
        index.close()


def test_unsure_ticket_escalates_to_an_openai_compatible_api(
    start_worker: StartWorker, tiny_task: TinyTask
) -> None:
    with OpenAIServer(label="pin_blocked") as server:
        start_worker(
            classifier_threshold="1.01",
            retrieval_threshold="1.01",
            disagreement_margin="1.01",
            frontier_provider="openai",
            frontier_url=server.url,
            frontier_api_key="sk-test",
        )
        tickets = make_tickets(tiny_task, 3)
        enqueue_many(tickets)
        results = wait_results(tickets)
        requests = server.requests
    for r in results:
        assert (r.status, r.decided_by, r.label) == ("labelled", "frontier", "pin_blocked")
        frontier = r.trace[-1]
        assert frontier.stage == "frontier" and frontier.cost_usd > 0
    assert len(requests) == 3
    tool = requests[0].json["tools"][0]["function"]
    assert "card_arrival" in tool["parameters"]["properties"]["label"]["enum"]
    assert requests[0].headers["authorization"] == "Bearer sk-test"


def test_unsure_ticket_escalates_to_an_anthropic_api(
    start_worker: StartWorker, tiny_task: TinyTask
) -> None:
    with AnthropicServer(label="exchange_rate") as server:
        start_worker(
            classifier_threshold="1.01",
            retrieval_threshold="1.01",
            disagreement_margin="1.01",
            frontier_provider="anthropic",
            frontier_url=server.url,
            frontier_api_key="ak-test",
            frontier_model="claude-test",
        )
        tickets = make_tickets(tiny_task, 2)
        enqueue_many(tickets)
        results = wait_results(tickets)
        requests = server.requests
    assert [(r.decided_by, r.label) for r in results] == [("frontier", "exchange_rate")] * 2
    assert requests[0].headers["x-api-key"] == "ak-test"
    assert requests[0].json["tool_choice"]["type"] == "tool"


def test_answer_outside_the_enum_is_refused_and_goes_to_review(
    start_worker: StartWorker, tiny_task: TinyTask
) -> None:
    with OpenAIServer() as server:
        server.answer = lambda request: RawReply(
            {
                "id": "x",
                "object": "chat.completion",
                "model": "m",
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "tool_calls",
                        "message": {
                            "role": "assistant",
                            "content": None,
                            "tool_calls": [
                                {
                                    "id": "c",
                                    "type": "function",
                                    "function": {
                                        "name": "set_label",
                                        "arguments": json.dumps({"label": "refund_all"}),
                                    },
                                }
                            ],
                        },
                    }
                ],
                "usage": {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13},
            }
        )
        start_worker(
            classifier_threshold="1.01",
            retrieval_threshold="1.01",
            frontier_provider="openai",
            frontier_url=server.url,
            frontier_api_key="sk-test",
            frontier_max_retries="0",
        )
        tickets = make_tickets(tiny_task, 2)
        enqueue_many(tickets)
        results = wait_results(tickets)
    for r in results:
        assert r.status == "needs_review"
        assert r.reason is not None and "refused" in r.reason and "refund_all" in r.reason
        assert r.label != "refund_all"


def test_without_a_frontier_unsure_tickets_wait_for_a_human(
    start_worker: StartWorker, tiny_task: TinyTask, rdb: redis.Redis
) -> None:
    # This worker serves escalate too and has nothing to ask: the classify batch decides review.
    worker = start_worker(classifier_threshold="1.01", retrieval_threshold="1.01")
    tickets = make_tickets(tiny_task, 4)
    enqueue_many(tickets)
    for r in wait_results(tickets):
        assert r.status == "needs_review" and r.reason and "no frontier" in r.reason
        assert r.label is not None  # the first pass's suggestion for the reviewer
    assert rdb.xlen(EVENTS_STREAM) == 4
    assert "triage.escalate[" not in worker.output()


def test_a_classify_only_worker_leaves_escalation_to_the_escalate_workers(
    start_worker: StartWorker, tiny_task: TinyTask, rdb: redis.Redis
) -> None:
    # It has no frontier key, but the escalate workers may: it must not decide review itself.
    start_worker("classify", classifier_threshold="1.01", retrieval_threshold="1.01")
    enqueue_many(make_tickets(tiny_task, 3))
    wait_for(
        lambda: rdb.llen(ESCALATE_QUEUE) >= 3,
        timeout_s=60,
        what="3 escalations queued by the classify-only worker",
    )
    assert rdb.llen(ESCALATE_QUEUE) == 3


def test_callback_gets_exactly_one_signed_call_per_result(
    start_worker: StartWorker, tiny_task: TinyTask, rdb: redis.Redis
) -> None:
    secret = "cb-secret"
    with CallbackReceiver() as receiver:
        start_worker(classifier_threshold="0", callback_secret=secret)
        tickets = make_tickets(tiny_task, 5, callback=receiver.url, revision="r1")
        enqueue_many(tickets)
        wait_results(tickets)
        # Replay every write-back, as a redelivery would: the receiver must not hear twice.
        from worker.app import app

        for t in tickets:
            result = get_result(t.id)
            assert result is not None
            app.send_task(
                "triage.writeback",
                kwargs={
                    "ticket": t.model_dump(mode="json"),
                    "result": result.model_dump(mode="json"),
                },
            )
        wait_for(lambda: settled(rdb), timeout_s=30, what="the replayed write-backs to be done")
        calls = list(receiver.calls)
    assert sorted(c.json["ticket_id"] for c in calls) == sorted(t.id for t in tickets)
    for call in calls:
        assert call.signature_valid(secret)
        assert call.headers["idempotency-key"] == f"category:api:{call.json['ticket_id']}:r1"


def test_a_worker_serving_writeback_writes_its_batches_back_itself(
    start_worker: StartWorker, tiny_task: TinyTask, rdb: redis.Redis
) -> None:
    """One process serves every queue (as the demo runs): a batch's results are written back in
    the batch, with no message to its own queue; a ticket whose callback fails goes on alone as
    a `writeback`, with its retries, and lands once."""
    with CallbackReceiver() as receiver:
        receiver.failing.set()
        worker = start_worker(
            classifier_threshold="0", callback_secret="cb-secret", retry_backoff_max_s="0.5"
        )
        tickets = make_tickets(tiny_task, 12, callback=receiver.url, revision="r1")
        enqueue_many(tickets)
        results = wait_results(tickets)  # stored before the callbacks are tried
        wait_for(
            lambda: receiver.refused >= len(tickets),
            timeout_s=30,
            what=lambda: f"a refused call per ticket ({receiver.refused} of {len(tickets)})",
        )
        receiver.failing.clear()
        wait_for(
            lambda: len(receiver.delivered()) >= len(tickets),
            timeout_s=30,
            what=lambda: f"every ticket called back ({sorted(receiver.delivered())})",
        )
        # A second call would come from a message still queued or held (a retry): none left.
        wait_for(lambda: settled(rdb), timeout_s=30, what="the write-back retries to be done")
        delivered = receiver.delivered()
    assert receiver.refused >= len(tickets)
    assert sorted(delivered) == sorted(t.id for t in tickets)
    assert set(delivered.values()) == {1}
    batches = [int(s.detail["batch"]) for r in results for s in r.trace if s.stage == "classifier"]
    assert max(batches) > 1, "no batch formed: the test proves nothing"
    log = worker.output()
    assert "triage.writeback_batch[" not in log
    assert "triage.writeback[" in log  # the refused ones, each alone


def test_bad_messages_are_dead_lettered_and_the_worker_keeps_serving(
    start_worker: StartWorker, tiny_task: TinyTask, rdb: redis.Redis
) -> None:
    start_worker(classifier_threshold="0")
    # Not JSON at all, JSON of the wrong content type, and a Celery message with a bad ticket.
    rdb.lpush(CLASSIFY_QUEUE, "this is not a kombu envelope")
    pickled = {
        "body": base64.b64encode(b"\x80\x04garbage").decode(),
        "content-encoding": "binary",
        "content-type": "application/x-python-serialize",
        "headers": {"task": CLASSIFY_TASK, "id": str(uuid.uuid4())},
        "properties": {
            "delivery_tag": str(uuid.uuid4()),
            "body_encoding": "base64",
            "delivery_info": {"exchange": "", "routing_key": CLASSIFY_QUEUE},
        },
    }
    rdb.lpush(CLASSIFY_QUEUE, json.dumps(pickled))
    bad = wire.envelope(
        CLASSIFY_TASK,
        CLASSIFY_QUEUE,
        wire.Message(str(uuid.uuid4()), json.dumps({"ticket": {"id": "bad", "body": ""}})),
    )
    rdb.lpush(CLASSIFY_QUEUE, bad)

    tickets = make_tickets(tiny_task, 2)
    enqueue_many(tickets)
    assert all(r.status == "labelled" for r in wait_results(tickets))
    dead = [json.loads(d) for d in rdb.lrange(DEAD_LETTER_LIST, 0, -1)]
    assert any("subject or a body" in d["reason"] for d in dead)
    assert any(d["payload"] == "this is not a kombu envelope" for d in dead)
