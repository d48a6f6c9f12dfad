"""Wiring a worker for observation at start: task timings, the metrics exporter, the heartbeat,
and the log format. `install()` is called by `worker.runner` before the worker starts."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from typing import Any

from worker.observe import timing
from worker.observe.logs import use_json_logs

log = logging.getLogger(__name__)

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
    task_prerun.connect(timing.task_started, weak=False)
    task_postrun.connect(timing.task_done, weak=False)
    if ws.log_format == "json":
        after_setup_logger.connect(use_json_logs, weak=False)
        after_setup_task_logger.connect(use_json_logs, weak=False)

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
    from worker.observe.metrics import exposition_registry

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
    from worker.observe.heartbeat import Heartbeat
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
