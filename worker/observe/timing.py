"""How long the running task has taken, from Celery's task_prerun/task_postrun signals
(celery-batches sends them around a whole classify batch too), so tasks carry no timing code."""

from __future__ import annotations

import threading
import time
from typing import Any

#: Celery task name -> the `stage` label of `triage_stage_seconds`.
STAGES = {
    "triage.classify": "classify_batch",
    "triage.escalate": "escalate",
    "triage.writeback": "writeback",
}
_local = threading.local()  # the running task's start, per thread (threads pool)
_started: dict[str, float] = {}


def task_elapsed_ms() -> float:
    """How long the task running in this thread has run (0 outside a task)."""
    started = getattr(_local, "started", None)
    return 0.0 if started is None else (time.perf_counter() - started) * 1000.0


def task_started(task_id: str = "", **_: Any) -> None:
    now = time.perf_counter()
    _local.started = now
    _started[task_id] = now


def task_done(task_id: str = "", task: Any = None, args: Any = None, **_: Any) -> None:
    _local.started = None
    started = _started.pop(task_id, None)
    name = str(getattr(task, "name", ""))
    if started is None or not name.startswith("triage."):
        return
    stage = STAGES.get(name) or name.removeprefix("triage.")  # a task added later still counts
    from worker.observe.metrics import get_metrics

    m = get_metrics()
    m.stage_seconds.labels(stage).observe(time.perf_counter() - started)
    if stage == "classify_batch" and args and isinstance(args[0], list):
        m.batch_size.observe(len(args[0]))  # celery-batches calls it with (requests,)
