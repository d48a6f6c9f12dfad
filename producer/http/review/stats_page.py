"""The desk's stats page (issue 18, item 4): per task and adapter version over a window, auto
coverage, audited precision with its 95% interval, the correction rate, the queue's depth and
age, the labels people correct most, plots, and a warning when precision falls under the
precision the adapter was tuned for."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from markupsafe import Markup

from producer.http.review import calls, plots, quality
from producer.http.review.access import DeskError, ReviewerDep
from producer.http.review.pages import render
from producer.http.state import ServicesDep
from producer.ledger.quality import Verdict, verdict
from producer.ledger.records import VersionStats

router = APIRouter()


@dataclass(frozen=True)
class VersionView:
    """A row of the page: one adapter version's figures, its verdict and its plot."""

    stats: VersionStats
    verdict: Verdict
    plot: Markup


#: The longest window the page computes (one ledger query per day for the plot).
MAX_DAYS = 90


@router.get("/review/stats/{task}")
async def stats(
    task: str,
    request: Request,
    reviewer: ReviewerDep,
    services: ServicesDep,
    days: Annotated[int, Query(ge=1, le=MAX_DAYS)] = 7,
) -> HTMLResponse:
    if task not in services.labels:
        raise DeskError(404, f"no task {task!r} on this desk")
    found = await calls.ledger(services, quality.read, task, days)
    target = quality.target_for(services.http, task)
    versions = [
        VersionView(
            v,
            verdict(v, target),
            plots.precision_by_day(
                [(d, per.get(v.adapter_version)) for d, per in found.daily],
                target.precision,
                f"Audited precision by day, {v.adapter_version or 'unknown version'}",
            ),
        )
        for v in found.stats.versions
    ]
    return render(
        request,
        "stats.html",
        reviewer=reviewer,
        tasks=list(services.labels),
        task=task,
        days=days,
        windows=(1, 7, 30, 90),
        found=found.stats,
        target=target,
        versions=versions,
        alarms=[v for v in versions if v.verdict.level == "below"],
        ages_plot=plots.queue_ages(found.ages_s, "Time waiting, items not held by a reviewer"),
    )
