"""Labelled tickets from CSV/JSONL files, checked whole before any work starts; where the shipped
example data lives.

One reader for `triage train`, `tune`, `eval` and `seed`: every row problem of a file (not UTF-8,
NUL bytes, not a JSON object, missing fields, empty texts, labels outside the set) is collected
with its file:line and raised at once as a `DataError`, so a command fails in a second with the
whole list instead of minutes later on the first bad row. Texts longer than a ticket's body may
be (`producer.schemas.MAX_BODY_CHARS`) are cut head-and-tail (`models.truncation.cut_chars`), so
every command accepts what the store accepts. docs/tasks.md documents the formats.
"""

from __future__ import annotations

import csv
import difflib
import io
import json
import re
import sys
from collections import Counter
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from models.truncation import cut_chars
from producer.errors import PermanentError
from producer.schemas import MAX_BODY_CHARS

_REPO_EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
_PACKAGED_EXAMPLES = Path(__file__).resolve().parent / "examples"

#: What to do with a row whose label is not in the label set: stop (the default), leave it out,
#: or keep it apart as an out-of-scope ticket (`LabelledFile.out_of_scope`).
Unknown = Literal["error", "skip", "out-of-scope"]
UNKNOWN_CHOICES: tuple[Unknown, ...] = ("error", "skip", "out-of-scope")
#: A text is cut to what a ticket's body may hold: train, tune, eval and the index see one text.
MAX_TEXT_CHARS = MAX_BODY_CHARS
#: Values of a split column (`triage export`'s ``split``).
SPLITS = ("train", "holdout")
#: Problems listed in a `DataError`'s message; the rest are counted.
MAX_SHOWN = 20
JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")


def examples_dir() -> Path:
    """The shipped examples: in the checkout, or inside the installed package (wheel installs)."""
    return _REPO_EXAMPLES if _REPO_EXAMPLES.is_dir() else _PACKAGED_EXAMPLES


@dataclass(frozen=True)
class LabelledText:
    text: str
    label: str


@dataclass(frozen=True)
class Problem:
    """One bad row: where (the line it starts on; 1 is a CSV's header) and what."""

    path: Path
    line: int
    kind: str
    detail: str
    #: The offending value where one is worth counting (an unknown label).
    value: str = ""

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.detail}"


