"""Wiring a worker for observation at start: task timings, the metrics exporter, the heartbeat,
and the log format. `install()` is called by `worker.runner` before the worker starts.

Task run times come from Celery's task_prerun/task_postrun signals (celery-batches sends them
around a whole classify batch too), so the tasks themselves carry no timing code.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Sequence
from typing import Any

log = logging.getLogger(__name__)

#: Celery task name -> the `stage` label of `triage_stage_seconds`.
STAGES = {
    "triage.classify": "classify_batch",
    "triage.escalate": "escalate",
    "triage.writeback": "writeback",
}
_local = threading.local()  # the running task's start, per thread (threads pool)
_started: dict[str, float] = {}
_state: dict[str, Any] = {}


def install(queues: Sequence[str], pool: str) -> None:
    """Connect the signal handlers; call once, in the worker's main process, before it starts."""
    from celery.signals import (
        after_setup_logger,
        after_setup_task_logger,
        task_postrun,
        task_prerun,
        worker_ready,
        worker_shutdown,
    )

    from worker.settings import get_settings

    ws = get_settings()
    if pool == "prefork" and ws.metrics_port:
        _multiprocess_dir()
    task_prerun.connect(_task_started, weak=False)
    task_postrun.connect(_task_done, weak=False)
    if ws.log_format == "json":
        after_setup_logger.connect(_json_logs, weak=False)
        after_setup_task_logger.connect(_json_logs, weak=False)

    def ready(sender: Any = None, **_: Any) -> None:
        node = str(getattr(sender, "hostname", None) or f"triage@{os.getpid()}")
        start_observing(node, queues, pool)

    worker_ready.connect(ready, weak=False)
    worker_shutdown.connect(lambda **_: stop_observing(), weak=False)
    if ws.metrics_port:
        serve_metrics(ws.metrics_host, ws.metrics_port)


def serve_metrics(host: str, port: int) -> None:
    """Serve /metrics from a daemon thread. Bound before the worker starts, so a port in use
    stops the start with its name rather than leaving a worker nobody can scrape."""
    from prometheus_client import start_http_server

    from worker import resources
    from worker.metrics import exposition_registry

    registry = exposition_registry(resources.redis_conn)
    try:
        server, _ = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise SystemExit(
            f"error: cannot serve metrics on {host}:{port} (TRIAGE_METRICS_PORT): {exc}"
        ) from exc
    _state["server"] = server
    log.info("metrics on http://%s:%d/metrics", host, port)


def start_observing(node: str, queues: Sequence[str], pool: str) -> None:
    """Start the heartbeat, once the worker is ready to take tickets."""
    from worker import resources
    from worker.heartbeat import Heartbeat
    from worker.settings import get_settings

    ws = get_settings()
    beat = Heartbeat(resources.redis_conn(), node, queues, pool, ws.heartbeat_s)
    beat.start()
    _state["heartbeat"] = beat


def stop_observing() -> None:
    if (beat := _state.pop("heartbeat", None)) is not None:
        beat.stop()
    if (server := _state.pop("server", None)) is not None:
        server.shutdown()
    if (directory := _state.pop("multiproc_dir", None)) is not None:
        shutil.rmtree(directory, ignore_errors=True)


def task_elapsed_ms() -> float:
    """How long the task running in this thread has run (0 outside a task)."""
    started = getattr(_local, "started", None)
    return 0.0 if started is None else (time.perf_counter() - started) * 1000.0


def _task_started(task_id: str = "", **_: Any) -> None:
    now = time.perf_counter()
    _local.started = now
    _started[task_id] = now


def _task_done(task_id: str = "", task: Any = None, args: Any = None, **_: Any) -> None:
    _local.started = None
    started = _started.pop(task_id, None)
    name = str(getattr(task, "name", ""))
    if started is None or not name.startswith("triage."):
        return
    stage = STAGES.get(name) or name.removeprefix("triage.")  # a task added later still counts
    from worker.metrics import get_metrics

    m = get_metrics()
    m.stage_seconds.labels(stage).observe(time.perf_counter() - started)
    if stage == "classify_batch" and args and isinstance(args[0], list):
        m.batch_size.observe(len(args[0]))  # celery-batches calls it with (requests,)


def _json_logs(logger: logging.Logger | None = None, **_: Any) -> None:
    from worker.events_log import JsonFormatter

    for handler in (logger or logging.getLogger()).handlers:
        handler.setFormatter(JsonFormatter())


def _multiprocess_dir() -> None:
    # Prefork children count in their own memory; a multiprocess directory lets the parent's
    # exporter sum them (a fresh one: no counts of an earlier run).
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return
    directory = tempfile.mkdtemp(prefix="triage-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _state["multiproc_dir"] = directory
    # prometheus_client picks its value store when first imported, and something may have
    # imported it already (the CLI's other commands): pick again. Our metrics are made lazily,
    # in the children, so every one of them gets the file-backed store.
    from prometheus_client import values

    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
