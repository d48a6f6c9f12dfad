"""Precision in production, from the ledger: what `triage status --quality` prints and what
`triage drift` judges. Measured precision (the audits') is set against the precision the task's
adapter was tuned for (``tuning.target.precision`` in ``<adapter>/policy.json``); it is
``below`` when the whole 95% interval is under it, ``under`` when only the estimate is (more
audits will tell), as on the desk's stats page."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import click

from producer.ledger.quality import Target, verdict

if TYPE_CHECKING:
    from models.drift import Check
    from producer.ledger import Stats

F = TypeVar("F", bound=Callable[..., Any])
_WINDOW = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([mhdw])\s*$")
_UNIT_S = {"m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def window(value: str) -> timedelta:
    """``90m``, ``24h``, ``7d``, ``2w`` as a duration."""
    found = _WINDOW.match(value)
    if found is None or float(found.group(1)) <= 0:
        raise click.BadParameter(f"{value!r} is not a duration like 90m, 24h, 7d or 2w")
    return timedelta(seconds=float(found.group(1)) * _UNIT_S[found.group(2)])


def window_option(help: str, flag: str = "--window", default: str = "7d") -> Callable[[F], F]:
    """`flag` DURATION (`window`), given to the command as a `timedelta` named `span`."""
    return click.option(
        flag,
        "span",
        default=default,
        show_default=True,
        callback=lambda _ctx, _param, value: window(value),
        help=help,
    )


def precision_check(stats: Stats, version: str, target: Target) -> Check | None:
    """`triage drift`'s check of the deployed adapter `version`: due when its audited precision
    is below its target beyond doubt at 95%. None when the target is unknown."""
    from models.drift import Check

    if target.precision is None:
        return None
    found = next((v for v in stats.versions if v.adapter_version == version), None)
    span = _span(stats.until - stats.since)
    if found is None or found.precision is None:
        detail = f"no audits of {version} answered in the last {span}"
        return Check("precision", None, target.precision, False, detail)
    judged = verdict(found, target)
    return Check(
        "precision",
        found.precision.value,
        target.precision,
        judged.level == "below",
        f"{judged.text} (last {span})",
    )


def to_dict(stats: Stats, target: Target) -> dict[str, Any]:
    """One task's figures as JSON-safe values (`status --quality --json`)."""
    out = asdict(stats)
    out["since"], out["until"] = stats.since.isoformat(), stats.until.isoformat()
    out["target_precision"] = target.precision
    for row, version in zip(out["versions"], stats.versions, strict=True):
        judged = verdict(version, target)
        row["verdict"] = {"level": judged.level, "text": judged.text}
    return out


def print_task(stats: Stats, target: Target) -> None:
    """One task's figures for people: a row per adapter version, the desk, the confusions."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    span = _span(stats.until - stats.since)
    versions = Table(title=f"{stats.task}: the last {span} (target: {target.why})")
    for column in ("adapter version", "decisions", "auto coverage", "audits", "precision (95%)"):
        versions.add_column(column, justify="left" if column == "adapter version" else "right")
    versions.add_column("correction rate", justify="right")
    versions.add_column("vs tuned")
    for v in stats.versions:
        p = v.precision
        shown = "-" if p is None else f"{p.value:.1%} [{p.low:.1%}, {p.high:.1%}]"
        level = verdict(v, target).level
        versions.add_row(
            v.adapter_version or "(none)",
            f"{v.decisions:,}",
            f"{v.coverage:.1%} ({v.auto:,})",
            f"{v.audit_correct}/{v.audited}",
            shown,
            f"{v.correction_rate:.1%} ({v.corrected:,})",
            level.upper() if level == "below" else level,
            style="red" if level == "below" else "",
        )
    console.print(versions)
    age = "-" if stats.oldest_age_s is None else _span(timedelta(seconds=stats.oldest_age_s))
    console.print(f"review desk: {stats.queue_depth:,} waiting, the oldest for {age}")
    if stats.confusions:
        pairs = Table(title="most corrected (model label -> people's label)")
        for column in ("model", "people", "times"):
            pairs.add_column(column, justify="right" if column == "times" else "left")
        for c in stats.confusions:
            pairs.add_row(c.model_label, c.human_label, f"{c.count:,}")
        console.print(pairs)
    for v in stats.versions:
        judged = verdict(v, target)
        if judged.level in ("below", "under"):
            console.print(f"{judged.level.upper()}: {v.adapter_version}: {judged.text}")


def _span(delta: timedelta) -> str:
    seconds = delta.total_seconds()
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            value = seconds / size
            shown = f"{value:.0f}" if value >= 10 else f"{value:.1f}".removesuffix(".0")
            return shown + unit
    return f"{seconds:.0f}s"
