"""`triage seed`: labelled tickets into the worker's index (local mode, the packaged MiniLM) as
human labels; seeding again replaces them, a repeated text is one ticket."""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import main
from models.assembly import load_embedder
from models.embedder import Embedder
from models.index import TicketIndex
from models.settings import get_settings
from producer.labelset import LabelSet

#: Each `triage seed` loads the embedder (seconds each on 2 cores).
pytestmark = pytest.mark.slow


@pytest.fixture
def task(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The `it` task's adapter directory (its labels.json: what seed checks labels against)
    in a data directory of its own."""
    adapter = tmp_path / "data" / "adapters" / "it"
    adapter.mkdir(parents=True)
    labels = {"task": "it", "labels": ["Hardware", "Access", "Purchase"]}
    LabelSet.from_dict(labels).save(adapter / "labels.json")
    monkeypatch.setenv("TRIAGE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("TRIAGE_QDRANT_URL", raising=False)
    monkeypatch.delenv("TRIAGE_ADAPTERS", raising=False)
    get_settings.cache_clear()
    yield adapter
    get_settings.cache_clear()


def _seed(data: Path, *extra: str) -> str:
    args = ["seed", "--task", "it", "--data", str(data), "--text-field", "subject,body"]
    result = CliRunner().invoke(main, [*args, "--label-field", "team", *extra])
    assert result.exit_code == 0, result.output
    return result.output


def _nearest(text: str) -> tuple[str, str, str, str]:
    s = get_settings()
    index = TicketIndex(path=s.qdrant_path)
    try:
        found = index.neighbours("it", _embedder().embed([text]), 1)[0][0]
        return found.label, found.set_by, found.source, found.ticket_id
    finally:
        index.close()


@cache
def _embedder() -> Embedder:
    return load_embedder(get_settings())


def _count() -> int:
    index = TicketIndex(path=get_settings().qdrant_path)
    try:
        return index.count("it")
    finally:
        index.close()


def test_seeding_writes_human_labels_and_seeding_again_replaces_them(
    task: Path, tmp_path: Path
) -> None:
    data = tmp_path / "tickets.csv"
    data.write_text(
        "subject,body,team\n"
        "Screen broken,my laptop screen is cracked,Hardware\n"
        "Password,I cannot log in to my mailbox,Access\n"
        "Screen broken,my laptop screen is cracked,Hardware\n"  # the same text: one ticket
        "Order,please buy two monitors for the team,Purchase\n"
    )
    out = _seed(data)
    assert "seeded 3 tickets of it" in out and "(4 rows; 1 repeat a text)" in out
    assert _count() == 3
    label, set_by, source, ticket_id = _nearest("laptop screen cracked")
    assert (label, set_by, source) == ("Hardware", "human", "seed")
    assert ticket_id.startswith("text-")

    # A corrected file: the order is now Hardware. Same texts, same ids: replaced, not added.
    data.write_text(data.read_text().replace("team,Purchase", "team,Hardware"))
    _seed(data)
    assert _count() == 3
    assert _nearest("buy two monitors for the team")[0] == "Hardware"


def test_a_text_with_two_labels_keeps_the_last_and_says_so(task: Path, tmp_path: Path) -> None:
    data = tmp_path / "tickets.jsonl"
    rows = [
        {"subject": "VPN", "body": "cannot reach the VPN", "team": "Access"},
        {"subject": "VPN", "body": "cannot reach the VPN", "team": "Hardware"},
        {"subject": "Mouse", "body": "need a new mouse", "team": "Elsewhere"},
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = _seed(data, "--unknown-label", "skip")
    assert "texts seen with more than one label (each keeps its last row's): 1" in out
    assert "rows left out for a label outside the label set: 1 ('Elsewhere' (1))" in out
    assert _count() == 1
    assert _nearest("VPN unreachable")[0] == "Hardware"


def test_replace_removes_what_the_file_no_longer_holds_and_nothing_else(
    task: Path, tmp_path: Path
) -> None:
    data = tmp_path / "tickets.csv"
    head = "subject,body,team\n"
    screen = "Screen broken,my laptop screen is cracked,Hardware\n"
    password = "Password,I cannot log in to my mailbox,Access\n"
    order = "Order,please buy two monitors for the team,Purchase\n"
    data.write_text(head + screen + password + order)
    _seed(data)
    _seed(data, "--source", "other")  # another source's tickets, the same texts
    assert _count() == 6

    data.write_text(head + screen + password)  # the order row is gone
    assert "removed" not in _seed(data)
    assert _count() == 6  # without --replace it stays
    out = _seed(data, "--replace")
    assert "removed 1 no longer in the file" in out and "holds 5" in out
    assert _count() == 5
    # Its neighbour is now the other source's copy; this source's is gone from the search too.
    assert _nearest("buy two monitors for the team")[2] == "other"
    assert _nearest("laptop screen cracked")[0] == "Hardware"
    assert "removed 0 no longer in the file" in _seed(data, "--replace")
