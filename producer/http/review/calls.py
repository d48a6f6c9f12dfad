"""Off-loop calls the desk makes (the ledger, the stored ticket, the write-back push), with their
errors turned into a page a reviewer can act on."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from producer import wire
from producer.client import send_writeback
from producer.errors import BrokerUnavailable
from producer.feedback import HumanLabel
from producer.http.review.access import DeskError
from producer.http.state import Services
from producer.ledger.errors import LedgerError, LedgerUnavailable
from producer.names import KEY_PREFIX
from producer.results import get_ticket
from producer.schemas import Ticket

if TYPE_CHECKING:
    from producer.ledger.records import ReviewItem, TicketRecord

T = TypeVar("T")


async def ledger(services: Services, call: Callable[..., T], *args: object, **kw: object) -> T:
    """`call(ledger, *args, **kw)` in a thread; the database away or unusable is a 503 page."""

    def run() -> T:
        return call(services.ledger.get(), *args, **kw)

    try:
        return await asyncio.to_thread(run)
    except LedgerUnavailable as exc:
        raise DeskError(503, "the ledger's database is not answering; try again shortly") from exc
    except LedgerError as exc:
        raise DeskError(503, f"the ledger cannot be used: {exc}") from exc


async def ticket_for(
    services: Services, item: ReviewItem, row: TicketRecord | None
) -> Ticket | None:
    """The ticket a person's label is written back to: as the write-back path stored it in
    Redis (its verified origin with it), else the ledger's row of it."""
    stored = await asyncio.to_thread(
        get_ticket, item.task, item.source, item.ticket_id, settings=services.producer
    )
    if stored is not None:
        return stored
    if row is None:
        return None
    return Ticket.model_validate(
        {
            "id": row.ticket_id,
            "source": row.source,
            "subject": row.subject,
            "body": row.body,
            "origin": row.origin,
            "task": item.task,
            "revision": item.revision,
        }
    )


async def push_label(services: Services, item: ReviewItem, human: HumanLabel) -> bool:
    """Queue the person's label on the one write-back path (one push). False when this item
    was answered before (a second Enter, a second tab): its gate is set with the push."""
    ticket, result = human.as_writeback()
    gate = wire.Gate(_answered_key(item), ttl_s=services.producer.dedupe_ttl_s)
    try:
        await asyncio.to_thread(
            send_writeback, ticket, result, settings=services.producer, gate=gate
        )
    except wire.GateClosed:
        return False
    except BrokerUnavailable as exc:
        raise DeskError(503, "Redis is not answering: the label was not sent; try again") from exc
    return True


def _answered_key(item: ReviewItem) -> str:
    identity = "\x1f".join((item.task, item.source, item.ticket_id, item.revision, item.kind))
    return f"{KEY_PREFIX}:review:answered:{hashlib.sha256(identity.encode()).hexdigest()}"
