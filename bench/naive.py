"""The naive design, for comparison: one Celery task per ticket, with the same model and worker.

    python -m bench.naive     # `triage worker` (same queues, a task at a time) that serves it

`bench.classify_one` runs the classify task's own code on a batch of one ticket, so the only
difference from the batched design is per ticket: one forward pass, one neighbour search and one
write-back (done in the task, as the batched worker writes a whole batch's back in its task).
Messages go on the classify queue with the same envelope `producer.enqueue_many` writes.
"""

from __future__ import annotations

import argparse
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from producer import wire
from producer.client import redis_client
from producer.names import CLASSIFY_QUEUE, QUEUES
from producer.schemas import Ticket
from producer.settings import ProducerSettings

NAIVE_TASK = "bench.classify_one"


def send(tickets: Sequence[Ticket], settings: ProducerSettings) -> None:
    """Queue one `bench.classify_one` message per ticket."""
    now = datetime.now(UTC).isoformat()
    messages = [
        wire.Message(
            task_id=str(uuid.uuid4()),
            kwargs_json=f'{{"ticket": {t.model_dump_json()}, "enqueued_at": "{now}"}}',
        )
        for t in tickets
    ]
    client = redis_client(settings.resolved_redis_url, settings.broker_timeout_s)
    wire.push(client, NAIVE_TASK, CLASSIFY_QUEUE, messages, ttl_s=settings.dedupe_ttl_s)


def register() -> None:
    """Add `bench.classify_one` to the worker's Celery app (imports the worker: call it there)."""
    from worker.app import app
    from worker.tasks import classify

    @app.task(bind=True, name=NAIVE_TASK, acks_late=True)  # type: ignore[untyped-decorator]
    def classify_one(self: Any, **kwargs: Any) -> None:
        # What celery-batches hands `classify`: requests with an id and the message's kwargs.
        unfinished = classify.run([SimpleNamespace(id=self.request.id, kwargs=kwargs)])
        if unfinished:  # the broker was unreachable: take it again, as the batch would
            raise self.retry(countdown=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loglevel", "-l", default="INFO")
    parser.add_argument("--pool", default="solo", choices=("solo", "threads", "prefork"))
    args = parser.parse_args()
    register()
    from worker.runner import run_worker

    # One task at a time: the naive design at its best. In the threads pool the batched worker
    # runs, 8 single-ticket tasks at once fight over the GIL and the model lock, and it ran 2-3x
    # slower (`--pool threads` to see it).
    run_worker(list(QUEUES), pool=args.pool, concurrency=None, loglevel=args.loglevel, warmup=True)


if __name__ == "__main__":
    main()
