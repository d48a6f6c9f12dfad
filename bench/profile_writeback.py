"""What one classify batch's write-back costs the worker: CPU and wall ms per batch and per
ticket, and the Redis commands it sends, over many 64-ticket batches shaped like the e2e bench's
(Banking77 texts, source ``api``, no callback; about a fifth ``needs_review``; evidence, trace,
versions and a 384-dim vector each), through the real `write_back` against a real Redis, a local
Qdrant index and a SQLite ledger in a temporary data dir.

    python -m bench.profile_writeback --redis-url redis://127.0.0.1:6379/14 [--batches 40]
        [--profile out.pstats]

It flushes the Redis database it is given: give it one of its own.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import statistics
import tempfile
import time
from collections import Counter
from typing import Any

import numpy as np
import redis

BATCH = 64
DIM = 384
LABELS = ["card_arrival", "exchange_rate", "lost_or_stolen_card", "pin_blocked", "top_up_failed"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--warm", type=int, default=3, help="batches run before timing")
    parser.add_argument("--profile", help="write a cProfile of the timed batches here")
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="profile-writeback-") as data_dir:
        os.environ.update(
            TRIAGE_REDIS_URL=opts.redis_url,
            TRIAGE_DATA_DIR=data_dir,
            HF_HUB_OFFLINE="1",
            TRANSFORMERS_OFFLINE="1",
        )
        print(json.dumps(run(opts)))


def run(opts: argparse.Namespace) -> dict[str, Any]:
    from worker import resources
    from worker.writeback.path import write_back

    r = redis.Redis.from_url(opts.redis_url)
    r.flushdb()
    batches = [_batch(f"b{i}") for i in range(opts.warm + opts.batches)]
    for decisions in batches[: opts.warm]:
        _check(write_back(decisions))
    stats_before = _command_stats(r)
    sent = _count_sent()
    profiler = cProfile.Profile() if opts.profile else None
    cpu_ms: list[float] = []
    wall_ms: list[float] = []
    for decisions in batches[opts.warm :]:
        cpu, wall = time.process_time(), time.perf_counter()
        if profiler is not None:
            profiler.enable()
        _check(write_back(decisions))
        if profiler is not None:
            profiler.disable()
        cpu_ms.append((time.process_time() - cpu) * 1000.0)
        wall_ms.append((time.perf_counter() - wall) * 1000.0)
    if profiler is not None:
        profiler.dump_stats(opts.profile)
    tickets = BATCH * opts.batches
    server = _command_stats(r) - stats_before
    resources.close_all()
    return {
        "batches": opts.batches,
        "batch": BATCH,
        "cpu_ms_per_batch": round(statistics.median(cpu_ms), 2),
        "cpu_ms_per_ticket": round(statistics.median(cpu_ms) / BATCH, 3),
        "wall_ms_per_batch": round(statistics.median(wall_ms), 2),
        "client_commands_per_ticket": round(sent["commands"] / tickets, 2),
        "round_trips_per_batch": round(sent["round_trips"] / opts.batches, 2),
        "server_commands_per_ticket": round(sum(server.values()) / tickets, 2),
        "server_commands": {k: round(v / tickets, 2) for k, v in server.most_common()},
    }


def _batch(revision: str) -> list[tuple[Any, Any, list[float]]]:
    from models.data import examples_dir, read_labelled
    from producer.schemas import Neighbour, StageTrace, Ticket, TriageResult

    rows = read_labelled(examples_dir() / "banking77" / "test.csv")[:BATCH]
    rng = np.random.default_rng(len(revision))
    out = []
    for i, row in enumerate(rows):
        ticket = Ticket(id=f"t{i}", body=row.text, revision=revision)
        unsure = i % 5 == 0
        label = LABELS[i % len(LABELS)]
        result = TriageResult(
            ticket_id=ticket.id,
            source=ticket.source,
            task=ticket.task,
            revision=ticket.effective_revision,
            label=None if unsure else label,
            confidence=0.6 if unsure else 0.97,
            decided_by="classifier",
            status="needs_review" if unsure else "labelled",
            reason="low-confidence" if unsure else None,
            evidence=[
                Neighbour(
                    ticket_id=f"n{k}", source="seed", label=label, score=0.8, snippet="x" * 80
                )
                for k in range(5)
            ],
            trace=[
                StageTrace(
                    stage=s, label=label, confidence=0.9, latency_ms=4.2, detail={"batch": 64}
                )
                for s in ("classifier", "retrieval", "cascade")
            ],
            versions={"adapter": "a1", "embedder": "all-MiniLM-L6-v2"},
        )
        vector = rng.standard_normal(DIM).astype(np.float32)
        out.append((ticket, result, [float(x) for x in vector / np.linalg.norm(vector)]))
    return out


def _check(outcomes: list[Any]) -> None:
    errors = [o for o in outcomes if isinstance(o, Exception)]
    if errors:
        raise RuntimeError(f"{len(errors)} tickets failed: {errors[0]!r}")


def _command_stats(r: redis.Redis) -> Counter[str]:
    """Calls per command the server ran, those inside scripts included."""
    info = r.info("commandstats")
    return Counter({k.removeprefix("cmdstat_"): v["calls"] for k, v in info.items()})


def _count_sent() -> Counter[str]:
    """Commands this process sends, and in how many round trips (pipelines count once)."""
    counts: Counter[str] = Counter()
    pipeline_execute = redis.client.Pipeline.execute
    execute_command = redis.Redis.execute_command

    def counted_execute(self: Any, *args: Any, **kwargs: Any) -> Any:
        counts["round_trips"] += 1
        counts["commands"] += len(self.command_stack)
        return pipeline_execute(self, *args, **kwargs)

    def counted_command(self: Any, *args: Any, **kwargs: Any) -> Any:
        counts["round_trips"] += 1
        counts["commands"] += 1
        return execute_command(self, *args, **kwargs)

    redis.client.Pipeline.execute = counted_execute  # type: ignore[method-assign]
    redis.Redis.execute_command = counted_command  # type: ignore[method-assign]
    return counts


if __name__ == "__main__":
    main()
