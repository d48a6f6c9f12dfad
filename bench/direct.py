"""`direct`: the cascade's first pass called in-process on Banking77 test tickets: the ceiling.

The same call the classify task makes (`worker.batches.first_pass.run_first_pass`), on
batches of the worker's batch size, with the same models, index and settings as the queued
benches; no queue, no write-back. Once per variant (fp32, then the CPU default), each with its
quality on the test tickets: `accuracy` (the first pass's label, decided or suggested),
`auto_precision` (of the tickets it decided) and `coverage` (the share it decided).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

from bench.harness import (
    TASK,
    VARIANTS,
    Options,
    banking_tickets,
    median_index,
    percentiles_ms,
    serving_env,
)


def run(opts: Options) -> list[dict[str, Any]]:
    """One JSON line per variant, fp32 first."""
    return [run_variant(opts, variant) for variant in VARIANTS]


def run_variant(opts: Options, variant: str) -> dict[str, Any]:
    env = serving_env(opts, f"direct-{variant}", variant)
    with _settings(env):
        from worker import resources
        from worker.batches.first_pass import run_first_pass
        from worker.process import passive_threads
        from worker.settings import get_settings

        passive_threads()  # the threads a classify worker runs with

        batch = get_settings().classify_batch
        tickets, truth = banking_tickets(opts.tickets, "direct")
        run_first_pass(TASK, tickets[:batch])  # loads the models; not timed
        runs: list[tuple[list[Any], list[float], float, float]] = []
        for _ in range(opts.repeat):
            per_batch: list[float] = []
            firsts: list[Any] = []
            started, cpu_started = time.perf_counter(), time.process_time()
            for start in range(0, len(tickets), batch):
                t0 = time.perf_counter()
                firsts += run_first_pass(TASK, tickets[start : start + batch])
                per_batch.append(time.perf_counter() - t0)
            elapsed = time.perf_counter() - started
            runs.append((firsts, per_batch, elapsed, time.process_time() - cpu_started))
        resources.close_all()
    rates = [len(tickets) / elapsed for _, _, elapsed, _ in runs]
    n = len(tickets)
    firsts, per_batch, elapsed, cpu_s = runs[median_index(rates)]  # cpu_s: all its threads'
    decided = [(f, label) for f, label in zip(firsts, truth, strict=True) if f.decided_by]
    by = Counter(f.decided_by or "escalate" for f in firsts)
    auto_precision = sum(f.label == t for f, t in decided) / max(1, len(decided))
    return {
        "bench": "direct",
        "variant": variant,
        "inference": env["TRIAGE_CPU_INFERENCE"],
        "tickets": len(tickets),
        "tickets_per_s": round(len(tickets) / elapsed, 1),
        # As the queued benches' worker_cpu_ms_per_ticket: a ratio that load does not skew.
        "worker_cpu_ms_per_ticket": round(cpu_s * 1000.0 / len(tickets), 2),
        **percentiles_ms(per_batch),
        "latency_is": f"per batch of up to {batch}",
        "accuracy": round(sum(f.label == t for f, t in zip(firsts, truth, strict=True)) / n, 4),
        "auto_precision": round(auto_precision, 4),
        "coverage": round(len(decided) / n, 4),
        "decided_by": dict(by),
        "classifier_ms_per_ticket": _stage_ms(firsts, "classifier"),
        "retrieval_ms_per_ticket": _stage_ms(firsts, "retrieval"),
        "runs_tickets_per_s": [round(x, 1) for x in rates],
    }


def _stage_ms(firsts: list[Any], stage: str) -> float:
    found = [float(s.latency_ms) for f in firsts for s in f.trace if s.stage == stage]
    return round(sum(found) / max(1, len(found)), 2)


@contextlib.contextmanager
def _settings(env: dict[str, str]) -> Iterator[None]:
    """Run with these environment settings in this process, then restore the old ones."""
    old = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    _clear_caches()
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        _clear_caches()


def _clear_caches() -> None:
    from models.settings import get_settings as model_settings
    from producer.settings import get_settings as producer_settings
    from worker import resources
    from worker.settings import get_settings as worker_settings

    for cached in (model_settings, producer_settings, worker_settings):
        cached.cache_clear()
    for loaded in (resources.task_models, resources.adapter_set, resources.embedder):
        loaded.cache_clear()
    resources.policy.cache_clear()
