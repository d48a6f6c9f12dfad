"""No command ends in a traceback on a malformed labelled file (issue 19).

Hypothesis writes CSV and JSONL files with bad rows (NUL bytes, bytes that are not UTF-8, empty
texts, labels outside the set, rows short of or over the header, lines that are not JSON or not
objects, values of the wrong type, missing fields), among good rows (some over the csv module's
field limit), or bad as a whole (empty, a header alone, a missing column, UTF-16). The real
`triage train`, `tune`, `eval` and `seed` run on each: every run exits 1 with a message naming
each bad row's file:line, and nothing is built (the check comes before any model loads).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cli.main import main
from producer.labelset import LabelSet

LABELS = ("alpha", "beta", "gamma")
#: Stands for a byte that is not UTF-8 until the file is written (a private-use character).
NOT_UTF8 = "\ue000"
CSV_ROW_FAULTS = ("nul", "not_utf8", "empty_text", "unknown_label", "short", "extra_values")
JSONL_ROW_FAULTS = (
    "nul",
    "not_utf8",
    "empty_text",
    "unknown_label",
    "not_json",
    "not_object",
    "wrong_type",
    "missing_field",
)
FILE_FAULTS = ("empty", "header_only", "missing_column", "utf16")


@dataclass(frozen=True)
class Case:
    suffix: str
    body: bytes
    #: Lines that must be named (file:line) in the error.
    bad_lines: tuple[int, ...]


@dataclass(frozen=True)
class Setup:
    root: Path
    labels: Path
    adapter: Path


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Setup]:
    """A label set, and an adapter directory holding only its labels.json: enough for every
    command to get as far as reading its data, which must stop it."""
    labels = tmp_path / "labels.json"
    LabelSet.from_dict({"task": "category", "labels": list(LABELS)}).save(labels)
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "labels.json").write_bytes(labels.read_bytes())
    monkeypatch.setenv("TRIAGE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TRIAGE_ADAPTERS", json.dumps({"category": str(adapter)}))
    monkeypatch.setenv("TRIAGE_LABELS", json.dumps({"category": str(labels)}))
    monkeypatch.delenv("TRIAGE_QDRANT_URL", raising=False)
    # Past the check each command would load a model: a file the check let through fails here
    # at once, not after minutes of training on it.
    for module, name in _WORK:
        monkeypatch.setattr(f"{module}.{name}", _work_started)
    _clear_settings()
    yield Setup(tmp_path, labels, adapter)
    _clear_settings()


_WORK = (
    ("models.training", "train"),
    ("models.workbench", "run_tune"),
    ("models.workbench", "run_eval"),
    ("models.assembly", "open_index"),
)


def _work_started(*args: object, **kwargs: object) -> None:
    raise AssertionError("the command went past its input check")


def _clear_settings() -> None:
    from models.settings import get_settings as models_settings
    from producer.settings import get_settings as producer_settings
    from worker.settings import get_settings as worker_settings

    for cached in (models_settings, producer_settings, worker_settings):
        cached.cache_clear()


good_text = st.one_of(
    st.text(
        st.characters(exclude_categories=("Cs", "Cc", "Co"), include_characters="\n"),
        min_size=1,
        max_size=30,
    ).filter(lambda t: t.strip() != ""),
    st.just("long " * 40_000),  # 200 KB: over the csv module's 128 KiB default field limit
)


@st.composite
def row_faults(draw: st.DrawFn, faults: tuple[str, ...]) -> list[str | None]:
    """Each row's fault (None: a good row), at least one of them a fault."""
    rows = draw(st.lists(st.one_of(st.none(), st.sampled_from(faults)), min_size=1, max_size=12))
    if all(r is None for r in rows):
        rows[draw(st.integers(0, len(rows) - 1))] = draw(st.sampled_from(faults))
    return rows


