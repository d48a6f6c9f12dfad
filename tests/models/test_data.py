"""The labelled-file reader: every bad row reported at once with its file:line, texts cut to the
ticket limit, labels outside the set handled as asked, and the label-set file's forms."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from models.data import (
    MAX_SHOWN,
    MAX_TEXT_CHARS,
    DataError,
    LabelledReader,
    LabelledText,
    read_checked,
    read_labelled,
    write_labelled,
)
from models.truncation import CUT_MARK
from producer.errors import LabelSetError
from producer.labelset import LabelSet


def _csv(tmp_path: Path, body: bytes, name: str = "t.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(body)
    return path


def _problems(path: Path, **kwargs: object) -> list[str]:
    with pytest.raises(DataError) as caught:
        read_checked(path, "text", "label", **kwargs)  # type: ignore[arg-type]
    return [str(p) for p in caught.value.problems]


def test_every_bad_csv_row_is_reported_with_its_line(tmp_path: Path) -> None:
    path = _csv(
        tmp_path,
        b"text,label\n"
        b"fine,a\n"  # 2
        b",b\n"  # 3: empty text
        b"x\x00y,a\n"  # 4: NUL
        b'"two\nlines",zz\n'  # 5-6: unknown label
        b"bad \xff byte,a\n"  # 7: not UTF-8
        b"one,a,two\n"  # 8: extra value
        b"lonely\n"  # 9: no label
        b"also fine,b\n",  # 10
    )
    assert _problems(path, labels={"a", "b"}) == [
        f"{path}:3: empty text (field text)",
        f"{path}:4: text holds a NUL byte (\\x00)",
        f"{path}:5: label 'zz' is not in the set",
        f"{path}:7: text is not UTF-8 (byte 0xff)",
        f"{path}:8: has 3 values, the header names 2 (an unquoted comma?)",
        f"{path}:9: has fewer values than the header: none for 'label'",
    ]


def test_every_bad_jsonl_line_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text(
        "\n".join(
            [
                '{"text": "fine", "label": "a"}',
                "[1, 2]",
                "{not json",
                '{"text": ["x"], "label": "a"}',
                '{"text": "\\ud800", "label": "a"}',
                '{"text": "number label", "label": 3}',
                '{"txt": "y", "label": "a"}',
                "",
                '{"text": "fine", "label": null}',
            ]
        )
    )
    assert _problems(path, labels={"a", "3"}) == [
        f"{path}:2: is an array, not an object",
        f"{path}:3: is not JSON (Expecting property name enclosed in double quotes: "
        "line 1 column 2 (char 1))",
        f"{path}:4: text is a list, not text",
        f"{path}:5: text holds an unpaired surrogate (\\ud800)",
        f"{path}:7: has no field 'text' (fields: label, txt); name the right ones with "
        "--text-field / --label-field",
        f"{path}:9: empty label (label)",
    ]


def test_a_missing_column_is_one_problem_for_the_file(tmp_path: Path) -> None:
    path = _csv(tmp_path, b"Document,Topic_group\n" + b"x,y\n" * 1000)
    assert _problems(path) == [
        f"{path}:1: has no column 'text' (columns: Document, Topic_group); name the right "
        "ones with --text-field / --label-field"
    ]


def test_a_json_array_is_told_to_be_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "rows.json"
    path.write_text('[{"text": "a", "label": "x"}, {"text": "b", "label": "y"}]')
    assert _problems(path) == [
        f"{path}:1: is a JSON array; write one JSON object per line (JSON lines)"
    ]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"", "holds no rows"),
        (b"text,label\n", "holds no rows"),
        (b"\xff\xfet\x00e\x00", "is UTF-16; save it as UTF-8"),
    ],
)
def test_an_empty_or_utf16_file_is_an_error(tmp_path: Path, body: bytes, expected: str) -> None:
    path = _csv(tmp_path, body)
    assert _problems(path) == [f"{path}:1: {expected}"]


def test_the_message_caps_the_list_counts_kinds_and_names_the_unknown_labels(
    tmp_path: Path,
) -> None:
    rows = b"".join(b"t%d,Hardwar\n" % i for i in range(30)) + b",Access\n"
    path = _csv(tmp_path, b"text,label\n" + rows)
    with pytest.raises(DataError) as caught:
        read_checked(path, "text", "label", labels={"Hardware", "Access"})
    message = str(caught.value).splitlines()
    assert message[0] == f"{path}: 31 rows cannot be used (30 unknown label, 1 empty text):"
    assert message[1] == f"  {path}:2: label 'Hardwar' is not in the set (did you mean 'Hardware'?)"
    assert len(message) == 1 + MAX_SHOWN + 2
    assert message[-2] == f"  ... and {31 - MAX_SHOWN} more"
    assert message[-1] == (
        "labels outside the label set: 'Hardwar' (30); fix them or add them to the label set"
    )


def test_a_reader_reports_the_problems_of_every_file_at_once(tmp_path: Path) -> None:
    train = _csv(tmp_path, b"text,label\n,a\n", "train.csv")
    held = _csv(tmp_path, b"text,label\nok,z\n", "held.csv")
    reader = LabelledReader("text", "label", labels={"a"})
    reader.read(train)
    reader.read(held)
    with pytest.raises(DataError) as caught:
        reader.check()
    assert [str(p) for p in caught.value.problems] == [
        f"{train}:2: empty text (field text)",
        f"{held}:2: label 'z' is not in the set",
    ]
    assert str(caught.value).startswith("2 files: 2 rows cannot be used")


def test_unknown_labels_skipped_or_kept_apart(tmp_path: Path) -> None:
    path = _csv(tmp_path, b"text,label\none,a\ntwo,x\nthree,x\nfour,b\n")
    skipped = read_checked(path, "text", "label", labels={"a", "b"}, unknown="skip")
    assert skipped.examples == [LabelledText("one", "a"), LabelledText("four", "b")]
    assert dict(skipped.skipped) == {"x": 2}
    assert skipped.notes() == [
        f"{path}: rows left out for a label outside the label set: 2 ('x' (2))"
    ]
    apart = read_checked(path, "text", "label", labels={"a", "b"}, unknown="out-of-scope")
    assert apart.examples == skipped.examples
    assert apart.out_of_scope == [LabelledText("two", "x"), LabelledText("three", "x")]
    none_left = _csv(tmp_path, b"text,label\none,x\n", "x.csv")
    assert _problems(none_left, labels={"a"}, unknown="skip") == [
        f"{none_left}:1: every row's label is outside the label set"
    ]


def test_fields_of_any_size_are_read_and_cut_to_the_ticket_limit(tmp_path: Path) -> None:
    huge = "start " + "x" * 300_000 + " end"  # over the csv module's 128 KiB default
    path = _csv(tmp_path, f'text,label\n"{huge}",a\nshort,a\n'.encode())
    found = read_checked(path, "text", "label")
    assert len(found.examples[0].text) == MAX_TEXT_CHARS
    assert found.examples[0].text.startswith("start ") and found.examples[0].text.endswith(" end")
    assert CUT_MARK in found.examples[0].text
    assert found.examples[1].text == "short"
    assert found.cut == 1
    assert found.notes() == [
        f"{path}: texts over 50,000 characters (a ticket body's limit) cut to their head and "
        "tail: 1"
    ]


def test_several_text_fields_are_joined_and_labels_stripped(tmp_path: Path) -> None:
    path = _csv(tmp_path, b'\xef\xbb\xbfsubject,body,team\nPrinter,"jams, again",ops \n,only,ops\n')
    rows = read_checked(path, ("subject", "body"), "team").examples
    assert rows == [LabelledText("Printer\njams, again", "ops"), LabelledText("only", "ops")]


def test_a_split_column_is_read_and_checked(tmp_path: Path) -> None:
    path = _csv(tmp_path, b"text,label,split\na,x,train\nb,x,holdout\nc,x,test\n")
    assert _problems(path, split_field="split") == [
        f"{path}:4: split is 'test'; expected train or holdout"
    ]
    path.write_bytes(b"text,label,split\na,x,train\nb,x,holdout\n")
    assert read_checked(path, "text", "label", split_field="split").splits == ["train", "holdout"]


def test_write_labelled_reads_back(tmp_path: Path) -> None:
    rows = [LabelledText('a\nb, "c"', "x"), LabelledText("d", "y")]
    write_labelled(tmp_path / "rows.jsonl", rows)
    assert read_labelled(tmp_path / "rows.jsonl") == rows


def test_a_label_set_takes_bare_names_and_optional_descriptions(tmp_path: Path) -> None:
    labels = LabelSet.from_dict(
        {"labels": ["bug", {"name": "feature"}, {"name": "question", "description": "asks"}]}
    )
    assert labels.task == "category"
    assert [(lb.name, lb.description) for lb in labels.labels] == [
        ("bug", ""),
        ("feature", ""),
        ("question", "asks"),
    ]
    path = tmp_path / "labels.json"
    labels.save(path)
    assert LabelSet.load(path) == labels
    assert json.loads(path.read_text())["labels"][0] == {"name": "bug", "description": ""}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"labels": ["a", ""]}, "labels[1] needs a non-empty 'name'"),
        ({"labels": ["a", " b"]}, "labels[1] ' b' starts or ends with whitespace"),
        ({"labels": ["a", {"name": "b", "description": 3}]}, "description that is not text"),
        ({"labels": ["a", "a"]}, "repeats labels: ['a']"),
        ({"labels": ["a"]}, "needs at least two labels"),
    ],
)
def test_a_bad_label_set_says_what_is_wrong(raw: object, message: str) -> None:
    with pytest.raises(LabelSetError, match=message.replace("[", r"\[").replace("]", r"\]")):
        LabelSet.from_dict(raw)