class DataError(PermanentError):
    """The rows of one or more labelled files that cannot be used, all of them (`problems`)."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__(describe(self.problems))


@dataclass
class LabelledFile:
    """What `read_checked` found in one file."""

    path: Path
    #: Rows with a label of the set (every row when no set was given), in file order.
    examples: list[LabelledText] = field(default_factory=list)
    #: Each example's split (``train``/``holdout``) when a split column was named.
    splits: list[str] | None = None
    #: Rows whose label is outside the set, under ``unknown="out-of-scope"``: their own label
    #: kept, for an evaluation of tickets of a kind the model does not know.
    out_of_scope: list[LabelledText] = field(default_factory=list)
    #: Rows left out for a label outside the set (``unknown="skip"``), by label.
    skipped: Counter[str] = field(default_factory=Counter)
    #: Texts cut to `MAX_TEXT_CHARS`.
    cut: int = 0

    def notes(self) -> list[str]:
        """Warnings for people: what was cut, left out or kept apart."""
        out = []
        if self.cut:
            out.append(
                f"{self.path}: texts over {MAX_TEXT_CHARS:,} characters (a ticket body's limit) "
                f"cut to their head and tail: {self.cut:,}"
            )
        if self.skipped:
            out.append(
                f"{self.path}: rows left out for a label outside the label set: "
                f"{sum(self.skipped.values()):,} ({_top(self.skipped)})"
            )
        if self.out_of_scope:
            by_label = Counter(ex.label for ex in self.out_of_scope)
            out.append(
                f"{self.path}: rows kept apart as out-of-scope tickets (a label outside the "
                f"label set): {len(self.out_of_scope):,} ({_top(by_label)})"
            )
        return out


class LabelledReader:
    """Reads labelled files with one set of fields and rules, collecting every problem.

    `read` never raises for a bad row; `check` raises one `DataError` for all the files read,
    so a command that reads a training and a held-out file reports both before any work.
    """

    def __init__(
        self,
        text_field: str | Sequence[str] = "text",
        label_field: str = "category",
        *,
        labels: Collection[str] | None = None,
        unknown: Unknown = "error",
        split_field: str | None = None,
    ) -> None:
        self.text_fields = [text_field] if isinstance(text_field, str) else list(text_field)
        self.label_field = label_field
        self.labels = set(labels) if labels is not None else None
        self.unknown = unknown
        self.split_field = split_field
        self.problems: list[Problem] = []
        if unknown not in UNKNOWN_CHOICES:
            raise ValueError(f"unknown={unknown!r}; one of {', '.join(UNKNOWN_CHOICES)}")

    def read(self, path: str | Path) -> LabelledFile:
        path = Path(path)
        out = LabelledFile(path, splits=[] if self.split_field else None)
        wanted = self._wanted()
        rows = 0
        for line, row in _records(path, wanted, self.problems):
            rows += 1
            self._take(out, line, row)
        if rows == 0 and not any(p.path == path for p in self.problems):
            self.problems.append(Problem(path, 1, "empty file", "holds no rows"))
        elif rows and not out.examples and not out.out_of_scope and out.skipped:
            self.problems.append(
                Problem(path, 1, "no rows left", "every row's label is outside the label set")
            )
        return out

    def check(self) -> None:
        """Raise a `DataError` listing every problem found so far."""
        if self.problems:
            raise DataError(self.problems)

    def _take(self, out: LabelledFile, line: int, row: dict[str, object]) -> None:
        path = out.path
        wanted = self._wanted()
        missing = [f for f in wanted if f not in row]
        if missing:
            self._problem(
                path,
                line,
                "missing field",
                f"has no field {missing[0]!r} (fields: {', '.join(sorted(map(str, row)))}); "
                "name the right ones with --text-field / --label-field",
            )
            return
        short = [f for f in wanted if row[f] is _SHORT]
        if short:
            self._problem(
                path,
                line,
                "missing field",
                f"has fewer values than the header: none for {short[0]!r}",
            )
            return
        found = len(self.problems)
        parts = [self._value(path, line, f, row[f], number_ok=True) for f in self.text_fields]
        label = self._value(path, line, self.label_field, row[self.label_field], number_ok=True)
        split = (
            self._value(path, line, self.split_field, row[self.split_field], number_ok=False)
            if self.split_field
            else ""
        )
        if len(self.problems) > found:
            return
        text = "\n".join(p for p in parts if p).strip()
        label = label.strip()
        if not text:
            fields = ", ".join(self.text_fields)
            self._problem(path, line, "empty text", f"empty text (field {fields})")
        if not label:
            self._problem(path, line, "empty label", f"empty label ({self.label_field})")
        if self.split_field and split.strip() not in SPLITS:
            self._problem(
                path,
                line,
                "bad split",
                f"{self.split_field} is {split!r}; expected {' or '.join(SPLITS)}",
            )
        if len(self.problems) > found:
            return
        if len(text) > MAX_TEXT_CHARS:
            text = cut_chars(text, MAX_TEXT_CHARS)
            out.cut += 1
        example = LabelledText(text, label)
        if self.labels is not None and label not in self.labels:
            if self.unknown == "error":
                near = difflib.get_close_matches(label, self.labels, n=1)
                guess = f" (did you mean {near[0]!r}?)" if near else ""
                self.problems.append(
                    Problem(
                        path,
                        line,
                        "unknown label",
                        f"label {label!r} is not in the set{guess}",
                        label,
                    )
                )
            elif self.unknown == "skip":
                out.skipped[label] += 1
            else:
                out.out_of_scope.append(example)
            return
        out.examples.append(example)
        if out.splits is not None:
            out.splits.append(split.strip())

    def _wanted(self) -> list[str]:
        split = [self.split_field] if self.split_field else []
        return [*self.text_fields, self.label_field, *split]

    def _value(self, path: Path, line: int, name: str, value: object, *, number_ok: bool) -> str:
        """A field's value as text, or "" with a problem recorded."""
        if value is None:
            return ""
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            kind = "a list" if isinstance(value, list) else f"a {type(value).__name__}"
            if isinstance(value, dict):
                kind = "an object"
            self._problem(path, line, "wrong type", f"{name} is {kind}, not text")
            return ""
        if not isinstance(value, str):
            if isinstance(value, float) and value.is_integer():
                value = int(value)  # 3.0: a label column that a NaN made float, somewhere
            if not number_ok or isinstance(value, float):
                self._problem(path, line, "wrong type", f"{name} is the number {value}, not text")
                return ""
            return str(value)
        if "\x00" in value:
            self._problem(path, line, "NUL byte", f"{name} holds a NUL byte (\\x00)")
            return ""
        bad = _SURROGATE.search(value)
        if bad:
            code = ord(bad.group())
            what = (
                f"is not UTF-8 (byte 0x{code - 0xDC00:02x})"
                if 0xDC80 <= code <= 0xDCFF
                else f"holds an unpaired surrogate (\\u{code:04x})"
            )
            self._problem(path, line, "invalid UTF-8", f"{name} {what}")
            return ""
        return value

    def _problem(self, path: Path, line: int, kind: str, detail: str) -> None:
        self.problems.append(Problem(path, line, kind, detail))


