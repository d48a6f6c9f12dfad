"""`triage export` and `triage ledger upgrade` on SQLite and PostgreSQL, and an export that
`triage train` takes as it is."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import main
from producer.ledger import Ledger
from producer.ledger.export import split_of
from producer.ledger.upgrade import head
from producer.schemas import Ticket
from tests.cli.seed import model, person
from tests.factories import banking77_subset
from tests.ledger.databases import postgres_schema


def _history(ledger: Ledger) -> None:
    """Ticket 1: the model's label, corrected twice (the latest person wins); 2: the model's
    alone; 3: sent to review and never answered (no label); 4: a person's only."""
    t1, t2, t3, t4 = (
        Ticket(id=str(i), source="web", subject=f"s{i}", body=f"b{i}") for i in range(1, 5)
    )
    ledger.record([(t, model(t, "card_arrival", adapter="v1", minutes_ago=60)) for t in (t1, t2)])
    ledger.record([(t3, model(t3, "refund", adapter="v1", minutes_ago=60, status="needs_review"))])
    person(ledger, t1, "refund", via="github", minutes_ago=30)
    person(ledger, t1, "pin_blocked", via="review", minutes_ago=10)
    person(ledger, t4, "refund", via="api", minutes_ago=5)


def test_the_export_is_the_labels_with_peoples_corrections(ledger: Ledger, tmp_path: Path) -> None:
    _history(ledger)
    out = tmp_path / "category.csv"
    done = CliRunner().invoke(
        main, ["export", "--task", "category", "--out", str(out), "--holdout", "0.5"]
    )
    assert done.exit_code == 0, done.output
    with out.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["ticket_id"], r["label"], r["set_by"]) for r in rows] == [
        ("1", "pin_blocked", "human"),
        ("2", "card_arrival", "model"),
        ("4", "refund", "human"),
    ]
    assert rows[0]["text"] == "s1\nb1"
    assert [r["split"] for r in rows] == [split_of("web", i, 0.5) for i in ("1", "2", "4")]
    assert "3 tickets of category (2 labelled by a person, 1 by the model)" in done.stderr
    assert not list(tmp_path.glob(".*partial"))


def test_json_lines_and_stdout(ledger: Ledger, tmp_path: Path) -> None:
    _history(ledger)
    out = tmp_path / "category.jsonl"
    done = CliRunner().invoke(main, ["export", "--out", str(out), "--humans-only"])
    assert done.exit_code == 0, done.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["ticket_id"], r["label"]) for r in rows] == [("1", "pin_blocked"), ("4", "refund")]
    assert set(rows[0]) == {"text", "label", "split", "source", "ticket_id", "set_by"}
    printed = CliRunner().invoke(main, ["export", "--holdout", "0"])
    assert printed.stdout.splitlines()[0] == "text,label,split,source,ticket_id,set_by"
    assert all(
        line.count(",train,") == 1 for line in printed.stdout.splitlines()[1:] if "," in line
    )


def test_upgrade_migrates_a_server_ledger_and_hides_its_password() -> None:
    with postgres_schema() as url:
        with_password = url.replace("postgres@", "postgres:hunter2@", 1)
        done = CliRunner().invoke(main, ["ledger", "upgrade", "--database-url", with_password])
        assert done.exit_code == 0, done.output
        assert f"is at schema revision {head()}" in done.output
        assert "hunter2" not in done.output and "***" in done.output
        again = CliRunner().invoke(main, ["ledger", "upgrade", "--database-url", url])
        assert again.exit_code == 0, again.output
        with Ledger.open(url) as ledger:  # a server ledger opens only at the newest schema
            assert ledger.counts("category").waiting == 0


def test_an_unmigrated_server_ledger_is_exit_2_and_one_away_exit_3() -> None:
    with postgres_schema() as url:
        done = CliRunner().invoke(main, ["export", "--database-url", url])
    assert done.exit_code == 2 and "migrate" in done.output
    away = CliRunner().invoke(
        main, ["ledger", "upgrade", "--database-url", "postgresql://x@127.0.0.1:9/x"]
    )
    assert away.exit_code == 3 and "did not answer" in away.output
    bad = CliRunner().invoke(main, ["export", "--database-url", "mysql://x@db/x"])
    assert bad.exit_code == 2 and "--database-url" in bad.output


INTENTS = ["card_arrival", "exchange_rate", "pin_blocked"]


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_triage_train_takes_the_export_as_it_is(ledger: Ledger, tmp_path: Path) -> None:
    """Round trip: what the service decided (and people corrected) becomes an adapter, its
    held-out split the export's."""
    sample = banking77_subset(INTENTS, 16, tmp_path / "labels.json")
    tickets = [Ticket(id=f"t{i}", source="web", body=r.text) for i, r in enumerate(sample)]
    # The model got every fourth ticket wrong; a person corrected those.
    ledger.record(
        [
            (t, model(t, r.label if i % 4 else INTENTS[0], adapter="v0", minutes_ago=60))
            for i, (t, r) in enumerate(zip(tickets, sample, strict=True))
        ]
    )
    for i, (t, r) in enumerate(zip(tickets, sample, strict=True)):
        if i % 4 == 0:
            person(ledger, t, r.label)
    data = tmp_path / "export.csv"
    done = CliRunner().invoke(main, ["export", "--out", str(data), "--holdout", "0.25"])
    assert done.exit_code == 0, done.output
    with data.open(newline="") as fh:
        exported = list(csv.DictReader(fh))
    assert {r["ticket_id"]: r["label"] for r in exported} == {
        t.id: r.label for t, r in zip(tickets, sample, strict=True)
    }
    held = [r for r in exported if r["split"] == "holdout"]

    adapter = tmp_path / "adapter"
    args = ["train", "--data", str(data), "--label-field", "label", "--split-field", "split"]
    args += ["--labels", str(tmp_path / "labels.json"), "--out", str(adapter)]
    args += ["--epochs", "1", "--batch-size", "16", "--max-length", "32", "--threads", "1"]
    trained = CliRunner().invoke(main, args)
    assert trained.exit_code == 0, trained.output
    assert f"{len(held)} held-out / {len(exported) - len(held)} train examples" in trained.output
    saved = [json.loads(line) for line in (adapter / "heldout.jsonl").read_text().splitlines()]
    assert sorted(r["text"] for r in saved) == sorted(r["text"] for r in held)


def test_train_refuses_a_split_column_it_cannot_read(tmp_path: Path) -> None:
    data = tmp_path / "rows.csv"
    data.write_text("text,label,split\na,x,train\nb,y,test\n")
    done = CliRunner().invoke(
        main,
        [
            "train",
            "--data",
            str(data),
            "--label-field",
            "label",
            "--split-field",
            "split",
            "--labels",
            str(data),
        ],
    )
    assert done.exit_code != 0 and "expected train or holdout" in done.output
    both = CliRunner().invoke(
        main, ["train", "--data", str(data), "--split-field", "split", "--eval-data", str(data)]
    )
    assert both.exit_code == 2 and "not both" in both.output
