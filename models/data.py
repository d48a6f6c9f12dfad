"""Where the shipped example data lives, and reading labelled tickets from CSV/JSONL files."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

_REPO_EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
_PACKAGED_EXAMPLES = Path(__file__).resolve().parent / "examples"


def examples_dir() -> Path:
    """The shipped examples: in the checkout, or inside the installed package (wheel installs)."""
    return _REPO_EXAMPLES if _REPO_EXAMPLES.is_dir() else _PACKAGED_EXAMPLES


@dataclass(frozen=True)
class LabelledText:
    text: str
    label: str


def read_labelled(
    path: str | Path,
    text_field: str | Sequence[str] = "text",
    label_field: str = "category",
) -> list[LabelledText]:
    """Labelled examples from a CSV (header row) or JSONL file.

    Several text fields (e.g. ``("subject", "body")``) are joined by a newline, as
    `Ticket.text` joins a ticket's subject and body, so training reads what the worker reads.
    """
    return list(iter_labelled(path, text_field, label_field))


def iter_labelled(
    path: str | Path,
    text_field: str | Sequence[str] = "text",
    label_field: str = "category",
) -> Iterator[LabelledText]:
    path = Path(path)
    fields = [text_field] if isinstance(text_field, str) else list(text_field)
    for number, row in enumerate(_rows(path), start=2 if path.suffix != ".jsonl" else 1):
        missing = [f for f in (*fields, label_field) if f not in row]
        if missing:
            raise ValueError(
                f"{path}:{number} has no field {missing[0]!r} (fields: {sorted(row)}); "
                "name the right ones with --text-field / --label-field"
            )
        text = "\n".join(str(row[f]) for f in fields if row[f] not in (None, "")).strip()
        yield LabelledText(text, str(row[label_field]))


def write_labelled(
    path: str | Path, examples: Iterable[LabelledText], label_field: str = "category"
) -> None:
    """Write examples as JSONL (``text`` and `label_field`), readable by `read_labelled`."""
    with Path(path).open("w", encoding="utf-8") as fh:
        for ex in examples:
            fh.write(json.dumps({"text": ex.text, label_field: ex.label}) + "\n")


def _rows(path: Path) -> Iterator[dict[str, object]]:
    if path.suffix == ".jsonl":
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    yield dict(json.loads(line))
        return
    with path.open(encoding="utf-8", newline="") as fh:
        yield from csv.DictReader(fh)
