"""The people side of `triage backfill`: a progress bar, the dry-run table, the summary.

The work itself is `producer.backfill` (light, streaming); this module only shows it.
"""

from __future__ import annotations

import sys
from contextlib import ExitStack
from pathlib import Path
from typing import IO

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from producer.backfill import BackfillConfig, BackfillStats, open_rows, run_backfill, write_results


def backfill(
    path: Path | None,
    config: BackfillConfig,
    *,
    out: Path | None,
    wait_timeout_s: float,
    console: Console,
) -> BackfillStats:
    """Enqueue the input with a progress bar over its bytes; then wait for results if `out`."""
    total = path.stat().st_size if path is not None else None
    columns = (
        TextColumn("[bold]backfill"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[read]:,} read · {task.fields[rate]:,.0f} tickets/s"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with ExitStack() as stack:
        stream = stack.enter_context(_open(path))
        progress = stack.enter_context(Progress(*columns, console=console, transient=False))
        bar = progress.add_task("backfill", total=total, read=0, rate=0.0)

        def show(stats: BackfillStats) -> None:
            progress.update(
                bar, completed=stats.bytes_read, read=stats.read, rate=stats.tickets_per_s
            )

        stats = run_backfill(stream, config, progress=show)
    _summary(stats, console)
    if out is not None and path is not None:
        with path.open("rb") as again, out.open("w", encoding="utf-8", newline="") as fh:
            found, missing = write_results(again, fh, config, timeout_s=wait_timeout_s)
        console.print(f"wrote {found:,} results to {out} ({missing:,} not decided in time)")
    return stats


def dry_run(
    path: Path | None, config: BackfillConfig, *, sample: int, label_column: str, console: Console
) -> int:
    """Classify `sample` tickets in this process; print them and the diff with the input."""
    from cli.dryrun import dry_run as classify_sample

    with _open(path) as stream:
        rows = classify_sample(
            open_rows(stream, config.fmt), config, sample=sample, label_column=label_column
        )
    table = Table(title=f"dry run: {len(rows)} tickets classified, nothing written")
    for name in ("id", f"input {label_column}", "label", "confidence", "decided by", ""):
        table.add_column(name)
    for r in rows:
        mark = "[red]differs" if r.differs else ""
        table.add_row(
            r.ticket.id, r.given or "-", r.label, f"{r.confidence:.3f}", r.decided_by, mark
        )
    console.print(table)
    compared = [r for r in rows if r.given is not None]
    if compared:
        same = sum(not r.differs for r in compared)
        console.print(f"agrees with the input on {same}/{len(compared)} labelled tickets")
    return len(rows)


def _summary(stats: BackfillStats, console: Console) -> None:
    table = Table(title="backfill summary", show_header=False)
    for key, value in stats.summary().items():
        table.add_row(key.replace("_", " "), f"{value:,}")
    console.print(table)


def _open(path: Path | None) -> IO[bytes]:
    return path.open("rb") if path is not None else sys.stdin.buffer
