"""What the model benches share: options, the adapter, the seeded index, tickets, a worker process.

Everything heavy is built once and cached under ``--work-dir`` (default ``.triage/bench``): a small
adapter when none is given or found (the benches measure serving, not training), and a local
Qdrant index seeded with the Banking77 training tickets. Each worker run gets its own copy of that
index (local mode: one process owns a storage directory).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.data import LabelledText, examples_dir, read_labelled

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
BANKING = examples_dir() / "banking77"
TASK = "category"
SOURCE = "bench"
#: Adapters tried in this order when `--adapter` is not given: the full Banking77 one that
#: `triage train` makes, then the demo's; else a small one is trained under the work dir.
KNOWN_ADAPTERS = (Path(".triage/b77/adapter"), Path(".triage/adapters/category"))
ADAPTER_META = "triage_adapter.json"
READY_LINE = "warm-up done"
#: How `direct` and `e2e` run the models, side by side in one bench run: fp32 (torch, as before
#: TRIAGE_CPU_INFERENCE) and the settings' CPU default.
VARIANTS = ("fp32", "default")


@dataclass
class Options:
    """Options of every bench (the command line fills them; defaults are the full run)."""

    tickets: int = 0  # Banking77 test tickets for direct/e2e/naive; 0: all 3,080
    adapter: Path | None = None
    redis_url: str = "redis://127.0.0.1:6379/15"  # FLUSHED before and after
    work_dir: Path = Path(".triage/bench")
    train_examples: int = 2000
    single_samples: int = 50
    repeat: int = 3  # runs of direct, e2e and naive; the median is reported
    memory_tickets: int = 50_000
    gpu_config: str = "auto"  # auto: Llama-3.1-8B shapes on CUDA, a tiny Llama on the CPU
    webhook_requests: int = 20_000
    backfill_lines: int = 1_000_000


def banking_tickets(limit: int, revision: str) -> tuple[list[Any], list[str]]:
    """Banking77 test tickets (spread over all intents when limited) and their true labels."""
    from producer.schemas import Ticket

    rows = read_labelled(BANKING / "test.csv")
    if limit:
        rows = rows[:: max(1, len(rows) // limit)][:limit]
    tickets = [
        Ticket(id=f"t{i}", source=SOURCE, body=r.text, revision=revision)
        for i, r in enumerate(rows)
    ]
    return tickets, [r.label for r in rows]


def adapter_dir(opts: Options) -> Path:
    """The adapter to serve: `--adapter`, a known trained one, or a small one trained once."""
    if opts.adapter is not None:
        if not (opts.adapter / ADAPTER_META).is_file():
            sys.exit(f"--adapter {opts.adapter} is not a trained adapter (no {ADAPTER_META})")
        return opts.adapter.resolve()
    for known in KNOWN_ADAPTERS:
        if (known / ADAPTER_META).is_file():
            return known.resolve()
    out = opts.work_dir / "adapter"
    if not (out / ADAPTER_META).is_file():
        _train_small_adapter(out, opts.train_examples)
    return out.resolve()


def _train_small_adapter(out: Path, examples: int) -> None:
    from models.training import TrainConfig, train

    log.warning("no adapter given or found: training one on %d Banking77 tickets", examples)
    config = TrainConfig(
        labels=BANKING / "labels.json",
        train_examples=read_labelled(BANKING / "train.csv"),
        max_train_examples=examples,
        epochs=2,
        learning_rate=2e-3,
    )
    report = train(config, out, progress=False)
    log.warning("trained in %.0f s, accuracy %.3f", report.train_time_s, report.eval_accuracy)


def seeded_index(opts: Options) -> Path:
    """A local Qdrant directory holding the Banking77 training tickets as human labels."""
    seed = opts.work_dir / "qdrant-seed"
    done = seed / ".seeded"
    if done.is_file():
        return seed
    from models.embedder import Embedder
    from models.index import IndexedTicket, TicketIndex
    from models.settings import PACKAGED_MINILM

    shutil.rmtree(seed, ignore_errors=True)
    rows: list[LabelledText] = read_labelled(BANKING / "train.csv")
    log.warning("seeding a local index with %d training tickets (once)", len(rows))
    embedder = Embedder(PACKAGED_MINILM)
    index = TicketIndex(path=seed)
    try:
        for start in range(0, len(rows), 512):
            chunk = rows[start : start + 512]
            tickets = [
                IndexedTicket(f"train-{start + i}", "seed", r.label, r.text, "human")
                for i, r in enumerate(chunk)
            ]
            index.upsert(TASK, tickets, embedder.embed([r.text for r in chunk]))
    finally:
        index.close()
    done.write_text("ok\n")
    return seed


def data_dir(opts: Options, name: str) -> Path:
    """A fresh data dir for one run, with its own copy of the seeded index."""
    seed = seeded_index(opts)
    out = opts.work_dir / "runs" / name
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(seed, out / "qdrant")
    return out.resolve()


def variant_env(variant: str) -> dict[str, str]:
    """The TRIAGE_CPU_INFERENCE of a variant (the default one named: the environment may set
    another)."""
    from models.settings import ModelSettings

    default = ModelSettings.model_fields["cpu_inference"].default
    return {"TRIAGE_CPU_INFERENCE": "fp32" if variant == "fp32" else str(default)}


def serving_env(opts: Options, name: str, variant: str = "default") -> dict[str, str]:
    """TRIAGE_ settings of a run: the bench Redis, its data dir, the adapter, no frontier, the
    variant's CPU inference."""
    return {
        **variant_env(variant),
        "TRIAGE_REDIS_URL": opts.redis_url,
        "TRIAGE_DATA_DIR": str(data_dir(opts, name)),
        "TRIAGE_LABELS": json.dumps({TASK: str(BANKING / "labels.json")}),
        "TRIAGE_ADAPTERS": json.dumps({TASK: str(adapter_dir(opts))}),
        "TRIAGE_FRONTIER_PROVIDER": "none",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }


