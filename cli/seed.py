"""`triage seed`: a task's labelled tickets into the worker's neighbour index, or refreshed there.

Thin: it reads options, checks the whole file (`cli.options.read_inputs`) before loading the
embedder, and calls `models.seeding.seed_index` on the index and embedder the worker builds.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from cli.options import FILE, adapter_labels, check_settings, read_inputs, unknown_label

if TYPE_CHECKING:
    from models.settings import ModelSettings


@click.command()
@click.option(
    "--data",
    type=FILE,
    required=True,
    envvar="TRIAGE_SEED_DATA",
    help="Labelled CSV (header row) or JSONL.",
)
@click.option("--task", default="category", show_default=True, envvar="TRIAGE_TASK")
@click.option(
    "--labels",
    "labels_path",
    type=FILE,
    envvar="TRIAGE_SEED_LABELS",
    help="Label-set JSON [default: the task's adapter's labels.json, else TRIAGE_LABELS].",
)
@click.option(
    "--text-field",
    default="text",
    show_default=True,
    help="Text column(s), comma-separated (joined by a newline, like subject+body).",
)
@click.option("--label-field", default="category", show_default=True)
@unknown_label(("error", "skip"))
@click.option(
    "--source",
    default="seed",
    show_default=True,
    help="Source the seeded tickets carry (a neighbour shows it).",
)
@click.option(
    "--replace",
    is_flag=True,
    help="Also remove the tickets of this --source that the file no longer holds (rows "
    "dropped since an earlier seed), after every row is in. The worker's own tickets and "
    "other sources stay.",
)
def seed(**opts: Any) -> None:
    """Put labelled tickets into the worker's neighbour index for a task (or refresh them).

    Each ticket is stored with a human label and an id made from its text, so running the
    command again with the same or a corrected file replaces those tickets instead of adding
    copies; a row dropped from the file stays in the index unless --replace. A worker in
    local mode (no TRIAGE_QDRANT_URL) holds the index: stop it first.

    \b
    Example:
      triage seed --data examples/banking77/train.csv
      triage seed --data examples/banking77/train.csv --replace
      triage seed --task team --data tickets.csv --text-field subject,body --label-field team
    """
    from models.assembly import load_embedder, open_index
    from models.seeding import seed_index
    from models.settings import get_settings
    from producer.errors import TriageError

    check_settings(worker=False)
    # Progress lines when stderr is not a terminal (a log file), nothing else of INFO's noise.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s")
    logging.getLogger("triage.progress").setLevel(logging.INFO)
    s = get_settings()
    task = opts["task"]
    (data,) = read_inputs(opts["data"], opts=opts, labels=_labels(opts, s.adapter_dir(task), s))
    assert data is not None
    where = s.qdrant_url or s.qdrant_path
    try:
        index = open_index(s)
    except Exception as exc:  # qdrant's local mode raises RuntimeError on a held storage
        raise click.ClickException(
            f"cannot open the index at {where}: {exc}\n(a worker in local mode holds it: stop "
            "it while seeding, or serve Qdrant and set TRIAGE_QDRANT_URL)"
        ) from exc
    try:
        report = seed_index(
            index,
            load_embedder(s),  # the worker's, so seeded and served vectors agree
            task,
            data.examples,
            source=opts["source"],
            labelled_by=f"triage seed {Path(opts['data']).name}",
            replace=opts["replace"],
        )
    except TriageError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        index.close()
    repeated = report.rows - report.tickets
    click.echo(
        f"seeded {report.tickets:,} tickets of {task} from {opts['data']}"
        + (f" ({report.rows:,} rows; {repeated:,} repeat a text)" if repeated else "")
        + (f"; removed {report.removed:,} no longer in the file" if opts["replace"] else "")
        + f" in {report.seconds:.0f} s; the index at {where} holds {report.index_total:,}"
    )
    if report.conflicts:
        click.echo(
            "warning: texts seen with more than one label (each keeps its last row's): "
            f"{report.conflicts:,}",
            err=True,
        )


def _labels(opts: dict[str, Any], adapter: Path, s: ModelSettings) -> list[str]:
    """The label names a seeded ticket may carry: --labels, else what the task's adapter was
    trained on (what the worker serves), else the task's configured label set."""
    from producer.errors import LabelSetError
    from producer.labelset import LabelSet

    if opts["labels_path"] is None and (adapter / "labels.json").is_file():
        return adapter_labels(adapter)
    try:
        return LabelSet.load(opts["labels_path"] or s.labels_path(opts["task"])).names
    except (LabelSetError, KeyError) as exc:
        raise click.ClickException(str(exc.args[0])) from exc
