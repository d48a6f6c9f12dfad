"""The ledger target: every decision the write-back sees goes into the store of record
(`producer.ledger`), once per (task, source, id, revision), and a sampled share of auto labels
goes to the review desk as audits.

Where it sits among the targets, and what it does with the gate's verdict (`decide`):

- After the result store, the feedback stream and the event (Redis), before the callback, the
  ticket system and the index: a label never reaches the outside world without its decision on
  record, and a ledger that is away holds those writes back (retried with the ticket) instead
  of letting labels ship unrecorded.
- It is the one target that runs for every decision, not only those that apply
  (`every_decision`). A model's result the gate answered ``kept-human-label`` or
  ``stale-revision`` still happened: the model decided it, at that time, with those versions.
  The ledger records it with that verdict (`Ledger.record(..., superseded=...)`), which keeps
  the verdict as the other targets do: no item on the desk, no item resolved, never the
  ticket's label in a training export. An overtaken person's label (an older one retried after
  a newer one) is kept as what they said then, and resolves nothing.
- Audits: an applied, auto-labelled model result is sampled at ``TRIAGE_AUDIT_RATE`` by a hash
  of (task, source, id, revision), so a redelivery makes the same choice, and `open_audit`
  puts it on the desk; the label ships all the same.

Errors: `LedgerUnavailable` (locked, away, out of connections) fails the batch's tickets
retryably, so the path retries them; anything else is permanent for the tickets it concerns
(each is tried alone to find them, so one bad ticket does not take its batch down).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import defaultdict
from collections.abc import Sequence

import redis

from producer.errors import PermanentError, SinkUnavailable
from producer.ledger import Ledger, LedgerError, LedgerUnavailable
from producer.schemas import Ticket, TriageResult
from worker import resources
from worker.settings import get_settings
from worker.writeback.decide import APPLY
from worker.writeback.item import Item

log = logging.getLogger(__name__)

NAME = "ledger"
RECORDED = "recorded"
AUDITED = "recorded, audited"


class LedgerTarget:
    name = NAME
    #: Run for every decision, applied or not (`worker.writeback.path`): see the module doc.
    every_decision = True

    def may_act(self, item: Item) -> bool:
        return True

    def write(self, r: redis.Redis, todo: list[Item], deadline: float) -> None:
        # Past the run's deadline the lease may be another run's. Overrunning it is harmless
        # here (every write is idempotent), so a busy SQLite writer may wait its full timeout.
        if time.monotonic() > deadline:
            _fail(todo, SinkUnavailable("ledger: out of time", retry_after_s=0.1))
            return
        try:
            ledger = resources.ledger()
        except Exception as exc:  # away (retry), or unusable as it is: an unmigrated schema
            log.error("cannot open the ledger: %s", exc)
            _fail(todo, _mapped(exc))
            return
        try:
            _record(ledger, todo)
        except Exception as exc:
            if len(todo) == 1 or isinstance(exc, LedgerUnavailable):
                _fail(todo, _mapped(exc))
                return
            for item in todo:  # find the tickets at fault, so the others are recorded
                try:
                    _record(ledger, [item])
                except Exception as alone:
                    _fail([item], _mapped(alone))


def is_auto(result: TriageResult) -> bool:
    """A model's label that shipped without a person: what an audit measures."""
    return result.decided_by != "human" and result.status == "labelled" and result.label is not None


def sampled(result: TriageResult, rate: float) -> bool:
    """Whether `result` is audited at `rate`: a hash of its (task, source, id, revision), the
    same on every delivery, independent of the training export's split (which hashes the ticket
    alone)."""
    if rate <= 0.0:
        return False
    key = "\x00".join(("audit", result.task, result.source, result.ticket_id, result.revision))
    digest = hashlib.sha256(key.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < rate


def _record(ledger: Ledger, todo: list[Item]) -> None:
    by_verdict: dict[str, list[Item]] = defaultdict(list)
    for item in todo:
        by_verdict[item.decision].append(item)
    rate = get_settings().audit_rate
    audited = [
        i for i in by_verdict.get(APPLY, []) if is_auto(i.result) and sampled(i.result, rate)
    ]
    # One transaction per verdict (one in all, but for results overtaken), audits with theirs:
    # an audit opens nothing when it was opened before (a redelivery) or a person labelled the
    # ticket.
    for verdict, items in sorted(by_verdict.items()):
        if verdict == APPLY:
            ledger.record(_pairs(items), audits=_pairs(audited))
        else:
            ledger.record(_pairs(items), superseded=verdict)
    for item in todo:
        if item.decision != APPLY:
            # A verdict reads the same in every target's outcome: here, recorded with it.
            item.outcomes[NAME] = item.decision
        else:
            item.outcomes[NAME] = AUDITED if item in audited else RECORDED


def _mapped(exc: Exception) -> Exception:
    """Retryable when the ledger may answer later; else permanent, in the service's words."""
    if isinstance(exc, LedgerUnavailable | PermanentError):
        return exc
    return LedgerError(f"the ledger refused the decision: {exc!r}")


def _fail(items: Sequence[Item], error: Exception) -> None:
    for item in items:
        if isinstance(error, PermanentError):
            log.warning("ledger refused %s: %s", item.key, error)
        item.error = error


def _pairs(items: Sequence[Item]) -> list[tuple[Ticket, TriageResult]]:
    return [(item.ticket, item.result) for item in items]
