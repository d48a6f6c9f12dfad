"""Fault tests: kill and restart real processes; count lost and duplicated write-backs.

Each test enqueues tickets that call a local receiver back, injects one fault, and checks that
every ticket was written back exactly once (0 lost, 0 duplicates). The figures (recovery time,
run time) are printed as ``FAULT ...`` lines.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import random
import signal
import threading
import time
import uuid
from collections import Counter, deque
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from producer import Ticket, enqueue_many, get_result, wire
from producer.http import create_app
from producer.http.settings import HttpSettings
from producer.names import (
    CLASSIFY_QUEUE,
    CLASSIFY_TASK,
    DEAD_LETTER_LIST,
    ESCALATE_QUEUE,
    ESCALATE_TASK,
    ROUTES,
)
from producer.schemas import MAX_BODY_CHARS, MAX_SUBJECT_CHARS
from producer.settings import ProducerSettings
from tests.receivers import CallbackReceiver
from tests.wire_servers import DelayReply, OpenAIServer, Reply, StatusReply
from tests.worker.reliability.conftest import Fleet, children, kill_tree, report

pytestmark = pytest.mark.slow


def test_kill_9_a_worker_child_mid_batch(fleet: Fleet) -> None:
    """1. kill -9 the classify child mid-batch, 10 times during a run: its batch is sent again
    at once (not after the visibility timeout) and written back once."""
    fleet.start("escalate,writeback")
    clf = fleet.start("classify", worker_pool="prefork", worker_concurrency="1")
    tickets = fleet.tickets(TOP_UP_TO)
    started = time.monotonic()
    fleet.enqueue(tickets)
    back_after: list[float] = []
    for _ in range(KILLS):
        # Keep a backlog, so the child is always mid-batch (a fast machine drains it sooner).
        if (waiting := fleet.rdb.llen(CLASSIFY_QUEUE)) < TOP_UP_TO:
            more = fleet.tickets(len(tickets) + TOP_UP_TO - waiting)[len(tickets) :]
            fleet.enqueue(more)
            tickets += more
        warm = clf.output().count("warm-up done")
        (child,) = children(clf)
        time.sleep(random.uniform(0.15, 0.5))  # the child is working through the backlog
        os.kill(child, signal.SIGKILL)
        killed_at = time.monotonic()
        while clf.output().count("warm-up done") == warm:  # a new child, models loaded
            assert time.monotonic() - killed_at < 60, clf.output()[-3000:]
            time.sleep(0.05)
        back_after.append(time.monotonic() - killed_at)
    done = fleet.wait_delivered(tickets, timeout_s=120)
    fleet.wait_quiet()
    tally = fleet.tally(tickets)
    resent = clf.output().count("the worker process died while classifying")
    report(
        "1-kill-child",
        tickets=len(tickets),
        kills=KILLS,
        batches_resent=resent,
        lost=len(tally.lost),
        duplicates=tally.duplicates,
        recovery_s=f"{max(back_after):.1f}",
        run_s=f"{done - started:.1f}",
    )
    assert resent == KILLS, "a kill did not land mid-batch"
    assert not tally.lost and tally.duplicates == 0, tally
    assert tally.dead == 0


#: The issue asks for a 1,000-ticket run. On 2 shared cores the classify worker does ~20 tickets/s
#: and each replacement child spends ~7 s loading its models, so 1,000 tickets took 150 s. Instead
#: the queue is kept topped up to a few hundred before each kill, enough for all ten to land
#: mid-batch on a faster machine too.
TOP_UP_TO = 300
KILLS = 10


# With kombu's own transport a worker killed between its BRPOP and its unacked record lost that
# message (1 of 200, in ~1 run of 5); `worker.transport` pops and records in one script.
def test_kill_9_the_whole_worker(fleet: Fleet) -> None:
    """2. kill -9 the whole worker with tickets in flight; a new worker finishes them."""
    fleet.start("escalate,writeback")
    first = fleet.start("classify")
    tickets = fleet.tickets(200)
    started = time.monotonic()
    fleet.enqueue(tickets)
    while len(fleet.receiver.calls) < 50:
        time.sleep(0.05)
    kill_tree(first)
    killed_at = time.monotonic()
    in_flight = fleet.rdb.hlen("unacked")
    fleet.start("classify")
    done = fleet.wait_delivered(tickets, timeout_s=90)
    fleet.wait_quiet()
    tally = fleet.tally(tickets)
    report(
        "2-kill-worker",
        tickets=len(tickets),
        unacked_at_kill=in_flight,
        lost=len(tally.lost),
        duplicates=tally.duplicates,
        recovery_s=f"{done - killed_at:.1f}",
        run_s=f"{done - started:.1f}",
    )
    assert in_flight > 0, "nothing was in flight when the worker died"
    assert not tally.lost and tally.duplicates == 0, tally


def test_sigterm_requeues_what_is_unfinished(fleet: Fleet) -> None:
    """3. SIGTERM: the warm shutdown finishes its batch and gives the prefetched tickets back at
    once, so a new worker takes them without waiting out the visibility timeout."""
    # A long visibility timeout: only the shutdown itself can hand the tickets on in time.
    slow_handover = {"visibility_timeout_s": "300"}
    fleet.start("escalate,writeback")
    first = fleet.start("classify", **slow_handover)
    tickets = fleet.tickets(200)
    started = time.monotonic()
    fleet.enqueue(tickets)
    while len(fleet.receiver.calls) < 30:
        time.sleep(0.05)
    held = fleet.unacked("triage.classify")
    first.stop(signal.SIGTERM)
    stopped_at = time.monotonic()
    left_held = fleet.unacked("triage.classify")
    fleet.start("classify", **slow_handover)
    done = fleet.wait_delivered(tickets, timeout_s=120)
    fleet.wait_quiet()
    tally = fleet.tally(tickets)
    report(
        "3-sigterm",
        tickets=len(tickets),
        held_at_sigterm=held,
        held_after_exit=left_held,
        lost=len(tally.lost),
        duplicates=tally.duplicates,
        recovery_s=f"{done - stopped_at:.1f}",
        run_s=f"{done - started:.1f}",
    )
    assert first.proc.returncode == 0, first.output()[-3000:]
    assert held > 0 and left_held == 0, "the shutdown left tickets for the visibility timeout"
    assert not tally.lost and tally.duplicates == 0, tally


# The same gap (see test 2) when Redis died between a worker's BRPOP and its record: closed by
# the same script.
def test_redis_restarted_mid_run(fleet: Fleet) -> None:
    """4. Redis killed and restarted (AOF on) mid-run: the workers reconnect by themselves."""
    fleet.start("escalate,writeback")
    fleet.start("classify")
    tickets = fleet.tickets(200)
    started = time.monotonic()
    fleet.enqueue(tickets)
    while len(fleet.receiver.calls) < 50:
        time.sleep(0.05)
    fleet.redis.kill()
    time.sleep(1.0)
    fleet.redis.start()
    back_at = time.monotonic()
    resumed = fleet.first_delivery_after(back_at)
    done = fleet.wait_delivered(tickets, timeout_s=120)
    fleet.wait_quiet()
    tally = fleet.tally(tickets)
    report(
        "4-redis-restart",
        tickets=len(tickets),
        lost=len(tally.lost),
        duplicates=tally.duplicates,
        first_write_after_s=f"{resumed:.1f}",
        recovery_s=f"{done - back_at:.1f}",
        run_s=f"{done - started:.1f}",
    )
    assert not tally.lost and tally.duplicates == 0, tally
    # What the workers held goes on at once; a message popped but never seen comes back after
    # the visibility timeout (10 s, checked every 10 s). Before the classify worker restarted
    # its flush tick, its partial batch waited for 64 more tickets: about 70 s.
    assert done - back_at < RECOVERY_BOUND_S, f"recovery took {done - back_at:.0f} s"


RECOVERY_BOUND_S = 30


def test_redis_down_30_s_while_the_webhook_receives(fleet: Fleet) -> None:
    """5. Redis down for 30 s under webhook traffic: only 202 or 503; nothing accepted is lost."""
    fleet.start("classify,escalate,writeback")
    app = create_app(
        HttpSettings(
            api_tokens=["t"],
            webhook_sources=["generic"],
            webhook_secrets={"generic": [WEBHOOK_SECRET]},
        ),
        ProducerSettings(redis_url=fleet.redis.url, broker_timeout_s=1),
    )
    tickets = fleet.tickets(OUTAGE_TICKETS, prefix="w")
    statuses: Counter[int] = Counter()
    accepted: list[str] = []
    with TestClient(app) as client:
        sender = WebhookSender(client, tickets, statuses, accepted)
        sender.start()
        while len(accepted) < 40:
            time.sleep(0.05)
        fleet.redis.stop()
        down_at = time.monotonic()
        time.sleep(OUTAGE_S)
        during = statuses.copy()
        fleet.redis.start()
        back_at = time.monotonic()
        resumed = fleet.first_delivery_after(back_at)
        sender.join(timeout=120)
    done = fleet.wait_delivered(tickets, timeout_s=120)
    fleet.wait_quiet()
    tally = fleet.tally([t for t in tickets if t.id in set(accepted)])
    report(
        "5-redis-down-30s",
        tickets=len(tickets),
        outage_s=f"{back_at - down_at:.0f}",
        answers=dict(sorted(statuses.items())),
        lost=len(tally.lost),
        duplicates=tally.duplicates,
        first_write_after_s=f"{resumed:.1f}",
        all_written_after_s=f"{done - back_at:.1f}",  # the sender's own resending included
    )
    assert set(statuses) <= {200, 202, 503}, statuses
    assert statuses[200] <= statuses[503]  # a replay answers 200 only after a lost answer
    assert during[503] > 0, "no request met the outage"
    assert sorted(accepted) == sorted(t.id for t in tickets)
    assert not tally.lost and tally.duplicates == 0, tally


OUTAGE_S = 30
OUTAGE_TICKETS = 200
WEBHOOK_SECRET = "hook-secret"


class WebhookSender(threading.Thread):
    """A ticket system: sends each ticket as a signed webhook, and again later after a 503."""

    def __init__(
        self,
        client: TestClient,
        tickets: list[Ticket],
        statuses: Counter[int],
        accepted: list[str],
        pause_s: float = 0.05,
    ) -> None:
        super().__init__(daemon=True)
        self.client, self.statuses, self.accepted = client, statuses, accepted
        self.pending = deque(tickets)
        self.pause_s = pause_s

    def run(self) -> None:
        while self.pending:
            ticket = self.pending.popleft()
            body = ticket.model_dump_json().encode()
            stamp = int(time.time())
            sig = hmac.new(WEBHOOK_SECRET.encode(), f"{stamp}.".encode() + body, hashlib.sha256)
            response = self.client.post(
                "/v1/webhooks/generic",
                content=body,
                headers={
                    "Content-Type": "application/json",
                    "X-Triage-Signature": f"t={stamp},v1={sig.hexdigest()}",
                    "X-Triage-Delivery": f"delivery-{ticket.id}",
                },
            )
            self.statuses[response.status_code] += 1
            # 200: a delivery taken before its answer was lost, sent again: it is in.
            if response.status_code in (200, 202):
                self.accepted.append(ticket.id)
                time.sleep(self.pause_s)
            else:  # the sender keeps it and tries again later
                self.pending.append(ticket)
                time.sleep(0.2)


def test_callback_target_fails_half_the_calls_for_a_while(fleet: Fleet) -> None:
    """6. The callback target fails 50% of calls for a while: each result lands once after."""
    fleet.receiver.fail_rate = 0.5
    fleet.start("escalate,writeback")
    fleet.start("classify")
    tickets = fleet.tickets(200)
    started = time.monotonic()
    fleet.enqueue(tickets)
    time.sleep(FLAKY_S)
    fleet.receiver.fail_rate = 0.0
    healed_at = time.monotonic()
    done = fleet.wait_delivered(tickets, timeout_s=90)
    fleet.wait_quiet()
    tally = fleet.tally(tickets)
    report(
        "6-flaky-callback",
        tickets=len(tickets),
        flaky_s=FLAKY_S,
        refused_calls=fleet.receiver.refused,
        lost=len(tally.lost),
        duplicates=tally.duplicates,
        recovery_s=f"{done - healed_at:.1f}",
        run_s=f"{done - started:.1f}",
    )
    assert fleet.receiver.refused > 50, "the target hardly failed: the test proves nothing"
    assert not tally.lost and tally.duplicates == 0 and tally.dead == 0, tally


FLAKY_S = 8


def test_frontier_429_500_and_timeouts(fleet: Fleet) -> None:
    """7. The frontier answers 429 (Retry-After), 500 or times out: every ticket ends labelled
    or in needs-review, none stuck, and spend stays within the budget's documented bound."""
    rng = random.Random(7)

    def answer(_request: object) -> Reply:
        roll = rng.random()
        if roll < 0.25:
            return StatusReply(429, retry_after="1")
        if roll < 0.45:
            return StatusReply(500)
        if roll < 0.55:
            return DelayReply(2.0, "card_arrival")  # past the client's 1 s timeout
        return "card_arrival"

    with OpenAIServer() as server:
        server.answer = answer
        frontier = {
            "frontier_provider": "openai",
            "frontier_url": server.url,
            "frontier_api_key": "sk-test",
            "frontier_timeout_s": "1",
            "frontier_max_retries": "1",
            "frontier_backoff_s": "0.1",
            "max_retries": "2",
            "frontier_input_usd_per_mtok": str(PRICE_PER_MTOK),
            "frontier_output_usd_per_mtok": str(PRICE_PER_MTOK),
            "frontier_daily_budget_usd": str(BUDGET_USD),
        }
        unsure = {"classifier_threshold": "1.01", "retrieval_threshold": "1.01"}
        fleet.start("escalate,writeback", **frontier, **unsure)
        fleet.start("classify", **unsure)
        tickets = fleet.tickets(60)
        started = time.monotonic()
        fleet.enqueue(tickets)
        done = fleet.wait_delivered(tickets, timeout_s=120)
        calls = server.requests
    fleet.wait_quiet()
    tally = fleet.tally(tickets)
    results = [get_result(t.id) for t in tickets]
    outcomes = Counter(r.status if r else "none" for r in results)
    rdb = fleet.rdb
    spent = sum(float(rdb.get(k) or 0) for k in rdb.keys("triage:spend:*"))
    # check-then-record: in-flight calls (8 threads) may each pass the cap by one call's cost
    largest_call = max(len(json.dumps(c.json)) // 4 + 100 for c in calls) * PRICE_PER_MTOK / 1e6
    report(
        "7-frontier-faults",
        tickets=len(tickets),
        frontier_calls=len(calls),
        outcomes=dict(outcomes),
        spent_usd=f"{spent:.3f}",
        budget_usd=BUDGET_USD,
        lost=len(tally.lost),
        duplicates=tally.duplicates,
        run_s=f"{done - started:.1f}",
    )
    assert set(outcomes) <= {"labelled", "needs_review"}, outcomes
    assert outcomes["labelled"] > 0 and outcomes["needs_review"] > 0, outcomes
    assert any(r and r.reason and "budget" in r.reason for r in results)
    assert spent <= BUDGET_USD + 8 * largest_call, (spent, largest_call)
    assert not tally.lost and tally.duplicates == 0, tally


PRICE_PER_MTOK = 100.0
BUDGET_USD = 0.5


def test_a_task_longer_than_the_visibility_timeout_is_written_once(fleet: Fleet) -> None:
    """8. An escalation outlives the visibility timeout (a frontier answering in 14 s): Redis
    hands the message to a second run, and the ticket is still written back once."""
    with OpenAIServer() as server:
        slow = DelayReply(SLOW_S, "card_arrival")
        server.answer = lambda request: slow if len(server.requests) <= 3 else "card_arrival"
        frontier = {
            "frontier_provider": "openai",
            "frontier_url": server.url,
            "frontier_api_key": "sk-test",
            "frontier_timeout_s": str(SLOW_S + 5),
            "frontier_max_retries": "0",
        }
        unsure = {"classifier_threshold": "1.01", "retrieval_threshold": "1.01"}
        fleet.start("escalate,writeback", **frontier, **unsure)
        fleet.start("classify", **unsure)
        tickets = fleet.tickets(3)
        started = time.monotonic()
        fleet.enqueue(tickets)
        done = fleet.wait_delivered(tickets, timeout_s=60)
        fleet.wait_quiet()
        # The slow first runs answer at SLOW_S and try to write too: wait for that.
        time.sleep(max(0.0, started + SLOW_S + 3 - time.monotonic()))
        calls = len(server.requests)
    tally = fleet.tally(tickets)
    report(
        "8-longer-than-visibility",
        tickets=len(tickets),
        frontier_calls=calls,
        lost=len(tally.lost),
        duplicates=tally.duplicates,
        run_s=f"{done - started:.1f}",
    )
    assert calls > len(tickets), "no escalation was delivered twice: the test proves nothing"
    assert not tally.lost and tally.duplicates == 0, tally


SLOW_S = 14


def test_poison_messages_are_dead_lettered_and_the_worker_keeps_serving(
    fleet: Fleet, tmp_path: Path
) -> None:
    """9. Not JSON, the wrong schema, a ticket whose model fails, a write-back whose target always
    fails: each ends in the dead-letter list with its reason after bounded tries, and the worker
    keeps serving the others (edge-case tickets among them)."""
    # A second task whose model cannot load: each of its tickets fails in the model, every try.
    labels = str(fleet.tiny_task.labels_path)
    worker = fleet.start(
        labels=json.dumps({"category": labels, "broken": labels}),
        adapters=json.dumps(
            {"category": str(fleet.tiny_task.adapter_dir), "broken": str(tmp_path / "missing")}
        ),
        sink_max_retries="2",
    )
    rdb = fleet.rdb
    rdb.lpush(CLASSIFY_QUEUE, "this is not a kombu envelope")
    rdb.lpush(CLASSIFY_QUEUE, raw_message(CLASSIFY_TASK, {"ticket": {"id": "no-text"}}))
    rdb.lpush(CLASSIFY_QUEUE, raw_message(CLASSIFY_TASK, {"ticket": "not an object"}))
    rdb.lpush(ESCALATE_QUEUE, raw_message(ESCALATE_TASK, {"first": {"ticket": {}}}))
    crash = Ticket(id="crash", body="my card is lost", task="broken")
    with CallbackReceiver() as dead_end:
        dead_end.failing.set()
        doomed = Ticket(id="doomed", body="my card is lost", callback=dead_end.url)  # type: ignore[arg-type]
        enqueue_many([crash, doomed])
        good = [*fleet.tickets(20), *edge_tickets(fleet.receiver.url)]
        fleet.enqueue(good)
        done = fleet.wait_delivered(good, timeout_s=90)
        deadline = time.monotonic() + 30
        while rdb.llen(DEAD_LETTER_LIST) < 6 and time.monotonic() < deadline:
            time.sleep(0.1)
        tries = len(dead_end.calls) + dead_end.refused
    fleet.wait_quiet()
    dead = [json.loads(d) for d in rdb.lrange(DEAD_LETTER_LIST, 0, -1)]
    reasons = [d["reason"] for d in dead]
    tally = fleet.tally(good)
    report(
        "9-poison",
        poison=6,
        dead_lettered=len(dead),
        served=len(good),
        lost=len(tally.lost),
        duplicates=tally.duplicates,
        doomed_callback_tries=tries,
    )
    assert worker.proc.poll() is None, "the worker died"
    assert done != float("inf") and not tally.lost and tally.duplicates == 0, tally
    assert any("not a message envelope" in r for r in reasons), reasons
    assert sum("invalid ticket" in r for r in reasons) == 2, reasons
    assert any("invalid escalation payload" in r for r in reasons), reasons
    assert any(
        d["payload"].get("ticket", {}).get("id") == "crash"
        for d in dead
        if isinstance(d["payload"], dict)
    ), reasons
    assert any("gave up after 3 tries" in r for r in reasons), reasons
    assert tries == 3  # sink_max_retries=2: three tries, then the dead-letter list
    assert len(dead) == 6, reasons


def raw_message(task: str, kwargs: dict[str, object]) -> str:
    """A Celery message as a buggy producer could send it, bypassing our validation."""
    return wire.envelope(task, ROUTES[task], wire.Message(str(uuid.uuid4()), json.dumps(kwargs)))


def edge_tickets(callback: str) -> list[Ticket]:
    """Tickets at the edges of what is valid: all must come back labelled."""
    texts = {
        "max-body": "My card has not arrived yet. " * (MAX_BODY_CHARS // 29),
        "max-subject": None,
        "emoji": "💳❓ my card 🙃 still not here 📬📬📬 👀",
        "mixed-scripts": "Карта не пришла. カードが届きません。 البطاقة لم تصل. Card not arrived.",
        "zero-width": "my\u200bcard\u200dis\u2060lost\ufeff please block it",
        "rtl-override": "\u202eksed eht ta ti evael\u202c my pin is blocked",
        "one-char": "?",
    }
    out = []
    for name, body in texts.items():
        subject = "s" * MAX_SUBJECT_CHARS if name == "max-subject" else "help"
        out.append(
            Ticket(id=name, subject=subject, body=body or "card", callback=callback, revision="r1")  # type: ignore[arg-type]
        )
    return out


def test_a_burst_is_held_back_at_the_cap_and_all_of_it_written_once(fleet: Fleet) -> None:
    """Load: a burst ten times the queue cap through the webhook while one worker drains it.
    The queue never passes the cap (senders get 503 and resend), and every ticket is written
    back once."""
    fleet.start("classify,escalate,writeback")
    app = create_app(
        HttpSettings(
            api_tokens=["t"],
            webhook_sources=["generic"],
            webhook_secrets={"generic": [WEBHOOK_SECRET]},
        ),
        ProducerSettings(redis_url=fleet.redis.url, max_queue_depth=BURST_CAP),
    )
    tickets = fleet.tickets(10 * BURST_CAP, prefix="b")
    statuses: Counter[int] = Counter()
    accepted: list[str] = []
    deepest = 0
    started = time.monotonic()
    with TestClient(app) as client:
        senders = [
            WebhookSender(client, tickets[k::4], statuses, accepted, pause_s=0.0) for k in range(4)
        ]
        for sender in senders:
            sender.start()
        rdb = fleet.rdb
        while any(s.is_alive() for s in senders):
            deepest = max(deepest, rdb.llen(CLASSIFY_QUEUE))
            time.sleep(0.01)
    done = fleet.wait_delivered(tickets, timeout_s=120)
    fleet.wait_quiet()
    tally = fleet.tally(tickets)
    report(
        "load-burst",
        tickets=len(tickets),
        cap=BURST_CAP,
        deepest_queue=deepest,
        answers=dict(sorted(statuses.items())),
        lost=len(tally.lost),
        duplicates=tally.duplicates,
        run_s=f"{done - started:.1f}",
    )
    assert statuses[503] > 0, "the burst never met the cap"
    assert deepest <= BURST_CAP
    assert not tally.lost and tally.duplicates == 0, tally


BURST_CAP = 40
