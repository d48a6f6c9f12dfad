from __future__ import annotations

import pytest

from producer import InvalidTicket, LabelSet, Ticket
from producer.errors import LabelSetError
from producer.schemas import MAX_BODY_CHARS


def fields(exc: InvalidTicket) -> set[str]:
    return {e["field"] for e in exc.errors}  # type: ignore[misc]


def test_valid_ticket_has_defaults_and_text() -> None:
    t = Ticket.parse({"id": "7", "subject": " Card ", "body": "never arrived"})
    assert (t.source, t.task, t.effective_revision) == ("api", "category", "0")
    assert t.text == "Card\nnever arrived"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"subject": "x"}, "id"),
        ({"id": "1", "body": "x" * (MAX_BODY_CHARS + 1)}, "body"),
        ({"id": "1", "body": "a\x00b"}, "body"),
        ({"id": "1", "body": "x", "source": "has space"}, "source"),
        ({"id": "1", "body": "x", "callback": "not a url"}, "callback"),
        ({"id": "1", "body": "x", "metadata": {"k": "v" * 20_000}}, "metadata"),
        ({"id": "1", "body": "x", "unknown": 1}, "unknown"),
        ({"id": "1", "body": 5}, "body"),
    ],
)
def test_bad_fields_are_named(payload: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidTicket) as info:
        Ticket.parse(payload)
    assert field in fields(info.value)
    assert field in str(info.value)


def test_empty_ticket_is_refused() -> None:
    with pytest.raises(InvalidTicket, match="subject or a body"):
        Ticket.parse({"id": "1", "subject": "  ", "body": ""})


def test_not_json_is_refused() -> None:
    with pytest.raises(InvalidTicket):
        Ticket.parse("{not json")


def test_emoji_and_mixed_scripts_are_kept() -> None:
    t = Ticket.parse({"id": "1", "body": "карта не пришла 💳 カード"})
    assert "💳" in t.text


def test_label_set_round_trip(tmp_path) -> None:
    path = tmp_path / "labels.json"
    LabelSet.from_dict(
        {"task": "t", "labels": [{"name": "a", "description": "A"}, {"name": "b"}]}
    ).save(path)
    loaded = LabelSet.load(path)
    assert loaded.names == ["a", "b"] and loaded.index["b"] == 1 and "a" in loaded


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"labels": [{"name": "a"}, {"name": "a"}]}, "repeats"),
        ({"labels": [{"name": "a"}]}, "at least two"),
        ({"labels": [{"description": "x"}, {"name": "b"}]}, "labels\\[0\\]"),
        ({"nolabels": []}, "needs a 'labels' list"),
    ],
)
def test_bad_label_sets(raw: dict[str, object], message: str) -> None:
    with pytest.raises(LabelSetError, match=message):
        LabelSet.from_dict(raw)


def test_missing_label_set_file(tmp_path) -> None:
    with pytest.raises(LabelSetError, match="does not exist"):
        LabelSet.load(tmp_path / "nope.json")


def test_shipped_banking77_label_set_matches_categories() -> None:
    import json

    from models.data import examples_dir

    labels = LabelSet.load(examples_dir() / "banking77" / "labels.json")
    categories = json.loads((examples_dir() / "banking77" / "categories.json").read_text())
    assert labels.names == categories
    assert all(label.description for label in labels.labels)
