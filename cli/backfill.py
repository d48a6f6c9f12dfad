"""`triage backfill`: its options, progress bar, summary, and the dry run on a sample.

The streaming work (reading, validating, enqueueing, checkpoint, results) is `producer.backfill`,
which stays light; this module is what people see. Registered on the `triage` group in `cli.main`.
"""

from __future__ import annotations

import itertools
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import click

from cli.options import check_settings
from producer.backfill import (
    BackfillConfig,
    BackfillStats,
    open_rows,
    run_backfill,
    valid_tickets,
    write_results,
)
from producer.schemas import TICKET_SYSTEMS

if TYPE_CHECKING:
    from rich.console import Console

BROKER_EXIT = 3  # as `triage enqueue`: Redis did not take the tickets


@click.command()
@click.argument("input_path", metavar="SOURCE", default="-")
@click.option(
    "--ticket-source", default="api", show_default=True, help="Source of rows without one."
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "csv"]),
    default=None,
    help="Default: from the file name (.csv or else JSON lines).",
)
@click.option(
    "--map",
    "mappings",
    multiple=True,
    metavar="FIELD=COLUMN",
    help="Ticket field from an input column, e.g. --map id=ticket_id --map body=text.",
)
@click.option(
    "--grant",
    "grants",
    multiple=True,
    type=click.Choice(TICKET_SYSTEMS),
    help="Take rows of this ticket system, with their write-back origin (repeatable); "
    "without it such rows are rejected (docs/security.md).",
)
@click.option("--chunk-size", type=int, default=500, show_default=True)
@click.option("--rate", type=float, default=None, help="Most tickets per second.")
@click.option(
    "--rejects",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Bad rows with their line numbers (default: SOURCE.rejects.jsonl).",
)
@click.option("--resume", is_flag=True, help="Continue after the checkpoint of a stopped run.")
@click.option("--force", is_flag=True, help="Enqueue revisions enqueued before, too.")
@click.option("--dry-run", is_flag=True, help="Classify a sample here; write nothing.")
@click.option("--sample", type=int, default=20, show_default=True, help="Dry-run sample size.")
@click.option("--label-column", default="label", show_default=True, help="Labels to compare.")
@click.option("--wait", is_flag=True, help="Wait for the results (with --out).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--timeout", "timeout_s", type=float, default=600.0, show_default=True)
def backfill(
    input_path: str,
    ticket_source: str,
    fmt: str | None,
    mappings: tuple[str, ...],
    grants: tuple[str, ...],
    chunk_size: int,
    rate: float | None,
    rejects: Path | None,
    resume: bool,
    force: bool,
    dry_run: bool,
    sample: int,
    label_column: str,
    wait: bool,
    out: Path | None,
    timeout_s: float,
) -> None:
    """Enqueue historic tickets from a JSONL or CSV file (or - for stdin), streaming.

    \b
    Examples:
      triage backfill tickets.csv --map id=ticket_id --map body=text --rate 500
      triage backfill tickets.jsonl --resume
      triage backfill tickets.csv --dry-run --sample 50 --label-column category
      triage backfill tickets.jsonl --wait --out labelled.jsonl
      triage backfill github-export.jsonl --ticket-source github --grant github
    """
    from rich.console import Console

    from producer import TriageError

    path = _input_file(input_path, wait=wait, out=out, resume=resume)
    mapping = _mapping(mappings)
    if ticket_source in TICKET_SYSTEMS and ticket_source not in grants:
        raise click.UsageError(
            f"--ticket-source {ticket_source} is a ticket system: add --grant {ticket_source} "
            "to write its labels back (docs/security.md)"
        )
    checkpoint = path.with_name(path.name + ".checkpoint") if path is not None else None
    if checkpoint is not None and checkpoint.exists() and not resume and not dry_run:
        checkpoint.unlink()  # a fresh run starts at the top
    if rejects is None and path is not None:
        rejects = path.with_name(path.name + ".rejects.jsonl")
    try:
        config = BackfillConfig(
            source=ticket_source,
            fmt="csv" if fmt == "csv" or (fmt is None and str(path).endswith(".csv")) else "jsonl",
            mapping=mapping,
            chunk_size=chunk_size,
            rate_per_s=rate,
            rejects_path=rejects,
            checkpoint_path=checkpoint,
            force=force,
            grants=frozenset(grants),
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    console = Console(stderr=False)
    if dry_run:
        check_settings()
        _dry_run(path, config, sample=sample, label_column=label_column, console=console)
        return
    try:
        stats = _enqueue(path, config, out=out, wait_timeout_s=timeout_s, console=console)
    except TriageError as exc:
        click.echo(f"error: {exc} (rerun with --resume to continue)", err=True)
        sys.exit(BROKER_EXIT)
    if stats.rejected and rejects is not None:
        click.echo(f"{stats.rejected:,} rejected rows are in {rejects}", err=True)


def _enqueue(
    path: Path | None,
    config: BackfillConfig,
    *,
    out: Path | None,
    wait_timeout_s: float,
    console: Console,
) -> BackfillStats:
    """Enqueue the input with a progress bar over its bytes; then wait for results if `out`."""
    from rich.progress import (
        BarColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

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


def _dry_run(
    path: Path | None, config: BackfillConfig, *, sample: int, label_column: str, console: Console
) -> None:
    """Classify the first `sample` valid tickets with this process's models and print them
    beside the input's labels.

    The cascade's first pass, the code the classify worker runs, grouped by label task. Nothing
    is written (no queue, result store or index) and nothing escalates: an unsure ticket shows
    as "would escalate".
    """
    from rich.table import Table

    from worker.batches.first_pass import run_first_pass

    with _open(path) as stream:
        rows = open_rows(stream, config.fmt)
        picked = list(
            itertools.islice(
                valid_tickets(
                    rows, mapping=config.mapping, source=config.source, grants=config.grants
                ),
                sample,
            )
        )
    table = Table(title=f"dry run: {len(picked)} tickets classified, nothing written")
    for name in ("id", f"input {label_column}", "label", "confidence", "decided by", ""):
        table.add_column(name)
    compared = same = 0
    for task in dict.fromkeys(ticket.task for _, ticket in picked):
        items = [(data, ticket) for data, ticket in picked if ticket.task == task]
        firsts = run_first_pass(task, [ticket for _, ticket in items])
        for (data, ticket), first in zip(items, firsts, strict=True):
            given = _given_label(data, label_column)
            differs = given is not None and given != first.label
            compared += given is not None
            same += given is not None and not differs
            table.add_row(
                ticket.id,
                given or "-",
                first.label,
                f"{first.confidence:.3f}",
                first.decided_by or "would escalate",
                "[red]differs" if differs else "",
            )
    console.print(table)
    if compared:
        console.print(f"agrees with the input on {same}/{compared} labelled tickets")


def _input_file(input_path: str, *, wait: bool, out: Path | None, resume: bool) -> Path | None:
    """The input file (None: stdin), refusing the options that need a file."""
    path = None if input_path == "-" else Path(input_path)
    if path is not None and not path.is_file():
        raise click.BadParameter(f"{input_path} is not a file", param_hint="SOURCE")
    if wait != (out is not None):
        raise click.UsageError("--wait and --out go together")
    if out is not None and path is None:
        raise click.UsageError("--wait --out reads the input twice: give a file, not stdin")
    if resume and path is None:
        raise click.UsageError("--resume needs a file: stdin has no checkpoint")
    return path


def _mapping(mappings: tuple[str, ...]) -> dict[str, str]:
    mapping = {}
    for item in mappings:
        field, sep, column = item.partition("=")
        if not sep or not field or not column:
            raise click.BadParameter(f"{item!r} is not FIELD=COLUMN", param_hint="--map")
        mapping[field.strip()] = column.strip()
    return mapping


def _given_label(data: dict[str, Any], label_column: str) -> str | None:
    given = data.get(label_column)
    return str(given) if given not in (None, "") else None


def _summary(stats: BackfillStats, console: Console) -> None:
    from rich.table import Table

    table = Table(title="backfill summary", show_header=False)
    for key, value in stats.summary().items():
        table.add_row(key.replace("_", " "), f"{value:,}")
    console.print(table)


def _open(path: Path | None) -> IO[bytes]:
    return path.open("rb") if path is not None else sys.stdin.buffer
