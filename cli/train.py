"""`triage train`: a LoRA adapter for one label set, calibrated and saved where the worker looks.

Thin: it reads options (each falls back to a ``TRIAGE_*`` variable), calls `models.training`
and prints for people. Heavy imports happen inside.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from cli.options import DIR, FILE, read_inputs, shell_line, text_fields, unknown_label

if TYPE_CHECKING:
    from models.data import LabelledFile, LabelledText


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
@unknown_label(("error", "skip"))
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
    default=2e-3,
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
    "--max-length",
    type=click.IntRange(8, 8192),
    default=None,
    envvar="TRIAGE_TRAIN_MAX_LENGTH",
    help="Tokens per text; longer texts keep their head and tail [default: picked from the "
    "data, so that 95% of the texts fit whole; the adapter is served with it].",
)
@click.option(
    "--train-layers",
    type=click.IntRange(1),
    default=2,
    show_default=True,
    envvar="TRIAGE_TRAIN_LAYERS",
    help="Encoder layers LoRA trains, from the top; the frozen ones below run once per text, "
    "not per epoch (the model's layer count or more: every layer).",
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
    Example (Banking77: 4.5 CPU-minutes, about 3 min on 2 idle cores):
      triage train --data examples/banking77/train.csv
    \b
    From the ledger (what the service decided and what people corrected):
      triage export --task category --out category.csv
      triage train --data category.csv --label-field label --split-field split
    """
    from models.settings import get_settings
    from producer.errors import TriageError

    # Epoch lines (loss, held-out accuracy) go to stderr: useful when the bar is off (no TTY).
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    s = get_settings()
    task = opts["task"]
    if opts["split_field"] and opts["eval_data"]:
        raise click.UsageError("give --split-field or --eval-data, not both")
    try:
        labels = opts["labels_path"] or s.labels_path(task)
        data, eval_data = _read(opts, labels)
        examples = data.examples
        held_out = eval_data.examples if eval_data else None
        # torch comes with models.training: a bad file is reported before seconds of imports.
        from models.training import TrainConfig
        from models.training import train as run_training

        if opts["split_field"]:
            examples, held_out = _by_split(data, opts["split_field"])
        config = TrainConfig(
            labels=labels,
            train_examples=examples,
            eval_examples=held_out,
            eval_fraction=opts["eval_fraction"],
            max_train_examples=opts["max_examples"],
            base_model=opts["base_model"] or s.base_model,
            lora_r=opts["lora_r"],
            lora_alpha=opts["lora_alpha"],
            target_modules=text_fields(opts["target_modules"]) or None,
            epochs=opts["epochs"],
            patience=opts["patience"],
            learning_rate=opts["learning_rate"],
            max_length=opts["max_length"],
            train_layers=opts["train_layers"],
            batch_size=opts["batch_size"],
            seed=opts["seed"],
            device=opts["device"] or s.device,
            num_threads=opts["threads"],
        )
        out = opts["out"] or s.adapter_dir(task)
        # On a terminal a bar, elsewhere a line every few seconds (models.progress).
        report = run_training(config, out, progress=True)
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
        f"next: {_tune_line(opts, report.out_dir)}"
    )


def _read(opts: dict[str, Any], labels: Path) -> tuple[LabelledFile, LabelledFile | None]:
    """--data and --eval-data, every row checked against the label set before the model loads;
    a label set that cannot be read is reported beside the files' own problems."""
    from producer.errors import LabelSetError
    from producer.labelset import LabelSet

    broken: LabelSetError | None = None
    try:
        names: list[str] | None = LabelSet.load(labels).names
    except LabelSetError as exc:
        names, broken = None, exc
    try:
        data, eval_data = read_inputs(
            opts["data"],
            opts["eval_data"],
            opts=opts,
            labels=names,
            split_field=opts["split_field"],
        )
    except click.ClickException as exc:
        if broken is None:
            raise
        raise click.ClickException(f"{exc.message}\n{broken}") from exc
    if broken is not None:
        raise broken
    assert data is not None
    return data, eval_data


def _tune_line(opts: dict[str, Any], adapter: Path) -> str:
    """`triage tune` for this adapter, with every option it needs to read `--data` as train did,
    so the line runs as printed."""
    words: list[object] = ["triage", "tune"]
    if opts["task"] != "category":
        words += ["--task", opts["task"]]
    words += ["--adapter", adapter, "--index-data", opts["data"]]
    for name, default in (("text_field", "text"), ("label_field", "category")):
        if opts[name] != default:
            words += [f"--{name.replace('_', '-')}", opts[name]]
    if opts["unknown_label"] != "error":
        words += ["--unknown-label", opts["unknown_label"]]
    return shell_line(words)


def _by_split(
    data: LabelledFile, split_field: str
) -> tuple[list[LabelledText], list[LabelledText]]:
    """`data`'s examples parted by their row's `split_field` (checked by the reader): train,
    holdout."""
    assert data.splits is not None
    sides = data.splits
    train = [ex for ex, side in zip(data.examples, sides, strict=True) if side == "train"]
    held_out = [ex for ex, side in zip(data.examples, sides, strict=True) if side == "holdout"]
    if not held_out or not train:
        empty = "holdout" if not held_out else "train"
        raise ValueError(
            f"{data.path}: no {empty} rows in {split_field} (export with --holdout > 0)"
        )
    return train, held_out
