"""The model lifecycle commands of `triage`: `train`, `tune` and `eval`.

Thin: they read options (each falls back to a ``TRIAGE_*`` variable), call `models.training`,
`models.tuning` and `models.evaluation`, and print for people. Heavy imports happen inside.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from cli.options import DIR, FILE, fields, json_out, measured_adapter

if TYPE_CHECKING:
    from models.data import LabelledText


def _fields(value: str) -> tuple[str, ...]:
    return tuple(f.strip() for f in value.split(",") if f.strip())


@click.command()
@click.option(
    "--data",
    "data",
    type=FILE,
    required=True,
    envvar="TRIAGE_TRAIN_DATA",
    help="Labelled CSV (header row) or JSONL.",
)
@click.option(
    "--task",
    default="category",
    show_default=True,
    envvar="TRIAGE_TASK",
    help="Label task; picks the label set and the default output directory.",
)
@click.option(
    "--labels",
    "labels_path",
    type=FILE,
    envvar="TRIAGE_TRAIN_LABELS",
    help="Label-set JSON file [default: TRIAGE_LABELS for the task].",
)
@click.option(
    "--out",
    type=DIR,
    envvar="TRIAGE_TRAIN_OUT",
    help="Adapter directory [default: where the worker looks for the task].",
)
@click.option(
    "--eval-data",
    type=FILE,
    envvar="TRIAGE_TRAIN_EVAL_DATA",
    help="Held-out file; default: a stratified --eval-fraction of --data.",
)
@click.option(
    "--text-field",
    default="text",
    show_default=True,
    envvar="TRIAGE_TRAIN_TEXT_FIELD",
    help="Text column(s), comma-separated (joined by a newline, like subject+body).",
)
@click.option(
    "--label-field", default="category", show_default=True, envvar="TRIAGE_TRAIN_LABEL_FIELD"
)
@click.option(
    "--split-field",
    default=None,
    envvar="TRIAGE_TRAIN_SPLIT_FIELD",
    help="Column saying train or holdout per row (`triage export`'s split): the holdout rows "
    "are the held-out set, instead of --eval-data or --eval-fraction.",
)
@click.option(
    "--base-model",
    envvar="TRIAGE_BASE_MODEL",
    help="Stable name, local path or cached HF id [default: all-MiniLM-L6-v2].",
)
@click.option("--epochs", type=int, default=4, show_default=True, envvar="TRIAGE_TRAIN_EPOCHS")
@click.option(
    "--patience",
    type=int,
    default=2,
    show_default=True,
    envvar="TRIAGE_TRAIN_PATIENCE",
    help="Early stopping: epochs without progress.",
)
@click.option(
    "--learning-rate",
    "--lr",
    type=float,
    default=1e-3,
    show_default=True,
    envvar="TRIAGE_TRAIN_LEARNING_RATE",
)
@click.option("--lora-r", type=int, default=16, show_default=True, envvar="TRIAGE_TRAIN_LORA_R")
@click.option(
    "--lora-alpha", type=int, default=32, show_default=True, envvar="TRIAGE_TRAIN_LORA_ALPHA"
)
@click.option(
    "--target-modules",
    default="",
    envvar="TRIAGE_TRAIN_TARGET_MODULES",
    help="Comma-separated module names LoRA wraps [default: per model type].",
)
@click.option(
    "--max-length", type=int, default=64, show_default=True, envvar="TRIAGE_TRAIN_MAX_LENGTH"
)
@click.option(
    "--batch-size", type=int, default=32, show_default=True, envvar="TRIAGE_TRAIN_BATCH_SIZE"
)
@click.option(
    "--eval-fraction",
    type=float,
    default=0.2,
    show_default=True,
    envvar="TRIAGE_TRAIN_EVAL_FRACTION",
)
@click.option(
    "--max-examples",
    type=int,
    default=None,
    envvar="TRIAGE_TRAIN_MAX_EXAMPLES",
    help="Stratified cap on the examples used.",
)
@click.option("--seed", type=int, default=0, show_default=True, envvar="TRIAGE_TRAIN_SEED")
@click.option("--device", default=None, envvar="TRIAGE_DEVICE", help="auto, cpu or cuda.")
@click.option(
    "--threads",
    type=int,
    default=None,
    envvar="TRIAGE_TRAIN_THREADS",
    help="CPU threads [default: all cores; 1 is faster on a shared, busy machine].",
)
def train(**opts: Any) -> None:
    """Train a LoRA adapter for one label set, calibrate it and save it where the worker looks.

    \b
    Example (Banking77, ~7 min on 2 CPU cores):
      triage train --data examples/banking77/train.csv --epochs 6 --patience 3
    \b
    From the ledger (what the service decided and what people corrected):
      triage export --task category --out category.csv
      triage train --data category.csv --label-field label --split-field split
    """
    from models.data import read_labelled
    from models.settings import get_settings
    from models.training import TrainConfig
    from models.training import train as run_training
    from producer.errors import TriageError

    # Epoch lines (loss, held-out accuracy) go to stderr: useful when the bar is off (no TTY).
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    s = get_settings()
    task = opts["task"]
    text_fields = _fields(opts["text_field"])
    if opts["split_field"] and opts["eval_data"]:
        raise click.UsageError("give --split-field or --eval-data, not both")
    try:
        labels = opts["labels_path"] or s.labels_path(task)
        examples = read_labelled(opts["data"], text_fields, opts["label_field"])
        held_out = (
            read_labelled(opts["eval_data"], text_fields, opts["label_field"])
            if opts["eval_data"]
            else None
        )
        if opts["split_field"]:
            examples, held_out = _by_split(opts["data"], examples, opts["split_field"])
        config = TrainConfig(
            labels=labels,
            train_examples=examples,
            eval_examples=held_out,
            eval_fraction=opts["eval_fraction"],
            max_train_examples=opts["max_examples"],
            base_model=opts["base_model"] or s.base_model,
            lora_r=opts["lora_r"],
            lora_alpha=opts["lora_alpha"],
            target_modules=_fields(opts["target_modules"]) or None,
            epochs=opts["epochs"],
            patience=opts["patience"],
            learning_rate=opts["learning_rate"],
            max_length=opts["max_length"],
            batch_size=opts["batch_size"],
            seed=opts["seed"],
            device=opts["device"] or s.device,
            num_threads=opts["threads"],
        )
        out = opts["out"] or s.adapter_dir(task)
        report = run_training(config, out, progress=sys.stderr.isatty())
    except (TriageError, ValueError, KeyError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(
        f"adapter {report.version} saved to {report.out_dir}\n"
        f"  held-out accuracy {report.eval_accuracy:.4f} (best epoch {report.best_epoch} "
        f"of {report.epochs_run}), {report.eval_examples} held-out / "
        f"{report.train_examples} train examples\n"
        f"  temperature {report.temperature:.3f}, ECE {report.ece_before:.4f} -> "
        f"{report.ece_after:.4f}\n"
        f"  trained in {report.train_time_s:.0f} s ({report.examples_per_s:.0f} examples/s)\n"
        f"next: triage tune --adapter {report.out_dir} --index-data {opts['data']}"
    )


def _by_split(
    path: Path, examples: list[LabelledText], split_field: str
) -> tuple[list[LabelledText], list[LabelledText]]:
    """`examples` (read from `path`) parted by their row's `split_field`: train, holdout."""
    from models.data import iter_labelled

    # The split column, read row for row by the same reader as the examples (as a one-column
    # "text"), so the two line up and a missing column is reported the same way.
    sides = [row.text for row in iter_labelled(path, split_field, split_field)]
    unknown = sorted(set(sides) - {"train", "holdout"})
    if unknown:
        raise ValueError(f"{path}: {split_field} holds {unknown[:3]}; expected train or holdout")
    train = [ex for ex, side in zip(examples, sides, strict=True) if side == "train"]
    held_out = [ex for ex, side in zip(examples, sides, strict=True) if side == "holdout"]
    if not held_out or not train:
        empty = "holdout" if not held_out else "train"
        raise ValueError(f"{path}: no {empty} rows in {split_field} (export with --holdout > 0)")
    return train, held_out


