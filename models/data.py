"""Where the shipped example data lives, and reading labelled tickets from CSV/JSONL files."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
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
    text_field: str = "text",
    label_field: str = "category",
) -> list[LabelledText]:
    """Labelled examples from a CSV (header row) or JSONL file."""
    return list(iter_labelled(path, text_field, label_field))


def iter_labelled(
    path: str | Path,
    text_field: str = "text",
    label_field: str = "category",
) -> Iterator[LabelledText]:
    path = Path(path)
    if path.suffix == ".jsonl":
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    row = json.loads(line)
                    yield LabelledText(str(row[text_field]), str(row[label_field]))
        return
    with path.open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            yield LabelledText(row[text_field], row[label_field])
