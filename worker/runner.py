"""Starting a Celery worker with the pool and prefetch its queues need."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

from producer.names import CLASSIFY_QUEUE, ESCALATE_QUEUE, WRITEBACK_QUEUE

log = logging.getLogger(__name__)
_warmup_tasks: list[str] = []
#: Longest a prefork child may take to load its models before it is deemed stuck.
WARMUP_TIMEOUT_S = 600.0


def run_worker(
    queues: Sequence[str], *, pool: str | None, concurrency: int | None, loglevel: str, warmup: bool
) -> None:
    from celery.signals import worker_process_init, worker_ready

    from worker.app import app
    from worker.settings import get_settings
    from worker.tasks import classify as classify_task
    from worker.tasks import serve_here

    classify = CLASSIFY_QUEUE in queues
    # Threads for classify too: a batch runs beside the event loop, so the next one's messages
    # are taken, and the last one's write-back runs, while torch (which releases the GIL) is in
    # its pass; the passes themselves take turns (`worker.batches.first_pass`).
    pool = pool or "threads"
    inline = WRITEBACK_QUEUE in queues and pool != "prefork" and get_settings().writeback_inline
    serve_here(escalate=ESCALATE_QUEUE in queues, writeback=inline)
    if concurrency is None:
        concurrency = {"solo": 1, "threads": 8}.get(pool, os.cpu_count() or 1)
    if classify:
        from worker.process import passive_threads

        passive_threads()  # before any process here loads torch
        # Batches in flight: threads run as many passes at once as `passes_side_by_side` says,
        # prefork children one each; plus one ready to start, and one writing its results back
        # when that runs in the batch (`serve_here`). A batch can only fill from prefetched
        # messages: the worker holds those in flight and one more filling.
        from worker.process import passes_side_by_side

        passes = concurrency if pool == "prefork" else min(concurrency, passes_side_by_side())
        in_flight = passes + (2 if inline and pool != "prefork" else 1)
        classify_task.max_in_flight = in_flight
        held = (in_flight + 1) * get_settings().classify_batch
        app.conf.worker_prefetch_multiplier = max(1, -(-held // max(1, concurrency)))
    if classify and warmup:
        from models.settings import get_settings as model_settings

        _warmup_tasks.extend(model_settings().labels)
        # Models load in the process that uses them: the children of prefork, else this one.
        signal = worker_process_init if pool == "prefork" else worker_ready
        if pool == "prefork":
            # Children fork with the model libraries already imported (copy-on-write): a child
            # replacing a dead one serves after loading weights, without the 7-11 s of importing
            # torch and transformers. Nothing touches a device here (no CUDA in a forking parent).
            import models.classifier
            import models.embedder
            import models.index  # noqa: F401

        signal.connect(_warm_up, weak=False)
        # A child reports for work after its warm-up; Celery kills one silent for 4 s, which
        # would kill every child (and its replacement) still loading a model.
        app.conf.worker_proc_alive_timeout = WARMUP_TIMEOUT_S
    from worker.observe import setup as observe

    observe.install(queues, pool)  # timings, /metrics, heartbeat, log format
    argv = [
        "worker",
        f"--queues={','.join(queues)}",
        f"--pool={pool}",
        f"--concurrency={concurrency}",
        f"--loglevel={loglevel}",
        "--without-gossip",
        "--without-mingle",
    ]
    app.worker_main(argv=argv)


def _warm_up(**_: Any) -> None:
    from worker import resources

    for task in _warmup_tasks:
        try:
            resources.task_models(task)
            resources.embedder()
            resources.index()
        except Exception:  # a missing adapter must not stop the worker from serving others
            log.exception("warm-up of task %s failed; it will load on first use", task)
    log.info("warm-up done")
