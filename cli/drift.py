"""`triage drift`: is a retrain due? Recent traffic against the adapter's training and tuning.

Thin: options, `worker.observe.traffic` reads Redis (the event stream, the result store and the
feedback stream, `triage:feedback`), `models.drift` judges. Exit codes for scripts and cron:
0 no retrain due, 1 retrain due, 3 Redis or the adapter unreadable.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from models.drift import DriftReport, Thresholds


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
    as_json: bool,
) -> None:
    """Compare recent results with the adapter's training data; say whether to retrain.

    Checks the label mix (total variation), the classifier's confidence (PSI against the
    held-out split), the escalation rate against `triage tune`'s expectation, and how often
    humans corrected a label. Exit 0: no retrain due; 1: retrain due; 3: cannot read.

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
        traffic = recent_traffic(
            redis_client(ps.resolved_redis_url, ps.broker_timeout_s),
            task,
            limit=window,
            feedback_path=feedback,
        )
    except TriageError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(3)
    report = assess(task, reference, traffic, limits)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        _print(report)
    sys.exit(1 if report.due else 0)


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
