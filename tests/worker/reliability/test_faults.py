"""Fault tests: kill and restart real processes; count lost and duplicated write-backs.

Each test enqueues tickets that call a local receiver back, injects one fault, and checks that
every ticket was written back exactly once (0 lost, 0 duplicates). The figures (recovery time,
run time) are printed as ``FAULT ...`` lines. The fixtures and helpers are in conftest.py.
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

from producer import Ticket, enqueue_many, get_result, wire
from producer.names import (
    CLASSIFY_QUEUE,
    CLASSIFY_TASK,
    DEAD_LETTER_LIST,
    ESCALATE_QUEUE,
    ESCALATE_TASK,
    ROUTES,
)
from producer.schemas import MAX_BODY_CHARS, MAX_SUBJECT_CHARS
from tests.polling import wait_for
from tests.receivers import CallbackReceiver
from tests.wire_servers import DelayReply, Reply, StatusReply
from tests.worker.conftest import WorkerProcess
from tests.worker.reliability.conftest import (
    Fleet,
    Frontier,
    OpenWebhook,
    Run,
    WebhookSender,
    children,
    kill_tree,
    report,
)

pytestmark = pytest.mark.slow


def test_kill_9_a_worker_child_mid_batch(fleet: Fleet, writeback_worker: WorkerProcess) -> None:
    """1. kill -9 the classify child mid-batch, 10 times during a run: its batch is sent again
    at once (not after the visibility timeout) and written back once."""
    clf = fleet.start("classify", worker_pool="prefork", worker_concurrency="1")
    run = fleet.send(fleet.tickets(TOP_UP_TO))
    back_after: list[float] = []
    landed = kills = 0
    # Kills that land between two batches (a fast pass leaves the child idle for a moment while
    # the next batch is handed over) are tried again: KILLS of them must land mid-batch.
    while landed < KILLS and kills < 2 * KILLS:
        # Keep a backlog, so the child is mid-batch (a fast machine drains it sooner).
        if (waiting := fleet.rdb.llen(CLASSIFY_QUEUE)) < TOP_UP_TO:
            run.send(fleet.tickets(len(run.tickets) + TOP_UP_TO - waiting)[len(run.tickets) :])
        warm = clf.output().count("warm-up done")
        resent_before = clf.output().count("the worker process died while classifying")
        (child,) = children(clf)
        time.sleep(random.uniform(0.15, 0.5))  # a random moment while it works the backlog
        os.kill(child, signal.SIGKILL)
        kills += 1
        killed_at = time.monotonic()
        wait_for(
            lambda: clf.output().count("warm-up done") > warm,  # noqa: B023 called at once
            timeout_s=60,
            what=lambda: f"a new child with its models loaded:\n{clf.output()[-3000:]}",
        )
        back_after.append(time.monotonic() - killed_at)
        landed += clf.output().count("the worker process died while classifying") > resent_before
    tally = run.finish(timeout_s=120)
    resent = clf.output().count("the worker process died while classifying")
    report(
        "1-kill-child",
        tally,
        kills=kills,
        batches_resent=resent,
        recovery_s=f"{max(back_after):.1f}",
    )
    assert landed == KILLS, f"only {landed} of {kills} kills landed mid-batch"
    assert resent == landed  # each batch killed mid-way was sent again once
    assert tally.exactly_once, tally
    assert tally.dead == 0


#: The issue asks for a 1,000-ticket run. On 2 shared cores the classify worker does ~20 tickets/s
#: and each replacement child spends ~7 s loading its models, so 1,000 tickets took 150 s. Instead
#: the queue is kept topped up to a few hundred before each kill, enough for all ten to land
#: mid-batch on a faster machine too.
TOP_UP_TO = 300
KILLS = 10


# With kombu's own transport a worker killed between its BRPOP and its unacked record lost that
# message (1 of 200, in ~1 run of 5); `worker.transport` pops and records in one script.
def test_kill_9_the_whole_worker(fleet: Fleet, classify_worker: WorkerProcess) -> None:
    """2. kill -9 the whole worker with tickets in flight; a new worker finishes them."""
    run = fleet.send(fleet.tickets(200))
    fleet.wait_calls(50)
    kill_tree(classify_worker)
    killed_at = time.monotonic()
    in_flight = fleet.rdb.hlen("unacked")
    fleet.start("classify")
    tally = run.finish(timeout_s=90)
    report("2-kill-worker", tally, unacked_at_kill=in_flight, recovery_s=tally.since(killed_at))
    assert in_flight > 0, "nothing was in flight when the worker died"
    assert tally.exactly_once, tally


def test_sigterm_requeues_what_is_unfinished(fleet: Fleet, writeback_worker: WorkerProcess) -> None:
    """3. SIGTERM: the warm shutdown finishes its batch and gives the prefetched tickets back at
    once, so a new worker takes them without waiting out the visibility timeout."""
    # A long visibility timeout: only the shutdown itself can hand the tickets on in time.
    slow_handover = {"visibility_timeout_s": "300"}
    first = fleet.start("classify", **slow_handover)
    run = fleet.send(fleet.tickets(200))
    fleet.wait_calls(30)
    held = fleet.unacked("triage.classify")
    first.stop(signal.SIGTERM)
    stopped_at = time.monotonic()
    left_held = fleet.unacked("triage.classify")
    fleet.start("classify", **slow_handover)
    tally = run.finish(timeout_s=120)
    report(
        "3-sigterm",
        tally,
        held_at_sigterm=held,
        held_after_exit=left_held,
        recovery_s=tally.since(stopped_at),
    )
    assert first.proc.returncode == 0, first.output()[-3000:]
    assert held > 0 and left_held == 0, "the shutdown left tickets for the visibility timeout"
    assert tally.exactly_once, tally


# The same gap (see test 2) when Redis died between a worker's BRPOP and its record: closed by
# the same script.
def test_redis_restarted_mid_run(fleet: Fleet, classify_worker: WorkerProcess) -> None:
    """4. Redis killed and restarted (AOF on) mid-run: the workers reconnect by themselves."""
    run = fleet.send(fleet.tickets(200))
    fleet.wait_calls(50)
    fleet.redis.kill()
    time.sleep(1.0)  # the fault: Redis stays down a moment, so the workers see it gone
    fleet.redis.start()
    back_at = time.monotonic()
    resumed = fleet.first_delivery_after(back_at)
    tally = run.finish(timeout_s=120)
    report(
        "4-redis-restart",
        tally,
        first_write_after_s=f"{resumed:.1f}",
        recovery_s=tally.since(back_at),
    )
    assert tally.exactly_once, tally
    # What the workers held goes on at once; a message popped but never seen comes back after
    # the visibility timeout (10 s, checked every 10 s). Before the classify worker restarted
    # its flush tick, its partial batch waited for 64 more tickets: about 70 s.
    recovery_s = tally.done - back_at
    assert recovery_s < RECOVERY_BOUND_S, f"recovery took {recovery_s:.0f} s"


RECOVERY_BOUND_S = 30


def test_redis_down_30_s_while_the_webhook_receives(fleet: Fleet, webhook: OpenWebhook) -> None:
    """5. Redis down for 30 s under webhook traffic: only 202 or 503; nothing accepted is lost."""
    fleet.start("classify,escalate,writeback")
    client = webhook(broker_timeout_s=1)
    tickets = fleet.tickets(OUTAGE_TICKETS, prefix="w", source="generic")
    statuses: Counter[int] = Counter()
    accepted: list[str] = []
    run = Run(fleet, tickets)  # sent by the ticket system below
    sender = WebhookSender(client, tickets, statuses, accepted)
    sender.start()
    wait_for(lambda: len(accepted) >= 40, timeout_s=60, what="40 webhooks accepted")
    fleet.redis.stop()
    down_at = time.monotonic()
    time.sleep(OUTAGE_S)  # the fault: the outage lasts this long, whatever the traffic does
    during = statuses.copy()
    fleet.redis.start()
    back_at = time.monotonic()
    resumed = fleet.first_delivery_after(back_at)
    wait_for(
        lambda: not sender.is_alive(),
        timeout_s=120,
        what=lambda: f"every webhook accepted ({len(accepted)} of {len(tickets)})",
    )
    tally = run.finish(timeout_s=120)
    report(
        "5-redis-down-30s",
        tally,
        outage_s=f"{back_at - down_at:.0f}",
        answers=dict(sorted(statuses.items())),
        first_write_after_s=f"{resumed:.1f}",
        all_written_after_s=tally.since(back_at),  # the sender's own resending included
    )
    assert set(statuses) <= {200, 202, 503}, statuses
    assert statuses[200] <= statuses[503]  # a replay answers 200 only after a lost answer
    assert during[503] > 0, "no request met the outage"
    assert sorted(accepted) == sorted(t.id for t in tickets)
    assert tally.exactly_once, tally


OUTAGE_S = 30
OUTAGE_TICKETS = 200


def test_callback_target_fails_half_the_calls_for_a_while(
    fleet: Fleet, classify_worker: WorkerProcess
) -> None:
    """6. The callback target fails 50% of calls for a while: each result lands once after."""
    fleet.receiver.fail_rate = 0.5
    run = fleet.send(fleet.tickets(200))
    time.sleep(FLAKY_S)  # the fault: the target is flaky this long, whatever the run does
    fleet.receiver.fail_rate = 0.0
    healed_at = time.monotonic()
    tally = run.finish(timeout_s=90)
    report(
        "6-flaky-callback",
        tally,
        flaky_s=FLAKY_S,
        refused_calls=fleet.receiver.refused,
        recovery_s=tally.since(healed_at),
    )
    assert fleet.receiver.refused > 50, "the target hardly failed: the test proves nothing"
    assert tally.exactly_once and tally.dead == 0, tally


FLAKY_S = 8


def test_frontier_429_500_and_timeouts(fleet: Fleet, frontier: Frontier) -> None:
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

    frontier.server.answer = answer
    frontier.start_workers(
        frontier_timeout_s="1",
        frontier_max_retries="1",
        frontier_backoff_s="0.1",
        max_retries="2",
        frontier_input_usd_per_mtok=str(PRICE_PER_MTOK),
        frontier_output_usd_per_mtok=str(PRICE_PER_MTOK),
        frontier_daily_budget_usd=str(BUDGET_USD),
    )
    run = fleet.send(fleet.tickets(60))
    tally = run.finish(timeout_s=120)
    calls = frontier.server.requests
    results = [get_result(t.id) for t in run.tickets]
    outcomes = Counter(r.status if r else "none" for r in results)
    rdb = fleet.rdb
    spent = sum(float(rdb.get(k) or 0) for k in rdb.keys("triage:spend:*"))
    # check-then-record: in-flight calls (8 threads) may each pass the cap by one call's cost
    largest_call = max(len(json.dumps(c.json)) // 4 + 100 for c in calls) * PRICE_PER_MTOK / 1e6
    report(
        "7-frontier-faults",
        tally,
        frontier_calls=len(calls),
        outcomes=dict(outcomes),
        spent_usd=f"{spent:.3f}",
        budget_usd=BUDGET_USD,
    )
    assert set(outcomes) <= {"labelled", "needs_review"}, outcomes
    assert outcomes["labelled"] > 0 and outcomes["needs_review"] > 0, outcomes
    assert any(r and r.reason and "budget" in r.reason for r in results)
    assert spent <= BUDGET_USD + 8 * largest_call, (spent, largest_call)
    assert tally.exactly_once, tally


PRICE_PER_MTOK = 100.0
BUDGET_USD = 0.5


def test_a_task_longer_than_the_visibility_timeout_is_written_once(
    fleet: Fleet, frontier: Frontier
) -> None:
    """8. An escalation outlives the visibility timeout (a frontier answering in 14 s): Redis
    hands the message to a second run, and the ticket is still written back once."""
    slow = DelayReply(SLOW_S, "card_arrival")
    server = frontier.server
    server.answer = lambda request: slow if len(server.requests) <= 3 else "card_arrival"
    frontier.start_workers(frontier_timeout_s=str(SLOW_S + 5), frontier_max_retries="0")
    run = fleet.send(fleet.tickets(3))
    # The slow first runs answer at SLOW_S and try to write too, with no trace in Redis to wait
    # on (their messages went to the second runs): count only after that.
    tally = run.finish(timeout_s=60, quiet_until=run.started + SLOW_S + 3)
    calls = len(server.requests)
    report("8-longer-than-visibility", tally, frontier_calls=calls)
    assert calls > len(run.tickets), "no escalation was delivered twice: the test proves nothing"
    assert tally.exactly_once, tally


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
        run = fleet.send([*fleet.tickets(20), *edge_tickets(fleet.receiver.url)])
        tally = run.finish(timeout_s=90)
        wait_for(
            lambda: rdb.llen(DEAD_LETTER_LIST) >= POISON,
            timeout_s=30,
            what=lambda: f"{POISON} dead letters: {rdb.lrange(DEAD_LETTER_LIST, 0, -1)}",
        )
        tries = len(dead_end.calls) + dead_end.refused
    dead = [json.loads(d) for d in rdb.lrange(DEAD_LETTER_LIST, 0, -1)]
    reasons = [d["reason"] for d in dead]
    report("9-poison", tally, poison=POISON, dead_lettered=len(dead), doomed_callback_tries=tries)
    assert worker.proc.poll() is None, "the worker died"
    assert tally.exactly_once, tally
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
    assert len(dead) == POISON, reasons


POISON = 6


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


def test_a_burst_is_held_back_at_the_cap_and_all_of_it_written_once(
    fleet: Fleet, webhook: OpenWebhook
) -> None:
    """Load: a burst ten times the queue cap through the webhook while one worker drains it.
    The queue never passes the cap (senders get 503 and resend), and every ticket is written
    back once. The worker starts once the queue is at the cap: a worker that kept up with the
    senders (a busy machine slows them) would leave the cap untested."""
    client = webhook(max_queue_depth=BURST_CAP)
    tickets = fleet.tickets(10 * BURST_CAP, prefix="b", source="generic")
    statuses: Counter[int] = Counter()
    accepted: list[str] = []
    run = Run(fleet, tickets)  # sent by the ticket systems below
    senders = [
        WebhookSender(client, tickets[k::4], statuses, accepted, pause_s=0.0) for k in range(4)
    ]
    for sender in senders:
        sender.start()
    rdb = fleet.rdb
    wait_for(lambda: statuses[503] > 0, timeout_s=60, what="the burst to meet the queue cap")
    depths = [rdb.llen(CLASSIFY_QUEUE)]
    fleet.start("classify,escalate,writeback")

    def sent_all() -> bool:  # and, while they send, watch the queue's depth
        depths.append(rdb.llen(CLASSIFY_QUEUE))
        return not any(s.is_alive() for s in senders)

    wait_for(
        sent_all,
        timeout_s=120,
        what=lambda: f"every webhook accepted ({len(accepted)} of {len(tickets)})",
        interval_s=0.01,
    )
    tally = run.finish(timeout_s=120)
    report(
        "load-burst",
        tally,
        cap=BURST_CAP,
        deepest_queue=max(depths),
        answers=dict(sorted(statuses.items())),
    )
    assert statuses[503] > 0, "the burst never met the cap"
    assert max(depths) <= BURST_CAP
    assert tally.exactly_once, tally


BURST_CAP = 40
