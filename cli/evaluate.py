"""`triage eval`: frontier, retrieval, fine-tune and cascade scored on one held-out set.

Heavy imports happen inside the command.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import click

from cli.options import (
    DIR,
    FILE,
    adapter_labels,
    fields,
    json_out,
    measured_adapter,
    read_inputs,
    text_fields,
    unknown_label,
)

#: Widest table `_print_figures` prints: an 80-column terminal.
TABLE_WIDTH = 80


@click.command(name="eval")
@click.option(
    "--data",
    type=FILE,
    required=True,
    envvar="TRIAGE_EVAL_DATA",
    help="Held-out labelled CSV/JSONL (never trained on).",
)
@measured_adapter(
    "eval", "Labelled file for a fresh in-memory index [default: the worker's index]."
)
@fields
@unknown_label(("error", "skip"))
@click.option(
    "--configs",
    default=",".join(("frontier", "frontier+rag", "retrieval", "fine-tune", "cascade")),
    show_default=True,
    help="Comma-separated.",
)
@click.option("--limit", type=int, default=None, help="Evaluate a spread sample of N tickets.")
@click.option(
    "--unknown-labels",
    default=None,
    metavar="L1,L2,...|SHARE",
    help="Score as if these labels (or a random share of the label set, e.g. 0.1) did not "
    "exist: their tickets become tickets of an unknown kind, and the report says how many "
    "were auto-labelled.",
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Draws an --unknown-labels share."
)
@click.option(
    "--frontier-limit",
    type=int,
    default=200,
    show_default=True,
    help="Tickets sent to the frontier per frontier configuration (they cost).",
)
@click.option(
    "--volume",
    type=int,
    default=None,
    envvar="TRIAGE_EVAL_VOLUME",
    help="Tickets per month: adds monthly cost and the break-even volume.",
)
@click.option(
    "--out",
    "out_dir",
    type=DIR,
    default=Path(".triage/reports"),
    show_default=True,
    help="Where report.md and report.html go.",
)
@json_out("Also write the figures as JSON (configs.<name>.<figure>).")
def evaluate(**opts: Any) -> None:
    """Score frontier, frontier+rag, retrieval, fine-tune and cascade on one held-out set.

    Runs the worker's own first pass and escalation code, without a queue. Frontier
    configurations are skipped when no frontier is configured.

    A ticket never finds itself or a copy of its text among its neighbours; the report says
    how many such overlaps were left out. Without --index-data the worker's own index is
    searched, which may hold the evaluated tickets (after `triage demo`) and labels the model
    wrote itself: give --index-data for a clean measurement.

    \b
    Example:
      triage eval --data examples/banking77/test.csv \\
        --index-data examples/banking77/train.csv --volume 100000 --json eval.json
      triage eval --data examples/banking77/test.csv \\
        --index-data examples/banking77/train.csv --configs cascade --unknown-labels 0.13
    """
    import json

    from models.evaluation import CONFIGS, FRONTIER_CONFIGS, choose_unknown
    from models.settings import get_settings
    from producer.errors import TriageError
    from producer.labelset import LabelSet

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    # One "needs review" line per unsure ticket is right for the worker, noise for a report.
    logging.getLogger("models.cascade").setLevel(logging.WARNING)
    s = get_settings()
    configs = text_fields(opts["configs"])
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        raise click.BadParameter(
            f"unknown {unknown}; known: {', '.join(CONFIGS)}", param_hint="--configs"
        )
    if not s.frontier_enabled:
        for name in configs:
            if name in FRONTIER_CONFIGS:
                click.echo(
                    f"skipping {name}: no frontier configured "
                    "(set TRIAGE_FRONTIER_PROVIDER and TRIAGE_FRONTIER_API_KEY)"
                )
    adapter: Path = opts["adapter"] or s.adapter_dir(opts["task"])
    # Every row of both files checked before the adapter loads.
    data_file, index_file = read_inputs(
        opts["data"], opts["index_data"], opts=opts, labels=adapter_labels(adapter)
    )
    # torch and the models: only once the files are known good.
    from models.classifier import LABELS_FILE
    from models.workbench import describe_index, run_eval

    try:
        spec = opts["unknown_labels"]
        labels = LabelSet.load(adapter / LABELS_FILE) if spec else None
        unknown = choose_unknown(labels, spec, opts["seed"]) if labels else []
        if unknown:
            click.echo(f"left out as unknown kinds ({len(unknown)}): {', '.join(unknown)}")
        if not opts["index_data"]:
            click.secho(
                f"WARNING: no --index-data: neighbours come from {describe_index(s, None, ())}.\n"
                "  After `triage demo` it holds the training set and test tickets labelled by "
                "the model itself. Copies of each evaluated ticket are left out of its own "
                "search, but labels the model wrote can still flatter the figures. For a clean "
                "measurement give --index-data with the training file.",
                fg="yellow",
                bold=True,
                err=True,
            )
        examples = data_file.examples if data_file else []
        if opts["limit"] and opts["limit"] < len(examples):
            examples = examples[:: len(examples) // opts["limit"]][: opts["limit"]]
        index_data = index_file.examples if index_file else None
        report = run_eval(
            adapter,
            s,
            examples,
            index_data,
            configs=configs,
            frontier_limit=opts["frontier_limit"],
            volume=opts["volume"],
            unknown_labels=unknown,
        )
    except (TriageError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    out: Path = opts["out_dir"]
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.md").write_text(report.markdown(), encoding="utf-8")
    (out / "report.html").write_text(report.html(), encoding="utf-8")
    figures = report.figures()
    if opts["json_path"]:
        opts["json_path"].write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    _print_figures(figures)
    click.echo(f"report: {out / 'report.md'}, {out / 'report.html'}")


def _print_figures(figures: dict[str, Any], console: Any = None) -> None:
    """The report's tables (`models.report.tables`), the overlaps left out and the index."""
    from rich.console import Console
    from rich.table import Table

    from models.report import tables

    console = console or Console(width=min(Console().width, TABLE_WIDTH))
    for t in tables(figures):
        table = Table(title=t.title, title_justify="left")
        for i, heading in enumerate(t.headings):
            table.add_column(heading, justify="left" if i == 0 else "right", no_wrap=True)
        for row in t.rows:
            table.add_row(*row)
        console.print(table)
    meta = figures.get("meta", {})
    if "overlaps_excluded" in meta:
        c = meta["overlaps_excluded"]
        console.print(
            f"overlaps left out of the neighbours: {c['copies']:,} copies of the ticket's own "
            f"text and {c['own']:,} own points, in {c['tickets']:,} tickets"
        )
    if "index" in meta:
        console.print(f"index: {meta['index']}")
