"""`triage drift`: is a retrain due? Recent traffic against the adapter's training and tuning,
and production precision against the precision the adapter was tuned for.

Thin: options; people's labels and the audits come from the ledger (the record), recent results
from Redis (`worker.observe.traffic`: the event stream, the result store, the feedback stream);
`models.drift` judges the traffic, `cli.quality` the precision. Exit codes for scripts and cron:
0 no retrain due, 1 retrain due, 3 Redis, the ledger or the adapter unreadable.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import click

from cli.quality import window_option
from models.drift import Check, DriftReport, Thresholds


@click.command()
@click.option("--task", default="category", show_default=True, envvar="TRIAGE_TASK")
@click.option(
    "--window",
    type=click.IntRange(min=1),
    default=5000,
    show_default=True,
    envvar="TRIAGE_DRIFT_WINDOW",
    help="How many of the most recent model results to judge.",
)
@click.option(
    "--adapter",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Adapter directory [default: where the worker looks for the task].",
)
@click.option(
    "--feedback",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    envvar="TRIAGE_FEEDBACK_PATH",
    help=(
        "Deprecated: a feedback JSONL file the HTTP app wrote before people's labels went to "
        "the feedback stream (triage:feedback), read in addition to it. Will be removed."
    ),
)
@click.option("--max-label-tv", type=float, default=Thresholds.max_label_tv, show_default=True)
@click.option(
    "--max-confidence-psi", type=float, default=Thresholds.max_confidence_psi, show_default=True
)
@click.option(
    "--max-escalation-excess",
    type=float,
    default=Thresholds.max_escalation_excess,
    show_default=True,
)
@click.option(
    "--max-correction-rate", type=float, default=Thresholds.max_correction_rate, show_default=True
)
@click.option("--min-tickets", type=int, default=Thresholds.min_tickets, show_default=True)
@window_option(
    "How far back the audits go that measure the adapter's precision in production.",
    flag="--audit-window",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def drift(
    task: str,
    window: int,
    adapter: Path | None,
    feedback: Path | None,
    max_label_tv: float,
    max_confidence_psi: float,
    max_escalation_excess: float,
    max_correction_rate: float,
    min_tickets: int,
    span: timedelta,
    as_json: bool,
) -> None:
    """Compare recent results with the adapter's training data; say whether to retrain.

    Checks the label mix (total variation), the classifier's confidence (PSI against the
    held-out split), the escalation rate against `triage tune`'s expectation, how often
    humans corrected a label (the ledger's people's labels, and the feedback stream's), and
    the adapter's precision measured by audits against the precision it was tuned for (due
    when its whole 95% interval is below). Exit 0: no retrain due; 1: retrain due; 3: cannot
    read.

    \b
    Example (cron):
      triage drift --window 10000 || notify "retrain due"
    """
    from models.drift import assess, reference_from_adapter
    from models.settings import get_settings as model_settings
    from producer import TriageError
    from producer.client import redis_client
    from producer.settings import get_settings as producer_settings
    from worker.observe.traffic import recent_traffic

    if feedback is not None:
        click.echo(
            f"note: --feedback/TRIAGE_FEEDBACK_PATH is deprecated; corrections come from the "
            f"feedback stream (triage:feedback); {feedback} is read as well",
            err=True,
        )
    adapter_dir = adapter or model_settings().adapter_dir(task)
    ps = producer_settings()
    limits = Thresholds(
        max_label_tv=max_label_tv,
        max_confidence_psi=max_confidence_psi,
        max_escalation_excess=max_escalation_excess,
        max_correction_rate=max_correction_rate,
        min_tickets=min_tickets,
    )
    try:
        reference = reference_from_adapter(adapter_dir)
        recorded, precision = _from_ledger(task, adapter_dir, span)
        traffic = recent_traffic(
            redis_client(ps.resolved_redis_url, ps.broker_timeout_s),
            task,
            limit=window,
            feedback_path=feedback,
            recorded=recorded,
        )
    except TriageError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(3)
    report = assess(task, reference, traffic, limits)
    if precision is not None:  # judged on its own interval, however few the recent tickets
        report = replace(report, checks=[*report.checks, precision])
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        _print(report)
    sys.exit(1 if report.due else 0)


def _from_ledger(
    task: str, adapter_dir: Path, span: timedelta
) -> tuple[dict[tuple[str, str], str], Check | None]:
    """Each ticket's latest person's label of `task`, and the deployed adapter's precision check
    over the last `span` (None: no tuned target to judge it by)."""
    from datetime import UTC, datetime

    from cli import quality
    from models.classifier import adapter_version
    from producer.ledger import Ledger
    from producer.ledger.quality import target_for

    now = datetime.now(UTC)
    with Ledger.open() as ledger:
        people = ledger.export(task, holdout=0.0, humans_only=True)
        recorded = {(row.source, row.ticket_id): row.label for row in people}
        stats = ledger.stats(task, since=now - span, until=now, now=now)
    target = target_for(adapter_dir)
    return recorded, quality.precision_check(stats, adapter_version(adapter_dir), target)


def _print(report: DriftReport) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(
        "check",
        "measure",
        "limit",
        "status",
        "detail",
        title=f"{report.task}: {report.tickets} recent tickets",
    )
    for c in report.checks:
        measure = "-" if c.value is None else f"{c.value:.3f}"
        status = "n/a" if c.value is None else ("DRIFT" if c.due else "ok")
        table.add_row(c.name, measure, f"{c.limit:g}", status, c.detail)
    console = Console()
    console.print(table)
    for note in report.notes:
        console.print(f"note: {note}")
    console.print(report.verdict)