def read_checked(
    path: str | Path,
    text_field: str | Sequence[str] = "text",
    label_field: str = "category",
    *,
    labels: Collection[str] | None = None,
    unknown: Unknown = "error",
    split_field: str | None = None,
) -> LabelledFile:
    """One labelled file, checked whole: a `DataError` lists every bad row (file:line).

    `text_field` may name several fields (e.g. ``("subject", "body")``), joined by a newline as
    `Ticket.text` joins a ticket's subject and body, so training reads what the worker reads.
    With `labels`, a row whose label is outside them is handled as `unknown` says.
    """
    reader = LabelledReader(
        text_field, label_field, labels=labels, unknown=unknown, split_field=split_field
    )
    found = reader.read(path)
    reader.check()
    return found


def read_labelled(
    path: str | Path,
    text_field: str | Sequence[str] = "text",
    label_field: str = "category",
) -> list[LabelledText]:
    """The examples of a labelled file, checked as `read_checked` checks them (no label set)."""
    return read_checked(path, text_field, label_field).examples


def write_labelled(
    path: str | Path, examples: Iterable[LabelledText], label_field: str = "category"
) -> None:
    """Write examples as JSONL (``text`` and `label_field`), readable by `read_labelled`."""
    with Path(path).open("w", encoding="utf-8") as fh:
        for ex in examples:
            fh.write(json.dumps({"text": ex.text, label_field: ex.label}) + "\n")


def describe(problems: Sequence[Problem]) -> str:
    """The message of a `DataError`: counts by kind, the first `MAX_SHOWN` rows, and a hint for
    labels outside the set."""
    kinds = Counter(p.kind for p in problems)
    files = sorted({str(p.path) for p in problems})
    where = files[0] if len(files) == 1 else f"{len(files)} files"
    counts = ", ".join(f"{n:,} {kind}" for kind, n in kinds.most_common())
    lines = [f"{where}: {len(problems):,} rows cannot be used ({counts}):"]
    lines += [f"  {p}" for p in problems[:MAX_SHOWN]]
    if len(problems) > MAX_SHOWN:
        lines.append(f"  ... and {len(problems) - MAX_SHOWN:,} more")
    unknown = Counter(p.value for p in problems if p.kind == "unknown label")
    if unknown:
        lines.append(
            f"labels outside the label set: {_top(unknown)}; fix them or add them to the label set"
        )
    return "\n".join(lines)


#: A CSV row's value for a header column it has no value for.
_SHORT = object()
#: Lone surrogates: undecodable bytes (surrogateescape) or a JSON "\ud800" escape.
_SURROGATE = re.compile("[\ud800-\udfff]")


