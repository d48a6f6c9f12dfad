"""Running the first pass for a classify batch, so that one bad ticket never sinks the batch."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from contextlib import AbstractContextManager
from functools import lru_cache
from typing import Any

from models.cascade import FirstPass, first_pass
from producer.errors import PermanentError, RetryableError
from producer.names import CLASSIFY_TASK
from producer.schemas import Ticket
from worker import process, resources
from worker.app import app
from worker.retrying import backoff_s
from worker.settings import get_settings
from worker.writeback.dead_letter import dead_letter

log = logging.getLogger(__name__)

Item = tuple[Ticket, dict[str, Any]]
#: One torch first pass at a time in a process: torch already spreads one pass over every core
#: (a GPU's memory holds one batch's activations), and two at once only slow each other down. In
#: a threads pool the next batch's messages, the last one's search, vote and write-back run
#: meanwhile: the turn covers the model passes alone.
_one_pass = threading.Lock()


def run_isolating(task: str, items: Sequence[Item]) -> list[tuple[FirstPass, dict[str, Any]]]:
    """First pass over `items`; failures are retried later or dead-lettered, never raised.

    A batch that crashes is split into single tickets, so a poison ticket ends in the
    dead-letter list alone and the others go through.
    """
    try:
        firsts = run_first_pass(task, [t for t, _ in items])
        return list(zip(firsts, [k for _, k in items], strict=True))
    except RetryableError as exc:
        log.warning("first pass of %d %s tickets will be retried: %s", len(items), task, exc)
        for item in items:
            _retry_later(item, exc)
    except PermanentError as exc:
        for _, kwargs in items:
            dead_letter(CLASSIFY_TASK, kwargs, f"{type(exc).__name__}: {exc}")
    except Exception as exc:
        if len(items) == 1:
            dead_letter(CLASSIFY_TASK, items[0][1], f"model crashed on this ticket: {exc!r}")
            return []
        log.exception("batch of %d crashed; isolating the ticket at fault", len(items))
        return [out for item in items for out in run_isolating(task, [item])]
    return []


def run_first_pass(task: str, tickets: Sequence[Ticket]) -> list[FirstPass]:
    """The cascade's first pass with this process's models: what `classify` runs per batch."""
    with _one_pass:
        # Under the lock: the first batches of several threads load the models once, not each.
        side_by_side = (
            resources.task_models(task).side_by_side and resources.embedder().inference == "onnx"
        )
    return _first_pass(task, tickets, _passes_side_by_side() if side_by_side else _one_pass)


@lru_cache
def _passes_side_by_side() -> threading.BoundedSemaphore:
    """ONNX passes run on one thread each: as many at once as `process.passes_side_by_side`."""
    return threading.BoundedSemaphore(process.passes_side_by_side())


def _first_pass(
    task: str, tickets: Sequence[Ticket], turn: AbstractContextManager[Any]
) -> list[FirstPass]:
    models = resources.task_models(task)
    embedder = resources.embedder()
    firsts = first_pass(
        tickets,
        task=models,
        embed=embedder.embed,
        search=resources.search(task),
        policy=resources.policy(task),
        versions={"embedder": embedder.name},
        models_turn=turn,
    )
    process.trim_heap()
    return firsts


def _retry_later(item: Item, exc: RetryableError) -> None:
    _, kwargs = item
    retries = int(kwargs.get("retries", 0))
    if retries >= get_settings().max_retries:
        dead_letter(CLASSIFY_TASK, kwargs, f"gave up after {retries + 1} tries: {exc}")
        return
    app.send_task(
        CLASSIFY_TASK, kwargs={**kwargs, "retries": retries + 1}, countdown=backoff_s(retries, exc)
    )
