"""`memory`: peak RSS of a classify worker with the packaged model, and its growth over time.

The worker (`triage worker`, all queues in one process, as the demo runs it) takes
`--memory-tickets` tickets (default 50,000): the Banking77 test tickets again and again, each pass
a new revision, so every ticket is classified and written back but the index and the result store
stop growing after the first pass (the same ticket ids). The queue is kept a few batches deep.
Growth is the RSS over the last tenth of the tickets minus the RSS over a tenth taken after that
first pass (allocator pools and caches filled, the index complete); flat means a few MB at most.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import numpy as np
import psutil  # type: ignore[import-untyped]

from bench.harness import Options, banking_tickets, flushed_redis, worker_process
from producer.client import send_tickets
from producer.names import CLASSIFY_QUEUE, EVENTS_STREAM
from producer.settings import ProducerSettings

CHUNK = 256
#: A run with no ticket finished for this long is broken (a dead-lettered ticket has no event).
STALL_S = 120.0


def run(opts: Options) -> dict[str, Any]:
    total = opts.memory_tickets
    settings = ProducerSettings(redis_url=opts.redis_url)
    base, _ = banking_tickets(0, "mem")
    samples: list[tuple[int, int]] = []  # (tickets done, rss bytes)
    keep_events = {"TRIAGE_EVENTS_MAXLEN": str(max(100_000, 2 * total))}  # xlen counts them
    with (
        flushed_redis(opts.redis_url) as r,
        worker_process(opts, "memory", env=keep_events) as proc,
    ):
        worker = psutil.Process(proc.pid)
        rss_ready = _rss(worker)
        sent = last_done = 0
        started = last_progress = time.perf_counter()
        while True:
            done = int(r.xlen(EVENTS_STREAM))
            if done >= total:
                break
            if done > last_done:
                last_done, last_progress = done, time.perf_counter()
            elif time.perf_counter() - last_progress > STALL_S:
                raise SystemExit(f"no ticket finished for {STALL_S:.0f} s ({done} of {total})")
            if sent < total and int(r.llen(CLASSIFY_QUEUE)) < 2 * CHUNK:
                n = min(CHUNK, total - sent)
                chunk = [_nth(base, sent + i) for i in range(n)]
                send_tickets(chunk, settings=settings)
                sent += n
            if proc.poll() is not None:
                raise SystemExit(f"the memory worker died with exit code {proc.returncode}")
            samples.append((done, _rss(worker)))
            time.sleep(0.2)
        elapsed = time.perf_counter() - started
    rss = np.array([s for _, s in samples], dtype=float) / 2**20
    done_at = np.array([d for d, _ in samples])
    # Growth is counted from once every ticket went through once (the index then holds them all
    # and stops growing; that growth is data, not a leak), or from half-way on shorter runs.
    warm = min(max(0.1 * total, len(base)), 0.5 * total)
    growth = _median_between(rss, done_at, 0.9 * total, total) - _median_between(
        rss, done_at, warm, warm + 0.1 * total
    )
    return {
        "bench": "memory",
        "tickets": total,
        "peak_rss_mb": round(float(rss.max()), 1),
        "ready_rss_mb": round(rss_ready / 2**20, 1),
        "growth_mb": round(growth, 1),
        "growth_from_ticket": int(warm),
        "rss_mb_by_tenth": [
            round(_median_between(rss, done_at, total * k / 10, total * (k + 1) / 10), 1)
            for k in range(10)
        ],
        "tickets_per_s": round(total / elapsed, 1),
    }


def _median_between(rss: np.ndarray, done_at: np.ndarray, low: float, high: float) -> float:
    """Median RSS while the tickets done were in [low, high]; the nearest sample if none was."""
    inside = rss[(done_at >= low) & (done_at <= high)]
    if len(inside):
        return float(np.median(inside))
    return float(rss[int(np.argmin(np.abs(done_at - low)))])


def _nth(base: list[Any], n: int) -> Any:
    """The n-th ticket of the stream: the test tickets cycled, each pass a new revision."""
    ticket = base[n % len(base)]
    return ticket.model_copy(update={"revision": f"mem-{n // len(base)}"})


def _rss(proc: psutil.Process) -> int:
    """RSS of the worker and its children (a prefork pool), bytes."""
    total = 0
    with contextlib.suppress(psutil.Error):
        total += proc.memory_info().rss
        for child in proc.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                total += child.memory_info().rss
    return total
