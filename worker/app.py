"""The Celery app: broker, queues, routes and delivery guarantees, all declared here.

Delivery is at least once, and every setting below serves that; each says why. The write-back
is idempotent (`worker.writeback.path`), so a message delivered twice is written once.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.signals import (
    worker_init,
    worker_process_init,
    worker_process_shutdown,
    worker_shutdown,
)
from kombu import Exchange, Queue

from producer.names import QUEUES, ROUTES
from producer.settings import get_settings as producer_settings
from worker import transport
from worker.settings import WorkerSettings
from worker.settings import get_settings as worker_settings

#: Longest pause between two tries to publish while Redis is unreachable.
PUBLISH_RETRY_MAX_INTERVAL_S = 2.0


def make_app() -> Celery:
    transport.install()
    ws, ps = worker_settings(), producer_settings()
    app = Celery("triage", broker=ps.broker_url, include=["worker.tasks"])
    app.conf.update(
        broker_transport_options=broker_options(ws),
        # Celery reads the visibility timeout in three places; with one of them unset, kombu's
        # one-hour default can win for some code path (Celery's Redis caveats). We have no
        # result backend, but a reader that looks there must see the same value.
        result_backend_transport_options={"visibility_timeout": ws.visibility_timeout_s},
        visibility_timeout=ws.visibility_timeout_s,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,  # keep reconnecting when Redis restarts
        # A worker publishes each ticket's next step (escalate, writeback, a retry). When Redis
        # blips, wait for it rather than fail the task: a failed publish would drop the ticket.
        task_publish_retry=True,
        task_publish_retry_policy={
            "max_retries": int(ws.publish_retry_s / PUBLISH_RETRY_MAX_INTERVAL_S) + 3,
            "interval_start": 0,
            "interval_step": 0.5,
            "interval_max": PUBLISH_RETRY_MAX_INTERVAL_S,
        },
        # JSON only: a pickled message could run code in the worker.
        accept_content=["json"],
        task_serializer="json",
        # At-least-once: ack after the work, not on receipt, so a worker that dies mid-task
        # leaves the message to be delivered again...
        task_acks_late=True,
        # ...also when a prefork child is killed (OOM, kill -9): put the message back at once.
        task_reject_on_worker_lost=True,
        # A task that failed has already dead-lettered its payload with the reason (the tasks
        # catch what they expect); acking stops an unexpected crash from looping forever.
        task_acks_on_failure_or_timeout=True,
        task_ignore_result=True,  # results go to our own store, not a Celery backend
        task_queues=[Queue(q, Exchange(q, type="direct"), routing_key=q) for q in QUEUES],
        # Queue only: Celery then publishes on the anonymous exchange straight to the list.
        task_routes={name: {"queue": q} for name, q in ROUTES.items()},
        task_default_queue=QUEUES[0],
        task_create_missing_queues=False,
        # One message per process at a time for escalate and writeback; the classify worker
        # raises it to two batches' worth so batches can fill (`worker.runner`).
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        task_send_sent_event=False,
    )
    return app


def broker_options(ws: WorkerSettings) -> dict[str, Any]:
    """kombu's Redis transport options."""
    return {
        # Redis redelivers unacked messages after this: far above the task time limits.
        "visibility_timeout": ws.visibility_timeout_s,
        # How often a worker looks for messages past the visibility timeout. kombu looks every
        # 10 s but scans only every 10th look (100 s); we scan on every look, about twenty
        # times per timeout (at most once a minute), so a dead worker's messages come back
        # within ~1.05 x the visibility timeout. One ZRANGE per look: cheap.
        "unacked_restore_interval": max(1, min(60, ws.visibility_timeout_s // 20)),
        "unacked_restore_throttle": 1,
        "socket_timeout": 30,
        "socket_connect_timeout": 10,
        "socket_keepalive": True,
        "health_check_interval": 25,
    }


@worker_init.connect
def _no_cuda_before_fork(sender: Any = None, **_: Any) -> None:
    # A prefork pool forks after this: CUDA initialised here would break every child. SystemExit,
    # because Celery logs and swallows a signal handler's exceptions.
    from worker.process import check_no_cuda_before_fork, forks

    if forks(getattr(sender, "pool_cls", None)):
        try:
            check_no_cuda_before_fork()
        except RuntimeError as exc:
            raise SystemExit(f"error: {exc}") from exc


@worker_process_init.connect
def _one_thread_per_child(**_: Any) -> None:
    # Prefork children share the cores: one torch thread each (2 x 2 threads ran 6x slower).
    import torch

    torch.set_num_threads(1)


@worker_shutdown.connect
@worker_process_shutdown.connect
def _release_resources(**_: Any) -> None:
    from worker import resources

    resources.close_all()


app = make_app()
