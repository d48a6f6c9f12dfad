"""Classify batches that are acknowledged only once done, and sent again when their process dies.

celery-batches acks every message of a batch when the batch task returns, and does nothing when
the prefork child running it dies (kill -9, the OOM killer, a hard time limit): those messages
then stay unacknowledged in the worker, holding its prefetch slots, until the visibility timeout
(an hour) hands them to someone else. Here, instead:

- the task returns the ids of the requests it could not finish (Redis unreachable while routing
  them on); those are given back to the queue, the rest acknowledged;
- when the child dies, every request of the batch is published again with its `retries` count
  raised, and dead-lettered once that passes `max_retries` (a ticket that kills the process
  every time is poison, not bad luck), then acknowledged.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable
from typing import Any

from celery_batches import SimpleRequest
from celery_batches.trace import apply_batches_task

from producer.names import CLASSIFY_TASK
from worker.app import app
from worker.batches.filling import FillingBatches
from worker.settings import get_settings
from worker.writeback.dead_letter import dead_letter

log = logging.getLogger(__name__)


class RedeliveringBatches(FillingBatches):
    abstract = True

    def flush(self, requests: Collection[Any]) -> Any:
        log.debug("classify batch of %d", len(requests))
        batch = [SimpleRequest.from_request(r) for r in requests]

        def on_return(unfinished: Iterable[str] | None) -> None:
            self._batch_done()  # first: an ack that raises must not hold the next batch back
            again = set(unfinished or ())
            for req in requests:
                if req.id in again:
                    req.reject(requeue=True)
                else:
                    req.acknowledge()

        def on_error(exc_info: Any) -> None:
            self._batch_done()
            reason = f"the worker process died while classifying: {exc_info.exception!r}"
            log.error("%s; sending its %d tickets again", reason, len(requests))
            for req in requests:
                try:
                    send_again(req, reason)
                except Exception:  # Redis is down: unacked, it comes back after the timeout
                    log.exception("could not send ticket %s again", req.id)
                    continue
                req.acknowledge()

        return self._pool.apply_async(
            apply_batches_task,
            (self, (batch,), 0, None),
            callback=on_return,
            error_callback=on_error,
        )


def send_again(req: Any, reason: str) -> None:
    """Publish `req` again with one more try counted, or dead-letter it after the last one."""
    kwargs = req.kwargs if isinstance(req.kwargs, dict) else {}
    retries = int(kwargs.get("retries", 0))
    if retries >= get_settings().max_retries:
        dead_letter(CLASSIFY_TASK, kwargs, f"{reason} ({retries + 1} times)")
        return
    app.send_task(CLASSIFY_TASK, kwargs={**kwargs, "retries": retries + 1}, task_id=req.id)
