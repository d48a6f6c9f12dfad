"""`triage export` (the training set from the ledger) and `triage ledger upgrade` (its schema).

Thin: options, then `producer.ledger`. Exit codes: 0 done, 2 the ledger cannot be used as it
is (an unmigrated schema, a bad URL), 3 the ledger did not answer.
"""

from __future__ import annotations

import csv
import json
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING

import click

from producer.ledger import ExportRow, LedgerError, LedgerUnavailable

if TYPE_CHECKING:
    from producer.ledger import Ledger

#: The columns of an export, in order: `triage train --label-field label --split-field split`
#: reads the first three; the rest say where each row came from.
COLUMNS = ("text", "label", "split", "source", "ticket_id", "set_by")
UNUSABLE_EXIT, UNAVAILABLE_EXIT = 2, 3


@click.command()
@click.option("--task", default="category", show_default=True, envvar="TRIAGE_TASK")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="File to write (.jsonl: JSON lines, else CSV) [default: CSV on stdout].",
)
@click.option(
    "--holdout",
    type=click.FloatRange(0.0, 1.0, max_open=True),
    default=0.1,
    show_default=True,
    help="Share of tickets marked split=holdout, chosen by a hash of each ticket's identity: "
    "a ticket stays on its side in every export.",
)
@click.option(
    "--humans-only", is_flag=True, help="Only tickets a person labelled (no model labels)."
)
@click.option(
    "--database-url", envvar="TRIAGE_DATABASE_URL", help="The ledger [default: settings]."
)
def export(
    task: str, out: Path | None, holdout: float, humans_only: bool, database_url: str | None
) -> None:
    """Write the training set of a task from the ledger: each ticket's latest person's label,
    else the model's label when it labelled the ticket on its own.

    \b
    Example: retrain on what the service decided and what people corrected
      triage export --task category --out category.csv
      triage train --task category --data category.csv --label-field label --split-field split
    """
    with _ledger(database_url) as ledger, _output(out) as fh:
        rows = ledger.export(task, holdout=holdout, humans_only=humans_only)
        counts = write_rows(fh, rows, jsonl=out is not None and out.suffix == ".jsonl")
    total = sum(counts.values())
    by_human = counts["human", "train"] + counts["human", "holdout"]
    held = counts["human", "holdout"] + counts["model", "holdout"]
    click.echo(
        f"{total} tickets of {task} ({by_human} labelled by a person, {total - by_human} by the "
        f"model); {held} held out" + (f"; written to {out}" if out else ""),
        err=True,
    )
    if total == 0:
        click.echo(f"note: the ledger holds no labelled ticket of task {task!r}", err=True)


@click.group()
def ledger() -> None:
    """The ledger, the store of record (TRIAGE_DATABASE_URL, else SQLite in TRIAGE_DATA_DIR).

    \b
    Example: before the workers and the API start (compose's `migrate` service)
      triage ledger upgrade
    """


@ledger.command()
@click.option(
    "--database-url", envvar="TRIAGE_DATABASE_URL", help="The ledger [default: settings]."
)
def upgrade(database_url: str | None) -> None:
    """Bring the ledger's schema to the newest revision (safe to run again, and while workers
    use it). A SQLite ledger does this itself when opened; PostgreSQL needs it once per release.
    """
    from producer.ledger import migrate

    with _mapped():
        url = _url(database_url)
        revision = migrate(url)
    click.echo(f"the ledger at {_shown(url)} is at schema revision {revision}")


def write_rows(fh: IO[str], rows: Iterable[ExportRow], *, jsonl: bool) -> Counter[tuple[str, str]]:
    """Write `rows` as CSV (with a header) or JSON lines; count them by (set_by, split)."""
    counts: Counter[tuple[str, str]] = Counter()
    writer = None if jsonl else csv.DictWriter(fh, fieldnames=COLUMNS)
    if writer is not None:
        writer.writeheader()
    for row in rows:
        record = {name: getattr(row, name) for name in COLUMNS}
        if writer is not None:
            writer.writerow(record)
        else:
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        counts[row.set_by, row.split] += 1
    return counts


@contextmanager
def _ledger(database_url: str | None) -> Iterator[Ledger]:
    from producer.ledger import Ledger

    with _mapped(), Ledger.open(_url(database_url)) as opened:
        yield opened


@contextmanager
def _mapped() -> Iterator[None]:
    try:
        yield
    except LedgerUnavailable as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(UNAVAILABLE_EXIT)
    except LedgerError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(UNUSABLE_EXIT)


@contextmanager
def _output(out: Path | None) -> Iterator[IO[str]]:
    if out is None:
        yield sys.stdout
        return
    # Written beside and renamed: a failed export leaves no half file for `train` to read.
    partial = out.with_name(f".{out.name}.partial")
    try:
        with partial.open("w", encoding="utf-8", newline="") as fh:
            yield fh
        partial.replace(out)
    finally:
        partial.unlink(missing_ok=True)


def _url(database_url: str | None) -> str:
    """The option's URL in the form the ledger speaks (``postgresql://`` means psycopg 3)."""
    from pydantic import ValidationError

    from producer.ledger import LedgerSettings, get_settings

    if not database_url:
        return get_settings().resolved_database_url
    try:
        return LedgerSettings(database_url=database_url).resolved_database_url
    except ValidationError as exc:
        raise click.BadParameter(str(exc.errors()[0]["msg"]), param_hint="--database-url") from exc


def _shown(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
