"""What several `triage` commands share: option types, the options of `tune` and `eval`, and
the start-up check that reads every settings class."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

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