@st.composite
def csv_case(draw: st.DrawFn, faults: tuple[str, ...]) -> Case:
    out = "\ufeff" if draw(st.booleans()) else ""  # a BOM, as Excel writes
    out += "text,label\r\n" if draw(st.booleans()) else "text,label\n"
    bad: list[int] = []
    for fault in draw(row_faults(faults)):
        line = 1 + out.count("\n")
        text, label = draw(good_text), draw(st.sampled_from(LABELS))
        if fault == "nul":
            text += "\x00"
        elif fault == "not_utf8":
            text += NOT_UTF8
        elif fault == "empty_text":
            text = draw(st.sampled_from(["", "  "]))
        elif fault == "unknown_label":
            label = "zeta"
        if fault == "short":
            out += f"{_quoted(text)}\n"
        elif fault == "extra_values":
            out += f"{_quoted(text)},{label},{draw(st.sampled_from(['x', 'more, text']))}\n"
        else:
            out += f"{_quoted(text)},{label}\n"
        if fault is not None:
            bad.append(line)
    return Case(".csv", _encode(out), tuple(bad))


@st.composite
def jsonl_case(draw: st.DrawFn, faults: tuple[str, ...]) -> Case:
    lines: list[str] = []
    bad: list[int] = []
    for fault in draw(row_faults(faults)):
        if draw(st.booleans()):
            lines.append("")  # blank lines are skipped, and still counted
        row: dict[str, object] = {"text": draw(good_text), "label": draw(st.sampled_from(LABELS))}
        if fault == "nul":
            row["text"] = f"{row['text']}\x00"  # json writes it as \u0000
        elif fault == "not_utf8":
            row["text"] = f"{row['text']}{NOT_UTF8}"
        elif fault == "empty_text":
            row["text"] = draw(st.sampled_from(["", " ", None]))
        elif fault == "unknown_label":
            row["label"] = "zeta"
        elif fault == "wrong_type":
            key = draw(st.sampled_from(["text", "label"]))
            row[key] = draw(st.sampled_from([["a"], {"a": 1}, True, 1.5 if key == "label" else []]))
        elif fault == "missing_field":
            del row[draw(st.sampled_from(["text", "label"]))]
        # Escaped or not; the stand-in for a bad byte must stay raw to become one.
        line = json.dumps(row, ensure_ascii=fault != "not_utf8" and draw(st.booleans()))
        if fault == "not_json":
            line = line[: draw(st.integers(1, len(line) - 1))]
        elif fault == "not_object":
            line = draw(st.sampled_from(["[1, 2]", "42", '"text"', "null", "true"]))
        lines.append(line)
        if fault is not None:
            bad.append(len(lines))
    return Case(".jsonl", _encode("\n".join(lines) + "\n"), tuple(bad))


@st.composite
def file_case(draw: st.DrawFn) -> Case:
    fault = draw(st.sampled_from(FILE_FAULTS))
    suffix = ".jsonl" if fault == "empty" and draw(st.booleans()) else ".csv"
    body = {
        "empty": draw(st.sampled_from([b"", b"\n", b"\n\n  \n"])),
        "header_only": b"text,label\n",
        "missing_column": b"body,label\nhello,alpha\n",
        "utf16": b"\xff\xfe" + "text,label\nhello,alpha\n".encode("utf-16-le"),
    }[fault]
    return Case(suffix, body, (1,))


def malformed() -> st.SearchStrategy[Case]:
    return st.one_of(csv_case(CSV_ROW_FAULTS), jsonl_case(JSONL_ROW_FAULTS), file_case())


