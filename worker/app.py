"""The Celery app: broker, queues, routes and delivery guarantees, all declared here."""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.signals import worker_process_init, worker_process_shutdown, worker_shutdown
from kombu import Exchange, Queue

from producer.names import QUEUES, ROUTES
from producer.settings import get_settings as producer_settings
from worker import transport
from worker.settings import get_settings as worker_settings


def make_app() -> Celery:
    transport.install()
    ws, ps = worker_settings(), producer_settings()
    app = Celery("triage", broker=ps.broker_url, include=["worker.tasks"])
    options = {
        # Redis redelivers unacked messages after this: far above the task time limits.
        "visibility_timeout": ws.visibility_timeout_s,
        "socket_timeout": 30,
        "socket_connect_timeout": 10,
        "socket_keepalive": True,
        "health_check_interval": 25,
    }
    app.conf.update(
        broker_transport_options=options,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,  # keep reconnecting when Redis restarts
        accept_content=["json"],
        task_serializer="json",
        # At-least-once: ack after the work, requeue when a child dies mid-task.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        task_ignore_result=True,  # results go to our own store, not a Celery backend
        task_queues=[Queue(q, Exchange(q, type="direct"), routing_key=q) for q in QUEUES],
        # Queue only: Celery then publishes on the anonymous exchange straight to the list.
        task_routes={name: {"queue": q} for name, q in ROUTES.items()},
        task_default_queue=QUEUES[0],
        task_create_missing_queues=False,
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        task_send_sent_event=False,
    )
    return app


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
