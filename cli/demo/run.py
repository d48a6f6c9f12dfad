"""`triage demo`: the whole job on one machine, with nothing else installed.

Embedded Redis (unless TRIAGE_REDIS_URL is set), Qdrant local mode, the packaged MiniLM; trains
an adapter on a Banking77 sample when none exists, seeds the index with the training tickets,
runs a worker process, enqueues test tickets through `producer.enqueue_many`, waits for every
result, reports what the cascade decided, and ends with the review desk: how many tickets wait
there (the ledger's count) and how to open it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress

from cli.demo.desk import desk_counts, print_desk
from cli.demo.report import DemoReport, build_report, print_report
from models.data import examples_dir, read_labelled
from producer.schemas import TriageResult

log = logging.getLogger(__name__)
console = Console(stderr=True)
TASK = "category"
SOURCE = "banking77"
ADAPTER_META = "triage_adapter.json"
#: A few minutes on 2 cores; `triage train` makes the full-quality adapter.
DEMO_TRAINING: dict[str, Any] = {"epochs": 2, "learning_rate": 2e-3}


def run_demo(*, limit: int, json_path: Path | None, train_examples: int, retrain: bool) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from models.settings import get_settings
    from worker.resources import quiet_loading

    quiet_loading()
    data_dir = get_settings().data_dir
    embedded = not _configured_redis()
    with _redis(data_dir) as redis_url:
        os.environ["TRIAGE_REDIS_URL"] = redis_url
        _clear_settings_caches()
        _ensure_adapter(train_examples, retrain)
        _ensure_index()
        with _worker_process() as worker:
            report, results, revision, kept = _run_tickets(limit, worker)
            desk = desk_counts(TASK, results, revision)
    out = Console()
    print_report(report, out)
    if kept:
        out.print(
            f"{kept} tickets kept the label a person gave them before (the model's new "
            "decision is in the ledger, applied nowhere)"
        )
    print_desk(desk, out, embedded_redis=embedded)
    if json_path is not None:
        figures = {**report.figures(), "kept_human_label": kept, "desk": desk.figures()}
        json_path.write_text(json.dumps(figures, indent=2) + "\n")
        console.print(f"figures written to {json_path}")
    return 0 if report.tickets == report.labelled + report.needs_review else 1


def _configured_redis() -> str | None:
    from producer.settings import get_settings

    return get_settings().redis_url


@contextlib.contextmanager
def _redis(data_dir: Path) -> Iterator[str]:
    configured = _configured_redis()
    if configured:
        console.print(f"using Redis at {configured}")
        yield configured
        return
    from cli.demo.embedded import EmbeddedRedis

    with EmbeddedRedis(data_dir / "redis") as server:
        console.print(f"started an embedded Redis on {server.url}")
        yield server.url


def _ensure_adapter(train_examples: int, retrain: bool) -> None:
    from models.settings import get_settings
    from models.training import TrainConfig, train

    s = get_settings()
    out = s.adapter_dir(TASK)
    if (out / ADAPTER_META).is_file() and not retrain:
        console.print(f"adapter found at {out}")
        return
    console.print(f"training an adapter on {train_examples} Banking77 tickets -> {out}")
    config = TrainConfig(
        labels=s.labels_path(TASK),
        train_examples=read_labelled(examples_dir() / "banking77" / "train.csv"),
        max_train_examples=train_examples,
        base_model=s.base_model,
        **DEMO_TRAINING,
    )
    report = train(config, out, progress=True)
    console.print(
        f"trained in {report.train_time_s:.0f} s, held-out accuracy {report.eval_accuracy:.3f}"
    )


def _ensure_index() -> None:
    """Seed the index with the labelled training tickets (human labels), once; as `triage seed`
    does."""
    from models.assembly import load_embedder, open_index
    from models.seeding import seed_index
    from models.settings import get_settings

    s = get_settings()
    index = open_index(s)
    try:
        if index.count(TASK) > 0:
            console.print(f"index has {index.count(TASK)} labelled tickets")
            return
        rows = read_labelled(examples_dir() / "banking77" / "train.csv")
        embedder = load_embedder(s)  # the worker's, so seeded and served vectors agree
        report = seed_index(index, embedder, TASK, rows, source=f"{SOURCE}-train")
        console.print(f"seeded the index with {report.tickets} labelled tickets")
    finally:
        index.close()  # local mode: the worker process must own the storage


@contextlib.contextmanager
def _worker_process() -> Iterator[subprocess.Popen[bytes]]:
    log_path = Path(os.environ.get("TRIAGE_DATA_DIR", ".triage")) / "demo-worker.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "worker", "--loglevel", "INFO"],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=os.environ.copy(),
        )
        try:
            _wait_ready(proc, log_path)
            yield proc
        finally:
            proc.send_signal(signal.SIGTERM)  # warm shutdown: unfinished work goes back
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_ready(proc: subprocess.Popen[bytes], log_path: Path, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    with console.status("starting the worker (loading models)"):
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"the worker exited with {proc.returncode}; see {log_path}")
            if "warm-up done" in log_path.read_text(errors="replace"):
                return
            time.sleep(0.2)
    raise SystemExit(f"the worker did not start within {timeout_s:.0f} s; see {log_path}")


def _run_tickets(
    limit: int, worker: subprocess.Popen[bytes]
) -> tuple[DemoReport, list[TriageResult], str, int]:
    """Enqueue the test tickets and wait for each: the report, this run's results, their
    revision, and how many tickets kept a person's label (not in the report)."""
    from producer import Ticket, enqueue_many
    from producer.results import get_results

    rows = read_labelled(examples_dir() / "banking77" / "test.csv")
    if limit:
        rows = rows[:: max(1, len(rows) // limit)][:limit]  # spread over all 77 intents
    revision = f"demo-{int(time.time())}"
    tickets = [
        Ticket(id=f"test-{i}", source=SOURCE, body=r.text, revision=revision)
        for i, r in enumerate(rows)
    ]
    started = time.perf_counter()
    for start in range(0, len(tickets), 500):
        enqueue_many(tickets[start : start + 500])
    console.print(f"enqueued {len(tickets)} tickets (revision {revision})")

    pending = {t.id for t in tickets}
    results = {}
    with Progress(console=console, transient=True) as progress:
        bar = progress.add_task("waiting for results", total=len(tickets))
        while pending:
            if worker.poll() is not None:
                raise SystemExit(f"the worker died with exit code {worker.returncode}")
            found = get_results(sorted(pending), SOURCE, TASK)
            for ticket_id, res in found.items():
                # A ticket a person labelled (on the desk, after an earlier run) keeps that
                # label: this run's decision is recorded and applied nowhere.
                if res.revision == revision or res.decided_by == "human":
                    results[ticket_id] = res
                    pending.discard(ticket_id)
            progress.update(bar, completed=len(results))
            time.sleep(0.25)
    elapsed = time.perf_counter() - started
    truth = {t.id: r.label for t, r in zip(tickets, rows, strict=True)}
    decided = [results[t.id] for t in tickets if results[t.id].revision == revision]
    kept = len(tickets) - len(decided)
    return build_report(decided, truth, elapsed), decided, revision, kept


def _clear_settings_caches() -> None:
    from models.settings import get_settings as m
    from producer.settings import get_settings as p
    from worker.settings import get_settings as w

    for cached in (m, p, w):
        cached.cache_clear()
