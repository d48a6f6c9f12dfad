"""What a write-back target is: one step of the write-back path, run over the tickets that still
need it, recording each ticket's outcome or error on the ticket itself."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol

import redis

from producer.callbacks import scrub_urls
from producer.errors import SinkUnavailable
from producer.schemas import Ticket, TriageResult
from worker.observe.metrics import get_metrics
from worker.settings import get_settings
from worker.writeback.done import record
from worker.writeback.item import Item

log = logging.getLogger(__name__)

#: What a per-ticket target returns when it had nothing to do (no side effect to record early).
NO_EFFECT = frozenset({"none", "skipped", "not-configured"})


class Target(Protocol):
    """A write-back step. `write` sets ``item.outcomes[name]`` for each ticket it did, or
    ``item.error`` for each it could not; it raises only when Redis itself fails (then the
    whole run is retried, and every step is idempotent). `deadline` (monotonic) bounds the
    calls it may start."""

    name: str

    def may_act(self, item: Item) -> bool:
        """Whether writing `item` may do anything outside this process. A step none of whose
        tickets it may act on runs without its own gate (`worker.writeback.path`)."""
        ...

    def write(self, r: redis.Redis, todo: list[Item], deadline: float) -> None: ...


class PerTicket:
    """A target that talks to one peer per ticket (HTTP): a failure is that ticket's alone.

    Its calls are sequential, so a slow peer could outlast the task's time limit (which is also
    the lease): a call starts only while it would end, timed out at worst, before `deadline`;
    the tickets left are retried later. A call that did something is recorded at once (`record`):
    killed later in the step, the run must not repeat it.
    """

    def __init__(
        self,
        name: str,
        call: Callable[[Ticket, TriageResult], str],
        timeout_setting: str,
        may_call: Callable[[Ticket], bool],
    ) -> None:
        """`timeout_setting`: the `WorkerSettings` field that bounds one call of `call`;
        `may_call`: False for a ticket `call` would do nothing for (and answer ``none``)."""
        self.name, self._call, self._timeout_setting = name, call, timeout_setting
        self._may_call = may_call

    def may_act(self, item: Item) -> bool:
        return self._may_call(item.ticket)

    def write(self, r: redis.Redis, todo: list[Item], deadline: float) -> None:
        timeout_s = float(getattr(get_settings(), self._timeout_setting))
        for item in todo:
            if time.monotonic() + timeout_s > deadline:
                item.error = SinkUnavailable(f"{self.name}: out of time", retry_after_s=0.1)
                continue
            try:
                outcome = self._call(item.ticket, item.result)
            except Exception as exc:
                get_metrics().sink_failures.labels(self.name).inc()
                log.warning("%s sink failed for %s: %s", self.name, item.key, scrub_urls(repr(exc)))
                item.error = exc
                continue
            item.outcomes[self.name] = outcome
            if outcome not in NO_EFFECT:
                record(r, [item], self.name)
                item.recorded.add(self.name)
