"""What several `triage` commands share: option types, the options of `tune` and `eval`, reading
labelled files (every problem at once, before any work), and the start-up check that reads every
settings class."""

from __future__ import annotations

import shlex
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from models.data import UNKNOWN_CHOICES

if TYPE_CHECKING:
    from models.data import LabelledFile

F = TypeVar("F", bound=Callable[..., Any])

FILE = click.Path(exists=True, dir_okay=False, path_type=Path)
DIR = click.Path(file_okay=False, path_type=Path)


def measured_adapter(command: str, index_help: str) -> Callable[[F], F]:
    """`--task`, `--adapter`, `--index-data`, `--text-field`, `--label-field` of a command that
    measures an adapter (`tune`, `eval`); each falls back to ``TRIAGE_<COMMAND>_*``."""
    prefix = f"TRIAGE_{command.upper()}"
    options = [
        click.option("--task", default="category", show_default=True, envvar="TRIAGE_TASK"),
        click.option(
            "--adapter",
            type=DIR,
            envvar=f"{prefix}_ADAPTER",
            help="Adapter directory [default: the worker's for the task].",
        ),
        click.option("--index-data", type=FILE, envvar=f"{prefix}_INDEX_DATA", help=index_help),
    ]

    def decorate(fn: F) -> F:
        for option in reversed(options):
            fn = option(fn)
        return fn

    return decorate


def fields(fn: F) -> F:
    """`--text-field` and `--label-field` of a labelled file."""
    fn = click.option("--label-field", default="category", show_default=True)(fn)
    return click.option("--text-field", default="text", show_default=True)(fn)


#: What each `--unknown-label` choice does, for its help and for the hint of an error.
_UNKNOWN_MEANING = {
    "error": "stop, listing every such row",
    "skip": "leave those rows out",
    "out-of-scope": "keep them apart as out-of-scope tickets",
}


def unknown_label(choices: Sequence[str] = UNKNOWN_CHOICES) -> Callable[[F], F]:
    """`--unknown-label`: what a row whose label is outside the label set means."""
    return click.option(
        "--unknown-label",
        type=click.Choice(list(choices)),
        default="error",
        show_default=True,
        envvar="TRIAGE_UNKNOWN_LABEL",
        help="Rows whose label is not in the label set: "
        + "; ".join(f"{c}: {_UNKNOWN_MEANING[c]}" for c in choices)
        + ".",
    )


def read_inputs(
    *paths: Path | None,
    opts: Mapping[str, Any],
    labels: Collection[str] | None,
    split_field: str | None = None,
) -> list[LabelledFile | None]:
    """Each labelled file of `paths` (None where a path is None), read with the command's
    `--text-field`, `--label-field` and `--unknown-label`; the problems of all of them stop the
    command at once, before any model loads. Notes (cut texts, skipped rows) go to stderr."""
    from models.data import DataError, LabelledReader

    reader = LabelledReader(
        text_fields(opts["text_field"]),
        opts["label_field"],
        labels=labels,
        unknown=opts["unknown_label"],
        split_field=split_field,
    )
    found = [reader.read(path) if path is not None else None for path in paths]
    try:
        reader.check()
    except DataError as exc:
        message = str(exc)
        if any(p.kind == "unknown label" for p in exc.problems):
            message += _unknown_label_hint()
        raise click.ClickException(message) from exc
    for file in found:
        for note in file.notes() if file else ():
            click.echo(f"warning: {note}", err=True)
    return found


def _unknown_label_hint() -> str:
    """The running command's `--unknown-label` choices that go on without those rows."""
    ctx = click.get_current_context(silent=True)
    params = ctx.command.params if ctx else []
    option = next((p for p in params if p.name == "unknown_label"), None)
    if option is None or not isinstance(option.type, click.Choice):
        return ""
    choices = [str(c) for c in option.type.choices if c != "error"]
    ways = [f"--unknown-label {c} ({_UNKNOWN_MEANING[c]})" for c in choices]
    return ", or pass " + " or ".join(ways)


def adapter_labels(adapter: Path) -> list[str]:
    """The label names an adapter was trained on (its labels.json), without loading a model."""
    from producer.errors import LabelSetError
    from producer.labelset import LabelSet

    path = adapter / "labels.json"  # models.classifier.LABELS_FILE, a torch import away
    if not path.is_file():
        raise click.ClickException(
            f"no adapter at {adapter} (no labels.json): train one with `triage train`, "
            "or name it with --adapter"
        )
    try:
        return LabelSet.load(path).names
    except LabelSetError as exc:
        raise click.ClickException(str(exc)) from exc


def shell_line(words: Sequence[object]) -> str:
    """A command line to print for people to copy: each word quoted where the shell needs it."""
    return " ".join(shlex.quote(str(w)) for w in words)


def json_out(help: str) -> Callable[[F], F]:
    """`--json PATH`: also write the figures there."""
    return click.option(
        "--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), help=help
    )


def check_settings(*, models: bool = True, worker: bool = True, http: bool = False) -> None:
    """Read the settings classes now, so a bad variable stops the start with its name."""
    from pydantic import ValidationError

    from producer.settings import get_settings as producer_settings

    try:
        producer_settings()
        if models:
            from models.settings import get_settings as model_settings

            model_settings()
        if worker:
            from worker.settings import get_settings as worker_settings

            worker_settings()
        if http:
            from producer.http.settings import get_settings as http_settings

            http_settings()
    except ValidationError as exc:
        raise click.UsageError(f"invalid configuration (TRIAGE_* variables):\n{exc}") from exc


def text_fields(value: str) -> tuple[str, ...]:
    """Comma-separated column names, e.g. ``subject,body``."""
    return tuple(f.strip() for f in value.split(",") if f.strip())
