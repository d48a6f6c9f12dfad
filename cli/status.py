"""`triage status`: queues, live workers, the last hour's results, spend and dead letters;
with `--quality`, precision in production from the ledger instead (`cli.quality`).

Registered on the `triage` group in `cli.main`. Exit 3 when Redis (or, with `--quality`, the
ledger) does not answer (as the other commands), so it doubles as a health check in scripts.
"""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from typing import TYPE_CHECKING

import click

from cli.quality import window_option

if TYPE_CHECKING:
    from worker.observe.status import Status

REDIS_DOWN_EXIT = 3


@click.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object, for scripts.")
@click.option(
    "--quality",
    is_flag=True,
    help="Instead: per task and adapter version, from the ledger, auto coverage, audited "
    "precision (95% interval) against the tuned one, corrections, the review desk.",
)
@click.option(
    "--task",
    "tasks",
    multiple=True,
    help="With --quality: this task (repeat for more) [default: every task in TRIAGE_LABELS].",
)
@window_option("With --quality: how far back, e.g. 24h, 7d, 4w.")
def status(as_json: bool, quality: bool, tasks: tuple[str, ...], span: timedelta) -> None:
    """Show queue depths, live workers, results of the last hour, spend today, dead letters.

    \b
    Examples:
      triage status
      triage status --json | jq .queues
      triage status --quality --task category --window 24h
    """
    if quality:
        _quality(tasks, span, as_json)
        return
    import redis

    from models.settings import get_settings as model_settings
    from producer.client import redis_client
    from producer.settings import get_settings as producer_settings
    from worker.observe.status import read_status

    ps = producer_settings()
    try:
        found = read_status(
            redis_client(ps.resolved_redis_url, ps.broker_timeout_s),
            budget_usd=model_settings().frontier_daily_budget_usd,
        )
    except redis.RedisError as exc:
        if as_json:
            click.echo(json.dumps({"redis": f"unreachable: {exc}"}))
        click.echo(f"error: Redis is unreachable: {exc}", err=True)
        sys.exit(REDIS_DOWN_EXIT)
    if as_json:
        click.echo(json.dumps({"redis": "ok", **found.to_dict()}, indent=2, default=str))
        return
    _print(found)


def _quality(tasks: tuple[str, ...], span: timedelta, as_json: bool) -> None:
    from datetime import UTC, datetime

    from cli import quality
    from models.settings import get_settings as model_settings
    from producer.ledger import Ledger, LedgerError, LedgerUnavailable
    from producer.ledger.quality import target_for

    ms = model_settings()
    now = datetime.now(UTC)
    found = {}
    try:
        with Ledger.open() as ledger:
            for task in tasks or sorted(ms.labels):
                stats = ledger.stats(task, since=now - span, until=now, now=now)
                found[task] = (stats, target_for(ms.adapter_dir(task)))
    except (LedgerUnavailable, LedgerError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(REDIS_DOWN_EXIT)
    if as_json:
        figures = {task: quality.to_dict(*pair) for task, pair in found.items()}
        click.echo(json.dumps({"ledger": "ok", "tasks": figures}, indent=2))
        return
    for stats, target in found.values():
        quality.print_task(stats, target)


def _print(found: Status) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    queues = Table(title="Queues")
    queues.add_column("queue")
    queues.add_column("waiting", justify="right")
    for name, depth in found.queues.items():
        queues.add_row(name, f"{depth:,}")
    queues.add_row("in flight (unacked)", f"{found.unacked:,}")
    queues.add_row(
        "dead letters", f"{found.dead_letters:,}", style="red" if found.dead_letters else ""
    )
    console.print(queues)

    workers = Table(title=f"Workers alive: {len(found.workers)}")
    for column in ("node", "queues", "pool", "pid", "last beat"):
        workers.add_column(column)
    for w in found.workers:
        workers.add_row(
            str(w.get("node", "?")),
            ",".join(q.removeprefix("triage.") for q in w.get("queues", [])),
            str(w.get("pool", "")),
            str(w.get("pid", "")),
            f"{w['beat_age_s']:.0f} s ago" if "beat_age_s" in w else "",
        )
    console.print(workers)

    hour = found.last_hour
    bound = "at least " if hour.truncated else ""
    results = Table(title=f"Results in the last hour: {bound}{hour.total:,}")
    for column in ("decided by", "status", "results"):
        results.add_column(column, justify="right" if column == "results" else "left")
    for row in hour.by_decision:
        results.add_row(row["decided_by"], row["status"], f"{row['count']:,}")
    console.print(results)

    cap = f" of ${found.budget_usd:.2f}" if found.budget_usd else " (frontier off: cap 0)"
    console.print(f"Frontier spend today (UTC): ${found.spend_today_usd:.4f}{cap}")
