"""A tiny real task for worker tests: 5 Banking77 intents, a LoRA adapter trained for a few
seconds on the packaged MiniLM, a seeded local Qdrant, and real worker processes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from models.data import LabelledText, examples_dir, read_labelled
from tests.factories import banking77_subset
from tests.polling import wait_for

ROOT = Path(__file__).resolve().parents[2]
INTENTS = [
    "card_arrival",
    "exchange_rate",
    "lost_or_stolen_card",
    "pin_blocked",
    "cash_withdrawal_charge",
]


@dataclass(frozen=True)
class TinyTask:
    labels_path: Path
    adapter_dir: Path
    qdrant_seed: Path
    test: list[LabelledText]


@pytest.fixture(scope="session")
def tiny_task(tmp_path_factory: pytest.TempPathFactory) -> TinyTask:
    from models.embedder import Embedder
    from models.index import IndexedTicket, TicketIndex
    from models.training import TrainConfig, train

    root = tmp_path_factory.mktemp("tiny-task")
    train_rows = banking77_subset(INTENTS, 30, root / "labels.json")
    train(
        TrainConfig(
            labels=root / "labels.json",
            train_examples=train_rows,
            epochs=3,
            batch_size=16,
            eval_fraction=0.2,
            seed=0,
        ),
        root / "adapter",
        progress=False,
    )

    index = TicketIndex(path=root / "qdrant")
    vectors = Embedder("all-MiniLM-L6-v2").embed([r.text for r in train_rows])
    index.upsert(
        "category",
        [
            IndexedTicket(f"train-{i}", "seed", r.label, r.text, "human")
            for i, r in enumerate(train_rows)
        ],
        vectors,
    )
    index.close()
    test = [
        r for r in read_labelled(examples_dir() / "banking77" / "test.csv") if r.label in INTENTS
    ]
    return TinyTask(root / "labels.json", root / "adapter", root / "qdrant", test)


class WorkerProcess:
    def __init__(self, proc: subprocess.Popen[bytes], log: Path, data_dir: Path) -> None:
        self.proc, self.log, self.data_dir = proc, log, data_dir

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 30) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


StartWorker = Callable[..., WorkerProcess]


#: Callbacks in these tests go to a local receiver (`tests.receivers`): allowed by the list,
#: as a deployment allows its own internal receivers, not by loosening the check.
LOCAL_CALLBACKS = '["127.0.0.1"]'


@pytest.fixture
def start_worker(
    tiny_task: TinyTask, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[StartWorker]:
    """Start `triage worker` in a real process with the tiny task; env overrides as kwargs."""
    from producer import settings as producer_settings

    started: list[WorkerProcess] = []
    monkeypatch.setenv("TRIAGE_CALLBACK_ALLOW", LOCAL_CALLBACKS)  # the workers and intake here
    producer_settings.get_settings.cache_clear()

    def start(queues: str = "classify,escalate,writeback", **env: str) -> WorkerProcess:
        data_dir = tmp_path / f"data{len(started)}"
        if not data_dir.exists():
            shutil.copytree(tiny_task.qdrant_seed, data_dir / "qdrant")
        full_env = {
            **os.environ,
            "TRIAGE_REDIS_URL": redis_url,
            "TRIAGE_DATA_DIR": str(data_dir),
            "TRIAGE_LABELS": json.dumps({"category": str(tiny_task.labels_path)}),
            "TRIAGE_ADAPTERS": json.dumps({"category": str(tiny_task.adapter_dir)}),
            "TRIAGE_CLASSIFY_FLUSH_MS": "20",
            "TRIAGE_RETRY_BACKOFF_S": "0.2",
            **{f"TRIAGE_{k.upper()}": v for k, v in env.items()},
        }
        log = tmp_path / f"worker{len(started)}.log"
        with log.open("wb") as fh:
            proc = subprocess.Popen(
                [sys.executable, "-m", "cli.main", "worker", "-Q", queues, "-l", "INFO"],
                cwd=ROOT,
                env=full_env,
                stdout=fh,
                stderr=subprocess.STDOUT,
            )
        worker = WorkerProcess(proc, log, data_dir)
        started.append(worker)
        ready = "warm-up done" if "classify" in queues else " ready."

        def is_ready() -> bool:
            if ready in worker.output():
                return True
            assert proc.poll() is None, f"worker exited:\n{worker.output()[-4000:]}"
            return False

        wait_for(
            is_ready,
            timeout_s=120,
            what=lambda: f"the worker to start:\n{worker.output()[-4000:]}",
            interval_s=0.1,
        )
        return worker

    yield start
    for worker in started:
        worker.stop()
        if os.environ.get("TRIAGE_TEST_SHOW_WORKER_LOG"):
            print(worker.output())


@pytest.fixture
def worker_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """In-process worker code with settings read afresh and a local Qdrant of this test's own
    (the data dir); this process's resources are closed after. Set variables before use."""
    from models import settings as model_settings
    from producer import settings as producer_settings
    from producer.ledger import settings as ledger_settings
    from worker import resources
    from worker import settings as worker_settings

    caches = (worker_settings, model_settings, producer_settings, ledger_settings)
    monkeypatch.setenv("TRIAGE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TRIAGE_CALLBACK_ALLOW", LOCAL_CALLBACKS)
    resources.close_all()  # nothing a test before this one opened in this process
    for module in caches:
        module.get_settings.cache_clear()
    yield tmp_path
    resources.close_all()
    for module in caches:
        module.get_settings.cache_clear()
