"""The `triage` command line. Each subcommand imports its heavy parts only when it runs."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from cli import backfill as backfill_cli
from cli import dead_letter as dead_letter_cli
from cli import drift as drift_cli
from cli import evaluate as evaluate_cli
from cli import ledger as ledger_cli
from cli import seed as seed_cli
from cli import status as status_cli
from cli import train as train_cli
from cli import tune as tune_cli
from cli.options import check_settings, json_out
from producer.names import QUEUES

_QUEUE_ALIASES = {q.removeprefix("triage."): q for q in QUEUES}


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ticket-triage")
def main() -> None:
    """Label support tickets: LoRA classifier, similar-ticket retrieval, frontier escalation.

    \b
    Quick start (no Redis, Qdrant or API key needed):
      triage demo
    """


@main.command()
@click.option(
    "--queues",
    "-Q",
    default="classify,escalate,writeback",
    show_default=True,
    envvar="TRIAGE_WORKER_QUEUES",
    help="Comma-separated queues to consume.",
)
@click.option(
    "--pool",
    type=click.Choice(["solo", "prefork", "threads"]),
    default=None,
    envvar="TRIAGE_WORKER_POOL",
    help="Default: threads (classify: one model pass at a time, the rest beside it).",
)
@click.option(
    "--concurrency",
    "-c",
    type=int,
    default=None,
    envvar="TRIAGE_WORKER_CONCURRENCY",
    help="Processes or threads (default: 1 for solo, 8 for threads, cores for prefork).",
)
@click.option("--loglevel", "-l", default="INFO", show_default=True)
@click.option(
    "--warmup/--no-warmup",
    default=True,
    show_default=True,
    help="Load the models before taking the first ticket.",
)
def worker(
    queues: str, pool: str | None, concurrency: int | None, loglevel: str, warmup: bool
) -> None:
    """Run a Celery worker on the given queues.

    \b
    Example: one model worker and one IO worker
      triage worker -Q classify
      triage worker -Q escalate,writeback --pool threads -c 16
    """
    from worker.runner import run_worker

    names = [_queue_name(q) for q in queues.split(",") if q.strip()]
    check_settings()
    run_worker(names, pool=pool, concurrency=concurrency, loglevel=loglevel, warmup=warmup)


@main.command()
@click.argument("source", type=click.File("r"), default="-")
@click.option("--force", is_flag=True, help="Enqueue even if this revision was enqueued before.")
def enqueue(source: Any, force: bool) -> None:
    """Enqueue tickets: a JSON object, a JSON list, or JSON lines, from a file or stdin.

    \b
    Example:
      echo '{"id": "42", "subject": "Card not arrived", "body": "..."}' | triage enqueue
    """
    from producer import TriageError, enqueue_many
    from producer.errors import InvalidTicket

    text = source.read()
    try:
        items = _parse_json_input(text)
        ids = enqueue_many(items, force=force)
    except InvalidTicket as exc:
        for err in exc.errors:
            click.echo(f"invalid ticket: {err['field']}: {err['error']}", err=True)
        sys.exit(2)
    except ValueError as exc:
        click.echo(f"not JSON: {exc}", err=True)
        sys.exit(2)
    except TriageError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(3)
    for ticket_id in ids:
        click.echo(ticket_id)


@main.command()
@click.argument("ticket_id")
@click.option("--source", default="api", show_default=True)
@click.option("--task", default="category", show_default=True)
@click.option("--wait", "wait_s", type=float, default=0.0, help="Seconds to wait for it.")
def result(ticket_id: str, source: str, task: str, wait_s: float) -> None:
    """Print a ticket's result as JSON (exit 1 while it is not decided).

    \b
    Example: triage result 42 --wait 10
    """
    import time

    from producer import TriageError, get_result

    deadline = time.monotonic() + wait_s
    while True:
        try:
            found = get_result(ticket_id, source, task)
        except TriageError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(3)
        if found is not None or time.monotonic() >= deadline:
            break
        time.sleep(0.2)
    if found is None:
        click.echo(f"no result yet for {source}/{ticket_id} ({task})", err=True)
        sys.exit(1)
    click.echo(found.model_dump_json(indent=2))


@main.command()
@click.option(
    "--limit",
    type=int,
    default=1000,
    show_default=True,
    help="Banking77 test tickets to run (0: all 3,080).",
)
@json_out("Also write the figures to this file.")
@click.option(
    "--train-examples",
    type=int,
    default=6000,
    show_default=True,
    help="Training sample for the adapter, when none exists yet.",
)
@click.option("--retrain", is_flag=True, help="Train a new adapter even if one exists.")
def demo(limit: int, json_path: Path | None, train_examples: int, retrain: bool) -> None:
    """Run the whole job on this machine: embedded Redis, local Qdrant, packaged model.

    Trains a small adapter if none exists, seeds the index, starts a worker, enqueues Banking77
    test tickets, waits for every result and prints what the cascade decided.
    """
    from cli.demo.run import run_demo

    check_settings()
    sys.exit(
        run_demo(limit=limit, json_path=json_path, train_examples=train_examples, retrain=retrain)
    )


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, envvar="TRIAGE_HTTP_HOST")
@click.option("--port", type=int, default=8000, show_default=True, envvar="TRIAGE_HTTP_PORT")
@click.option("--workers", type=int, default=1, show_default=True, envvar="TRIAGE_HTTP_WORKERS")
@click.option("--loglevel", "-l", default="info", show_default=True)
@click.option("--access-log/--no-access-log", default=False, show_default=True)
def serve(host: str, port: int, workers: int, loglevel: str, access_log: bool) -> None:
    """Serve the webhooks and the ticket API (OpenAPI at /docs with TRIAGE_HTTP_DOCS=true).

    Refuses to start while a webhook source has no secret (TRIAGE_WEBHOOK_SECRETS) or no API
    token is set (TRIAGE_API_TOKENS), unless marked insecure (TRIAGE_INSECURE_SOURCES). Slow
    clients are cut off (TRIAGE_HTTP_HEADER_TIMEOUT_S, TRIAGE_HTTP_BODY_TIMEOUT_S) and each
    process serves at most TRIAGE_HTTP_MAX_CONNECTIONS at once (beyond: 503).

    \b
    Example, for local use only:
      TRIAGE_INSECURE_SOURCES='["api","generic"]' TRIAGE_WEBHOOK_SOURCES='["generic"]' \\
        triage serve --port 8000
    """
    import uvicorn

    from producer.http.server import TimedH11Protocol
    from producer.http.settings import get_settings as http_settings

    check_settings(models=False, worker=False, http=True)
    uvicorn.run(
        "producer.http:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=loglevel,
        access_log=access_log,
        # uvicorn's own h11 protocol has no header or body read timeout; ours adds both.
        http=TimedH11Protocol,
        limit_concurrency=http_settings().http_max_connections,
    )


def _queue_name(name: str) -> str:
    name = name.strip()
    if name in QUEUES:
        return name
    if name in _QUEUE_ALIASES:
        return _QUEUE_ALIASES[name]
    raise click.BadParameter(
        f"unknown queue {name!r}; known: {', '.join(_QUEUE_ALIASES)}", param_hint="--queues"
    )


def _parse_json_input(text: str) -> list[Any]:
    text = text.strip()
    if not text:
        raise ValueError("no input")
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    return data if isinstance(data, list) else [data]


# The backfill, the model lifecycle (train, tune, eval, seed), the operations on a running stack
# (status, dead-letter list, drift) and the ledger's (export, ledger upgrade) live in their own
# modules; registered here.
for _command in (
    backfill_cli.backfill,
    train_cli.train,
    tune_cli.tune,
    evaluate_cli.evaluate,
    seed_cli.seed,
    status_cli.status,
    dead_letter_cli.dead_letter,
    drift_cli.drift,
    ledger_cli.export,
    ledger_cli.ledger,
):
    main.add_command(_command)


if __name__ == "__main__":
    main()
