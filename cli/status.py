"""`triage status`: queues, live workers, the last hour's results, spend and dead letters.

Registered on the `triage` group in `cli.main`. Exit 3 when Redis does not answer (as the
other commands), so it doubles as a health check in scripts.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from worker.observe.status import Status

REDIS_DOWN_EXIT = 3


@click.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object, for scripts.")
def status(as_json: bool) -> None:
    """Show queue depths, live workers, results of the last hour, spend today, dead letters.

    \b
    Examples:
      triage status
      triage status --json | jq .queues
    """
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
