"""The desk's queue and ticket pages: list a task's waiting items (oldest first, filtered by
source and label), open one (which claims it), and answer or skip it.

An answer is a person's label on the same path as every other: `HumanLabel.as_writeback`, one
push to the write-back queue (which records it in the ledger, the result store, the event
stream, the callback, the ticket system, the index and the feedback stream), then the item is
resolved in the ledger. Opening a ticket claims it for `TRIAGE_REVIEW_CLAIM_S`; nobody else sees
it in their queue or may answer it until the claim runs out.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from producer.errors import InvalidTicket
from producer.feedback import HumanLabel
from producer.http.labels import allowed_label
from producer.http.review import calls, views
from producer.http.review.access import DeskError, Reviewer, ReviewerDep, form
from producer.http.review.lookups import neighbour_subjects, scoped_queue
from producer.http.review.pages import render
from producer.http.state import Services, ServicesDep
from producer.ledger.records import Counts

if TYPE_CHECKING:
    from producer.ledger import Ledger
    from producer.ledger.records import ItemView

router = APIRouter()
#: The states of an item still waiting for an answer.
WAITING = {"open", "claimed"}


@router.get("/review")
async def home(_: ReviewerDep, services: ServicesDep) -> RedirectResponse:
    return RedirectResponse(f"/review/queue/{next(iter(services.labels))}", status_code=303)


@router.get("/review/queue/{task}")
async def queue(
    task: str,
    request: Request,
    reviewer: ReviewerDep,
    services: ServicesDep,
    source: str = "",
    label: str = "",
    left: int | None = None,
) -> HTMLResponse:
    """The task's waiting items in the reviewer's scope, oldest first, with the desk's counts
    (back from a ticket, `left`, that ticket is given back)."""
    labels = _labels(services, task)
    if left is not None:
        await calls.ledger(services, _release, left, reviewer.name)
    entries = await scoped_queue(services, reviewer, task, source or None, label or None)
    everything = await scoped_queue(services, reviewer, task, None, None)
    counts = await calls.ledger(services, _counts, task)
    now = datetime.now(UTC)
    oldest = (now - everything[0].item.created_at).total_seconds() if everything else None
    sources = sorted({e.item.source for e in everything} | ({source} if source else set()))
    return render(
        request,
        "queue.html",
        reviewer=reviewer,
        tasks=list(services.labels),
        task=task,
        entries=entries,
        counts=counts,
        oldest_s=oldest,
        now=now,
        sources=sources,
        labels=labels,
        source=source,
        label=label,
        filters=_filters(source, label),
        why=views.WHY,
    )


@router.get("/review/queue/{task}/next")
async def next_item(
    task: str, reviewer: ReviewerDep, services: ServicesDep, source: str = "", label: str = ""
) -> RedirectResponse:
    """The oldest waiting item the reviewer may take, opened; the queue when none is left."""
    _labels(services, task)
    entries = await scoped_queue(services, reviewer, task, source or None, label or None)
    filters = _filters(source, label)
    if not entries:
        return RedirectResponse(f"/review/queue/{task}{filters}", status_code=303)
    return RedirectResponse(f"/review/items/{entries[0].item.id}{filters}", status_code=303)


@router.get("/review/items/{item_id}")
async def ticket(
    item_id: int,
    request: Request,
    reviewer: ReviewerDep,
    services: ServicesDep,
    source: str = "",
    label: str = "",
    left: int | None = None,
) -> HTMLResponse:
    """A ticket on the desk, claimed for the reviewer while it waits. Coming from another
    ticket with j/k (`left`) gives that one back: browsing does not hold tickets."""
    if left is not None and left != item_id:
        await calls.ledger(services, _release, left, reviewer.name)
    view = await _item(services, reviewer, item_id)
    held = False
    if view.item.state in WAITING:
        held = await calls.ledger(
            services, _claim, item_id, reviewer.name, services.http.review_claim_s
        )
        view = await _item(services, reviewer, item_id)  # the claim as it stands now
    item = view.item
    set_ = services.labels[item.task]
    suggested = views.suggestions(view.decision)
    entries = await scoped_queue(services, reviewer, item.task, source or None, label or None)
    ids = [e.item.id for e in entries]
    at = ids.index(item_id) if item_id in ids else -1
    filters = _filters(source, label)
    return render(
        request,
        "ticket.html",
        code=200 if held or item.state not in WAITING else 409,
        reviewer=reviewer,
        tasks=list(services.labels),
        task=item.task,
        view=view,
        item=view.item,
        held=held,
        why=views.WHY.get(item.why, item.why),
        suggestions=suggested,
        choices=views.choices(suggested, set_.names, {x.name: x.description for x in set_.labels}),
        frontier=views.frontier(view.decision),
        neighbours=views.neighbours(view, await neighbour_subjects(services, reviewer, view)),
        prev_id=ids[at - 1] if at > 0 else None,
        next_id=ids[at + 1] if 0 <= at < len(ids) - 1 else (ids[0] if at < 0 and ids else None),
        filters=filters,
        step=_filters(source, label, left=str(item_id)),
        now=datetime.now(UTC),
    )


@router.post("/review/items/{item_id}/answer")
async def answer(
    item_id: int, request: Request, reviewer: ReviewerDep, services: ServicesDep
) -> RedirectResponse:
    """The reviewer's label for the item: pushed once on the write-back path, item resolved."""
    fields = await form(request, services, reviewer.csrf)
    view = await _item(services, reviewer, item_id)
    item = view.item
    filters = _filters(fields.get("source", ""), fields.get("label_filter", ""))
    if item.state not in WAITING:
        return RedirectResponse(f"/review/items/{item_id}{filters}", status_code=303)
    try:
        label = allowed_label(services.labels, item.task, fields.get("label", ""))
    except InvalidTicket as exc:
        raise DeskError(422, f"choose a label of the {item.task} label set") from exc
    note = fields.get("note", "").strip()[:2000] or None
    await _hold(services, reviewer, item_id)
    ticket = await calls.ticket_for(services, item, view.ticket)
    if ticket is None:
        raise DeskError(409, "the ticket itself is not stored any more: skip it")
    human = HumanLabel(ticket=ticket, label=label, by=reviewer.name, via="review", note=note)
    if await calls.push_label(services, item, human):
        await calls.ledger(services, _resolve, item_id, reviewer.name, label, note)
    return RedirectResponse(f"/review/queue/{item.task}/next{filters}", status_code=303)