@contextlib.contextmanager
def worker_process(
    opts: Options,
    name: str,
    module: str = "cli.main",
    args: Sequence[str] = ("worker",),
    env: dict[str, str] | None = None,
    variant: str = "default",
) -> Iterator[subprocess.Popen[bytes]]:
    """A worker (`python -m MODULE ARGS`) with the run's settings, stopped warmly at the end."""
    env = {**os.environ, **serving_env(opts, name, variant), **(env or {})}
    log_path = opts.work_dir / "runs" / f"{name}.log"
    cmd = [sys.executable, "-m", module, *args, "--loglevel", "INFO"]
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT)
        try:
            _wait_ready(proc, log_path)
            yield proc
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_ready(proc: subprocess.Popen[bytes], log_path: Path, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"the worker exited with {proc.returncode}; see {log_path}")
        if READY_LINE in log_path.read_text(errors="replace"):
            return
        time.sleep(0.1)
    sys.exit(f"the worker did not start within {timeout_s:.0f} s; see {log_path}")


@contextlib.contextmanager
def flushed_redis(url: str) -> Iterator[Any]:
    """The bench Redis database, flushed before and after (never point it at real data)."""
    import redis

    client = redis.Redis.from_url(url)
    client.flushdb()
    try:
        yield client
    finally:
        client.flushdb()
        client.close()


def median_index(values: Sequence[float]) -> int:
    """The index of the median value (the lower middle one of an even count)."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    return order[(len(order) - 1) // 2]


def percentiles_ms(seconds: Sequence[float]) -> dict[str, float]:
    """p50 and p95 of durations given in seconds, in milliseconds."""
    if not seconds:
        return {"p50_ms": float("nan"), "p95_ms": float("nan")}
    p50, p95 = np.percentile(np.asarray(seconds) * 1000.0, [50, 95])
    return {"p50_ms": round(float(p50), 2), "p95_ms": round(float(p95), 2)}
