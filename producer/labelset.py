"""A label set ("task"): a JSON file of labels, each with an optional one-line description.

The classifier head, the frontier tool schema (an enum) and the evaluation all read the same file::

    {"task": "category", "labels": [{"name": "card_arrival", "description": "..."}]}

A label may be given as its name alone (``"labels": ["bug", "feature", "question"]``); the
description (what the frontier model and the review desk are told the label means) is then
empty. docs/tasks.md documents the format.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from producer.errors import LabelSetError


@dataclass(frozen=True)
class Label:
    name: str
    description: str


@dataclass(frozen=True)
class LabelSet:
    task: str
    labels: tuple[Label, ...]

    @classmethod
    def load(cls, path: str | Path) -> LabelSet:
        path = Path(path)
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise LabelSetError(f"label set {path} does not exist") from exc
        except (OSError, ValueError) as exc:
            raise LabelSetError(f"label set {path} is not readable JSON: {exc}") from exc
        return cls.from_dict(raw, origin=str(path))

    @classmethod
    def from_dict(cls, raw: object, origin: str = "<dict>") -> LabelSet:
        if not isinstance(raw, dict) or not isinstance(raw.get("labels"), list):
            raise LabelSetError(f"label set {origin} needs a 'labels' list")
        labels: list[Label] = []
        for i, item in enumerate(raw["labels"]):
            if isinstance(item, str):
                item = {"name": item}
            name = item.get("name") if isinstance(item, dict) else None
            if not isinstance(name, str) or not name.strip():
                raise LabelSetError(f"label set {origin}: labels[{i}] needs a non-empty 'name'")
            if name != name.strip():  # data rows are read stripped: this name would match none
                raise LabelSetError(
                    f"label set {origin}: labels[{i}] {name!r} starts or ends with whitespace"
                )
            description = item.get("description")
            if description is not None and not isinstance(description, str):
                raise LabelSetError(
                    f"label set {origin}: labels[{i}] ({name}) has a description that is not text"
                )
            labels.append(Label(name, description or ""))
        names = [label.name for label in labels]
        if len(set(names)) != len(names):
            dupes = sorted({n for n in names if names.count(n) > 1})
            raise LabelSetError(f"label set {origin} repeats labels: {dupes}")
        if len(labels) < 2:
            raise LabelSetError(f"label set {origin} needs at least two labels")
        return cls(task=str(raw.get("task", "category")), labels=tuple(labels))

    def to_dict(self) -> dict[str, object]:
        return {
            "task": self.task,
            "labels": [{"name": lb.name, "description": lb.description} for lb in self.labels],
        }

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")

    @cached_property
    def names(self) -> list[str]:
        return [label.name for label in self.labels]

    @cached_property
    def index(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.names)}

    def __len__(self) -> int:
        return len(self.labels)

    def __contains__(self, name: object) -> bool:
        return name in self.index
