"""`triage dead-letter list|replay`: inspect the dead-letter list and send entries back.

Thin: options, then `worker.writeback.dead_letter`. Exit codes: 0 done, 1 some entries could not be
replayed (no task recorded), 3 Redis unreachable or a queue at its cap.
"""

from __future__ import annotations

import json
import sys

import click

from producer import TriageError
from producer.client import redis_client
from producer.settings import get_settings
from worker.writeback import dead_letter as dlq

_REASON = click.option(
    "--reason", default=None, help="Only entries whose reason contains this (any case)."
)
_LIMIT = click.option(
    "--limit", type=click.IntRange(min=1), default=None, help="At most this many, oldest first."
)


@click.group("dead-letter")
def dead_letter() -> None:
    """The dead-letter list: messages parked after their last try, with the reason.

    \b
    Example: fix the cause (a bad token, a target that was down), then
      triage dead-letter list --reason "401"
      triage dead-letter replay --reason "401" --limit 100
    """


@dead_letter.command("list")
@_REASON
@_LIMIT
@click.option("--json", "as_json", is_flag=True, help="One JSON entry a line, as stored.")
def list_entries(reason: str | None, limit: int | None, as_json: bool) -> None:
    """Show dead-lettered entries, oldest first."""
    from rich.console import Console
    from rich.table import Table

    chosen = _read(reason, limit)
    if as_json:
        for entry in chosen:
            click.echo(entry.raw)
        return
    table = Table("at", "task", "ticket", "reason", title=f"{len(chosen)} dead-lettered")
    for entry in chosen:
        table.add_row(entry.at[:19], entry.task or "-", entry.ticket, entry.reason[:120])
    Console().print(table)
    if any(not e.replayable for e in chosen):
        click.echo("entries without a task cannot be replayed; inspect them with --json")


@dead_letter.command()
@_REASON
@_LIMIT
@click.option("--dry-run", is_flag=True, help="Say what would be replayed; change nothing.")
def replay(reason: str | None, limit: int | None, dry_run: bool) -> None:
    """Queue entries again on their task's queue and remove them from the list.

    Idempotent: an entry is queued at most once, however often this runs (a crash halfway,
    two operators). Classify entries start with a fresh count of tries.
    """
    chosen = _read(reason, limit)
    if dry_run:
        replayable = [e for e in chosen if e.replayable]
        click.echo(f"would replay {len(replayable)} of {len(chosen)} entries")
        return
    settings = get_settings()
    try:
        report = dlq.replay(
            redis_client(settings.resolved_redis_url, settings.broker_timeout_s), chosen, settings
        )
    except TriageError as exc:
        click.echo(f"error: {exc} (what was replayed is out of the list; run it again)", err=True)
        sys.exit(3)
    click.echo(
        json.dumps(
            {
                "replayed": len(report.replayed),
                "already_replayed": len(report.already),
                "skipped": len(report.skipped),
            }
        )
    )
    if report.skipped:
        sys.exit(1)


def _read(reason: str | None, limit: int | None) -> list[dlq.DeadLetter]:
    settings = get_settings()
    try:
        return dlq.entries(
            redis_client(settings.resolved_redis_url, settings.broker_timeout_s),
            reason=reason,
            limit=limit,
        )
    except TriageError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(3)