@router.post("/review/items/{item_id}/skip")
async def skip(
    item_id: int, request: Request, reviewer: ReviewerDep, services: ServicesDep
) -> RedirectResponse:
    """Take the item off the desk without a label."""
    fields = await form(request, services, reviewer.csrf)
    view = await _item(services, reviewer, item_id)
    filters = _filters(fields.get("source", ""), fields.get("label_filter", ""))
    if view.item.state in WAITING:
        await _hold(services, reviewer, item_id)
        note = fields.get("note", "").strip()[:2000] or None
        await calls.ledger(services, _skip, item_id, reviewer.name, note)
    return RedirectResponse(f"/review/queue/{view.item.task}/next{filters}", status_code=303)


async def _item(services: Services, reviewer: Reviewer, item_id: int) -> ItemView:
    view = await calls.ledger(services, _view, item_id)
    if view is None or view.item.task not in services.labels:
        raise DeskError(404, "no such item on this desk")
    reviewer.require(view.item.source)
    return view


async def _hold(services: Services, reviewer: Reviewer, item_id: int) -> None:
    """Renew the reviewer's claim before acting; someone else's claim is a 409."""
    if not await calls.ledger(
        services, _claim, item_id, reviewer.name, services.http.review_claim_s
    ):
        raise DeskError(409, "another reviewer holds this ticket now")


def _labels(services: Services, task: str) -> list[str]:
    found = services.labels.get(task)
    if found is None:
        raise DeskError(404, f"no task {task!r} on this desk")
    return list(found.names)


def _filters(source: str, label: str, **more: str) -> str:
    given = {k: v for k, v in (("source", source), ("label", label), *more.items()) if v}
    return f"?{urlencode(given)}" if given else ""


def _view(ledger: Ledger, item_id: int) -> ItemView | None:
    return ledger.item(item_id)


def _claim(ledger: Ledger, item_id: int, name: str, ttl_s: float) -> bool:
    return ledger.claim(item_id, name, ttl_s)


def _counts(ledger: Ledger, task: str) -> Counts:
    return ledger.counts(task)


def _release(ledger: Ledger, item_id: int, name: str) -> bool:
    return ledger.release(item_id, name)


def _resolve(ledger: Ledger, item_id: int, name: str, label: str, note: str | None) -> bool:
    return ledger.resolve(item_id, name, label, note)


def _skip(ledger: Ledger, item_id: int, name: str, note: str | None) -> bool:
    return ledger.skip(item_id, name, note=note)