def _quoted(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def _encode(text: str) -> bytes:
    return text.encode("utf-8").replace(NOT_UTF8.encode("utf-8"), b"\xff")


COMMANDS = {
    "train": lambda s, data: [
        "train", "--data", data, "--labels", s.labels, "--out", s.root / "built",
        "--label-field", "label",
    ],
    "tune": lambda s, data: [
        "tune", "--adapter", s.adapter, "--index-data", data, "--label-field", "label",
    ],
    "eval": lambda s, data: [
        "eval", "--data", data, "--adapter", s.adapter, "--label-field", "label",
        "--configs", "cascade", "--out", s.root / "built",
    ],
    "seed": lambda s, data: ["seed", "--data", data, "--label-field", "label"],
}  # fmt: skip


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_malformed_file_stops_the_command_with_every_bad_line(command: str, setup: Setup) -> None:
    @settings(
        max_examples=40,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(case=malformed())
    def run(case: Case) -> None:
        data = setup.root / f"tickets{case.suffix}"
        data.write_bytes(case.body)
        args = [str(a) for a in COMMANDS[command](setup, data)]
        result = CliRunner().invoke(main, args)
        assert isinstance(result.exception, SystemExit), result.exc_info
        assert result.exit_code == 1, result.output
        assert "Traceback" not in result.output
        for line in case.bad_lines:
            assert f"{data}:{line}: " in result.output, (line, result.output)
        assert not (setup.root / "built").exists()  # no adapter, no report
        assert not (setup.root / "data" / "qdrant").exists()  # no index

    run()


def test_the_error_lists_the_rows_of_both_files_of_train(setup: Setup) -> None:
    data = setup.root / "train.csv"
    data.write_text("text,label\nfine,alpha\n,beta\n")
    held = setup.root / "held.jsonl"
    held.write_text('{"text": "fine", "label": "alpha"}\n{"text": "x", "label": "zeta"}\n')
    args = ["train", "--data", data, "--eval-data", held, "--labels", setup.labels]
    args += ["--label-field", "label", "--out", setup.root / "built"]
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 1
    assert f"{data}:3: empty text" in result.output
    assert f"{held}:2: label 'zeta' is not in the set" in result.output
    assert result.output.rstrip().endswith(
        "fix them or add them to the label set, or pass --unknown-label skip (leave those rows out)"
    )


def test_trains_next_line_parses_as_tune_with_what_train_was_given(tmp_path: Path) -> None:
    import shlex

    from cli.train import _tune_line, train
    from cli.tune import tune

    data = tmp_path / "my tickets.csv"  # a space: the line must quote it
    data.write_text("subject,body,team\n")
    adapter = tmp_path / "adapters" / "it"
    given = ["--data", str(data), "--task", "it", "--text-field", "subject,body"]
    given += ["--label-field", "team", "--unknown-label", "skip"]
    opts = train.make_context("train", given).params
    words = shlex.split(_tune_line(opts, adapter))
    assert words[:2] == ["triage", "tune"]
    params = tune.make_context("tune", words[2:]).params
    assert (params["task"], params["adapter"], params["index_data"]) == ("it", adapter, data)
    assert (params["text_field"], params["label_field"]) == ("subject,body", "team")
    assert params["unknown_label"] == "skip"
    plain = train.make_context("train", ["--data", str(data)]).params
    assert shlex.split(_tune_line(plain, adapter)) == [
        "triage", "tune", "--adapter", str(adapter), "--index-data", str(data),
    ]  # fmt: skip


@pytest.mark.parametrize("command", ["tune", "eval", "seed"])
def test_a_malformed_file_is_refused_before_torch_loads(
    command: str, setup: Setup, tmp_path: Path
) -> None:
    import subprocess
    import sys

    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"text,category\nhello\x00,alpha\n")
    flag = {"tune": "--index-data", "eval": "--data", "seed": "--data"}[command]
    # A fresh interpreter: this one imported torch long ago. Refused in under a second, not
    # after torch's 2-10 s of importing.
    probe = (
        "import sys\n"
        "from cli.main import main\n"
        f"try: main([{command!r}, {flag!r}, {str(bad)!r}], standalone_mode=False)\n"
        "except Exception as exc: print(type(exc).__name__, exc)\n"
        "print('torch loaded:', 'torch' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    assert f"{bad}:2: text holds a NUL byte" in out.stdout + out.stderr
    assert "torch loaded: False" in out.stdout
