"""`e2e`, `naive` and `single`: tickets through Redis and a real worker process.

- `e2e`: Banking77 test tickets through `producer` (`send_tickets`, what `enqueue_many` runs) ->
  Redis -> `triage worker` (classify, escalate, writeback in one process, as `triage demo`
  runs it) -> results in Redis; once per variant (fp32, then the CPU default), a worker each.
  Throughput is tickets over the time until the last result is stored; latency is each
  result's enqueued_at -> decided_at (under a full backlog, so mostly queueing).
- `naive`: the same tickets and worker, but one `bench.classify_one` task per ticket, one at a
  time (a solo pool: the naive design's best; `bench/naive.py` says why).
- `single`: one confident ticket at a time on an idle worker; the time from enqueue until its
  result is stored and its event published (p95 target: 25 ms).
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import psutil  # type: ignore[import-untyped]

from bench import naive
from bench.harness import (
    SOURCE,
    TASK,
    VARIANTS,
    Options,
    banking_tickets,
    flushed_redis,
    median_index,
    percentiles_ms,
    worker_process,
)
from producer.client import redis_client, send_tickets
from producer.names import EVENTS_STREAM
from producer.results import get_results
from producer.schemas import Ticket, TriageResult
from producer.settings import ProducerSettings

Send = Callable[[Sequence[Ticket], ProducerSettings], Any]
CHUNK = 500
#: Stream entries read per call while waiting for results.
STREAM_PAGE = 1000


def run_e2e(opts: Options) -> list[dict[str, Any]]:
    """One JSON line per variant, fp32 first."""
    out = []
    for variant in VARIANTS:
        with (
            flushed_redis(opts.redis_url),
            worker_process(opts, f"e2e-{variant}", variant=variant) as proc,
        ):
            figures = _throughput(opts, _send, proc.pid)
        out.append({"bench": "e2e", "variant": variant, **figures})
    return out


def run_naive(opts: Options) -> dict[str, Any]:
    with flushed_redis(opts.redis_url), worker_process(opts, "naive", "bench.naive", ()) as proc:
        return {"bench": "naive", **_throughput(opts, naive.send, proc.pid)}


def run_single(opts: Options) -> dict[str, Any]:
    settings = ProducerSettings(redis_url=opts.redis_url)
    with flushed_redis(opts.redis_url) as r, worker_process(opts, "single"):
        warm, _ = banking_tickets(128, "warm")
        results = _run(warm, "warm", settings, _send)
        confident = [t for t in warm if results[t.id].decided_by in ("classifier", "retrieval")]
        if not confident:
            return {"bench": "single", "error": "the adapter was confident of no ticket"}
        round_trips: list[float] = []
        decided: list[float] = []
        by: Counter[str] = Counter()
        singles: list[TriageResult] = []
        for i in range(opts.single_samples):
            revision = f"single-{i}"
            ticket = confident[i % len(confident)].model_copy(update={"revision": revision})
            last = r.xrevrange(EVENTS_STREAM, count=1)
            after = last[0][0] if last else b"0-0"
            started = time.perf_counter()
            send_tickets([ticket], settings=settings)
            after = _wait_event(r, after, ticket.id, revision)
            round_trips.append(time.perf_counter() - started)
            result = get_results([ticket.id], SOURCE, TASK, settings=settings)[ticket.id]
            decided.append((result.latency_ms or 0.0) / 1000.0)
            by[result.decided_by] += 1
            singles.append(result)
            time.sleep(0.1)  # light load: one ticket at a time, the worker idle in between
    decided_ms = percentiles_ms(decided)
    return {
        "bench": "single",
        "samples": len(round_trips),
        **percentiles_ms(round_trips),
        "latency_is": "enqueue call -> result stored and event published",
        "decided_p50_ms": decided_ms["p50_ms"],
        "decided_p95_ms": decided_ms["p95_ms"],
        "decided_by": dict(by),
        **_stages(singles),
    }


def _throughput(opts: Options, send: Send, worker_pid: int) -> dict[str, Any]:
    """The median of `opts.repeat` runs over the tickets (each a new revision of them all)."""
    settings = ProducerSettings(redis_url=opts.redis_url)
    warm, _ = banking_tickets(64, "warm")
    _run(warm, "warm", settings, send)  # first batches pay for lazy imports and allocations
    runs = [_timed_run(opts, send, settings, worker_pid, f"run-{i}") for i in range(opts.repeat)]
    rates = [len(results) / elapsed for results, elapsed, _ in runs]
    median = runs[median_index(rates)]
    return {**_figures(opts, *median), "runs_tickets_per_s": [round(x, 1) for x in rates]}


def _timed_run(
    opts: Options, send: Send, settings: ProducerSettings, worker_pid: int, revision: str
) -> tuple[dict[str, TriageResult], float, float]:
    """One run's results, its wall time and the worker's CPU seconds."""
    tickets, _ = banking_tickets(opts.tickets, revision)
    worker = psutil.Process(worker_pid)
    cpu_before = _cpu_s(worker)
    started = time.perf_counter()
    results = _run(tickets, revision, settings, send)
    elapsed = time.perf_counter() - started
    return results, elapsed, _cpu_s(worker) - cpu_before


def _figures(
    opts: Options, results: dict[str, TriageResult], elapsed: float, cpu_s: float
) -> dict[str, Any]:
    tickets, truth = banking_tickets(opts.tickets, "ids")  # the same ids and labels as run
    ordered = [results[t.id] for t in tickets]
    latencies = [(r.latency_ms or 0.0) / 1000.0 for r in ordered]
    labelled = [(r, t) for r, t in zip(ordered, truth, strict=True) if r.status == "labelled"]
    return {
        "tickets": len(tickets),
        "tickets_per_s": round(len(tickets) / elapsed, 1),
        # CPU the worker spent per ticket: what the design costs, whatever else shares the cores.
        "worker_cpu_ms_per_ticket": round(cpu_s * 1000.0 / len(tickets), 2),
        **percentiles_ms(latencies),
        "latency_is": "enqueued_at -> decided_at, all tickets enqueued at once",
        "labelled_share": round(len(labelled) / len(ordered), 3),
        "labelled_accuracy": round(
            sum(r.label == t for r, t in labelled) / max(1, len(labelled)), 3
        ),
        "status": dict(Counter(r.status for r in ordered)),
        **_stages(ordered),
    }


def _cpu_s(proc: psutil.Process) -> float:
    """User and system CPU seconds of a process and its children (a prefork pool's)."""
    total = 0.0
    for p in (proc, *proc.children(recursive=True)):
        with contextlib.suppress(psutil.Error):
            times = p.cpu_times()
            total += times.user + times.system
    return total


def _stages(results: Sequence[TriageResult]) -> dict[str, Any]:
    """Mean batch size and per-ticket model time of the first pass, from the results' traces."""
    clf = [s for r in results for s in r.trace if s.stage == "classifier"]
    ret = [s for r in results for s in r.trace if s.stage == "retrieval"]
    if not clf:
        return {}
    sizes = Counter(int(s.detail.get("batch", 1)) for s in clf)  # tickets per batch size
    return {
        "batches": sum(round(n / size) for size, n in sizes.items()),
        "mean_batch": round(sum(s.detail.get("batch", 1) for s in clf) / len(clf), 1),
        "classifier_ms_per_ticket": round(sum(s.latency_ms for s in clf) / len(clf), 2),
        "retrieval_ms_per_ticket": round(sum(s.latency_ms for s in ret) / max(1, len(ret)), 2),
    }


def _run(
    tickets: Sequence[Ticket], revision: str, settings: ProducerSettings, send: Send
) -> dict[str, TriageResult]:
    """Send `tickets`, follow the event stream until each has a result of `revision`, read them.

    Blocking reads of the stream cost the worker's Redis next to nothing; polling every pending
    result (an MGET of thousands of keys every 50 ms) took CPU from the worker it measures.
    """
    r = redis_client(settings.resolved_redis_url, settings.broker_timeout_s)
    last = r.xrevrange(EVENTS_STREAM, count=1)
    after: Any = last[0][0] if last else "0-0"
    for start in range(0, len(tickets), CHUNK):
        send(tickets[start : start + CHUNK], settings)
    pending = {t.id for t in tickets}
    deadline = time.monotonic() + 60 + len(tickets)  # > 1 ticket/s, or something is broken
    while pending:
        for _, entries in r.xread({EVENTS_STREAM: after}, count=STREAM_PAGE, block=500) or []:
            for entry_id, fields in entries:
                after = entry_id
                if fields.get("revision") == revision:
                    pending.discard(fields.get("ticket_id", ""))
        if pending and time.monotonic() > deadline:
            raise SystemExit(f"{len(pending)} tickets got no result; see the worker log")
    results = get_results([t.id for t in tickets], SOURCE, TASK, settings=settings)
    stale = [t.id for t in tickets if t.id not in results or results[t.id].revision != revision]
    if stale:
        raise SystemExit(f"{len(stale)} tickets have an event but no result, e.g. {stale[0]}")
    return results


def _send(tickets: Sequence[Ticket], settings: ProducerSettings) -> None:
    send_tickets(tickets, settings=settings)


def _wait_event(r: Any, after: bytes, ticket_id: str, revision: str) -> bytes:
    """Block on the event stream until this ticket revision's event; return the last id read."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for _, entries in r.xread({EVENTS_STREAM: after}, block=1000) or []:
            for entry_id, fields in entries:
                after = entry_id
                if (
                    fields.get(b"ticket_id") == ticket_id.encode()
                    and fields.get(b"revision") == revision.encode()
                ):
                    return after
    raise SystemExit(f"no result for ticket {ticket_id} ({revision}) within 30 s")