@click.command()
@measured_adapter(
    "tune",
    "Labelled file to build a fresh in-memory neighbour index from (the held-out tickets are "
    "left out); default: the worker's configured index.",
)
@click.option(
    "--held-out",
    type=FILE,
    envvar="TRIAGE_TUNE_HELD_OUT",
    help="Held-out tickets to tune on [default: the split `triage train` saved].",
)
@fields
@click.option(
    "--precision",
    "target_precision",
    type=float,
    default=None,
    envvar="TRIAGE_TUNE_PRECISION",
    help="Target precision of auto-labelled tickets [default: 0.99].",
)
@click.option(
    "--max-escalation",
    type=float,
    default=None,
    envvar="TRIAGE_TUNE_MAX_ESCALATION",
    help="Instead: the largest share of tickets that may escalate.",
)
@click.option(
    "--confidence",
    type=float,
    default=0.95,  # TuneTarget.confidence (models.tuning is a heavy import for --help)
    show_default=True,
    envvar="TRIAGE_TUNE_CONFIDENCE",
    help="One-sided confidence that the target precision holds on new tickets (Wilson "
    "lower bound on the tuning tickets); 0.5 takes the observed precision as it is.",
)
@click.option("--folds", type=int, default=5, show_default=True)
def tune(**opts: Any) -> None:
    """Choose the cascade thresholds and mix on held-out tickets; write policy.json.

    The worker reads <adapter>/policy.json in preference to the TRIAGE_*_THRESHOLD settings.

    \b
    Example:
      triage tune --index-data examples/banking77/train.csv --precision 0.99
    """
    from models.data import read_labelled
    from models.settings import get_settings
    from models.tuning import TuneTarget
    from models.workbench import run_tune
    from producer.errors import TriageError

    s = get_settings()
    adapter = opts["adapter"] or s.adapter_dir(opts["task"])
    try:
        target = TuneTarget(
            precision=(
                opts["target_precision"] or (0.99 if opts["max_escalation"] is None else None)
            ),
            max_escalation=opts["max_escalation"],
            folds=opts["folds"],
            confidence=opts["confidence"],
        )
        index_data = (
            read_labelled(opts["index_data"], _fields(opts["text_field"]), opts["label_field"])
            if opts["index_data"]
            else None
        )
        held_out = (
            read_labelled(opts["held_out"], _fields(opts["text_field"]), opts["label_field"])
            if opts["held_out"]
            else None
        )
        report = run_tune(adapter, s, index_data, target, held_out)
    except (TriageError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    p, cal = report.policy, report.calibration
    click.echo(
        f"policy written to {adapter / 'policy.json'}\n"
        f"  classifier_threshold {p.classifier_threshold:.4f}, retrieval_threshold "
        f"{p.retrieval_threshold:.4f}, classifier_weight {p.classifier_weight}, "
        f"vote_temperature {p.vote_temperature}, neighbours {p.neighbours}\n"
        f"  cross-validated: coverage {report.cv_coverage:.3f} at precision "
        f"{report.cv_precision:.4f}; full-coverage accuracy {report.accuracy:.4f}\n"
        f"  ECE raw {cal['ece_raw']:.4f}, temperature {cal['temperature']:.3f} -> "
        f"{cal['ece_temperature']:.4f}, isotonic (out of fold) {cal['ece_isotonic_cv']:.4f}"
    )


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
    configs = _fields(opts["configs"])
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
    fields = _fields(opts["text_field"])
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
