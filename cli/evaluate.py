"""`triage eval`: frontier, retrieval, fine-tune and cascade scored on one held-out set.

Heavy imports happen inside the command.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from cli.options import DIR, FILE, fields, json_out, measured_adapter, text_fields

if TYPE_CHECKING:
    pass


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
@click.option(
    "--configs",
    default=",".join(("frontier", "frontier+rag", "retrieval", "fine-tune", "cascade")),
    show_default=True,
    help="Comma-separated.",
)
@click.option("--limit", type=int, default=None, help="Evaluate a spread sample of N tickets.")
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

    \b
    Example:
      triage eval --data examples/banking77/test.csv \\
        --index-data examples/banking77/train.csv --volume 100000 --json eval.json
    """
    import json

    from models.data import read_labelled
    from models.evaluation import CONFIGS, FRONTIER_CONFIGS
    from models.settings import get_settings
    from models.workbench import run_eval
    from producer.errors import TriageError

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
    fields = text_fields(opts["text_field"])
    try:
        examples = read_labelled(opts["data"], fields, opts["label_field"])
        if opts["limit"] and opts["limit"] < len(examples):
            examples = examples[:: len(examples) // opts["limit"]][: opts["limit"]]
        index_data = (
            read_labelled(opts["index_data"], fields, opts["label_field"])
            if opts["index_data"]
            else None
        )
        report = run_eval(
            opts["adapter"] or s.adapter_dir(opts["task"]),
            s,
            examples,
            index_data,
            configs=configs,
            frontier_limit=opts["frontier_limit"],
            volume=opts["volume"],
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


def _print_figures(figures: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    from models.scores import FIGURES

    table = Table(title="triage eval")
    table.add_column("configuration")
    for key in FIGURES:
        table.add_column(key, justify="right")
    for name, m in figures["configs"].items():
        table.add_row(
            name, *(f"{m[k]:.4f}" if k != "cost_per_1k" else f"${m[k]:.4f}" for k in FIGURES)
        )
    Console().print(table)