def _top(counts: Counter[str], n: int = 5) -> str:
    shown = ", ".join(f"{label!r} ({k:,})" for label, k in counts.most_common(n))
    more = len(counts) - n
    return shown + (f" and {more:,} more" if more > 0 else "")


def _records(
    path: Path, wanted: Sequence[str], problems: list[Problem]
) -> Iterator[tuple[int, dict[str, object]]]:
    """(line, fields) of each row of a CSV (header row) or JSONL file; file-level and
    row-level format problems go to `problems`."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        problems.append(Problem(path, 1, "unreadable", f"cannot be read: {exc.strerror or exc}"))
        return
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        problems.append(Problem(path, 1, "invalid UTF-8", "is UTF-16; save it as UTF-8"))
        return
    # Undecodable bytes become lone surrogates, reported per row (`_value`), not as one crash.
    text = raw.decode("utf-8", "surrogateescape").removeprefix("\ufeff")
    if path.suffix.lower() in JSONL_SUFFIXES:
        yield from _jsonl(path, text, problems)
    else:
        yield from _csv(path, text, wanted, problems)


def _jsonl(
    path: Path, text: str, problems: list[Problem]
) -> Iterator[tuple[int, dict[str, object]]]:
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            detail = f"is not JSON ({exc})"
            if number == 1 and line.lstrip().startswith("["):
                detail = "is a JSON array; write one JSON object per line (JSON lines)"
            problems.append(Problem(path, number, "not JSON", detail))
            continue
        if not isinstance(row, dict):
            kind = "an array" if isinstance(row, list) else f"a {type(row).__name__}"
            detail = f"is {kind}, not an object"
            if number == 1 and isinstance(row, list) and any(isinstance(r, dict) for r in row):
                detail = "is a JSON array; write one JSON object per line (JSON lines)"
            problems.append(Problem(path, number, "not an object", detail))
            continue
        yield number, row


def _csv(
    path: Path, text: str, wanted: Sequence[str], problems: list[Problem]
) -> Iterator[tuple[int, dict[str, object]]]:
    # Any field size: a 200 KB ticket body is a ticket (cut later), not a `_csv.Error`. Raising
    # the process-wide limit once is harmless, so it is not put back.
    csv.field_size_limit(_LARGEST_FIELD)
    reader = csv.reader(io.StringIO(text, newline=""))
    header: list[str] | None = None
    end = 0
    try:
        for record in reader:
            start, end = end + 1, reader.line_num
            if not any(v.strip() for v in record):  # a blank line, or one of blanks
                continue
            if header is None:
                header = record
                absent = [f for f in wanted if f not in header]
                if absent:  # once for the file, not once per row
                    problems.append(
                        Problem(
                            path,
                            start,
                            "missing field",
                            f"has no column {absent[0]!r} (columns: {', '.join(header)}); "
                            "name the right ones with --text-field / --label-field",
                        )
                    )
                    return
                continue
            if len(record) > len(header) and any(v.strip() for v in record[len(header) :]):
                problems.append(
                    Problem(
                        path,
                        start,
                        "wrong field count",
                        f"has {len(record)} values, the header names {len(header)} "
                        "(an unquoted comma?)",
                    )
                )
                continue
            if len(record) < len(header) and end > start:
                problems.append(
                    Problem(
                        path,
                        start,
                        "wrong field count",
                        f"has {len(record)} of the header's {len(header)} values and runs to "
                        f"line {end} (a quote opened here is never closed?)",
                    )
                )
                continue
            row: dict[str, object] = dict.fromkeys(header, _SHORT)
            row.update(zip(header, record, strict=False))
            yield start, row
    except csv.Error as exc:  # strict=False leaves few; stop the file where it happens
        problems.append(Problem(path, end + 1, "bad CSV", f"is not CSV: {exc}"))


_LARGEST_FIELD = min(sys.maxsize, 2**31 - 1)  # the C long the csv module stores it in
