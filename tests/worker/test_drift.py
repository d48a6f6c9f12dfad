"""`triage drift` against a real Redis and the ledger (SQLite and PostgreSQL): results written by
the worker's own write-back, people's labels and audits from the ledger."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner

from cli.main import main
from models.drift import confidence_histogram, psi, total_variation
from producer import Ticket
from producer.feedback import HumanLabel
from producer.ledger import Ledger, migrate
from producer.ledger import settings as ledger_settings
from producer.schemas import StageTrace, TriageResult
from tests.cli.seed import person, seed
from tests.factories import result_for
from worker import resources
from worker.writeback.path import write_back_one

TRAIN_MIX = {"card_arrival": 50, "refund": 30, "pin_blocked": 20}
N = 300
#: Classifier confidences cycled over tickets: the held-out spread (80% / 15% / 5%), and a drop.
AS_HELD_OUT = [0.95] * 16 + [0.75] * 3 + [0.45]
UNSURE = [0.5]


@pytest.fixture(autouse=True)
def in_process(worker_env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRIAGE_FEEDBACK_PATH", raising=False)
    # The write-back records in the ledger too: by default, SQLite in this test's data dir.
    ledger_settings.get_settings.cache_clear()


@pytest.fixture
def ledger(database_url: str) -> Iterator[Ledger]:
    """The ledger the write-back and `triage drift` share, on each dialect, migrated."""
    migrate(database_url)
    with Ledger.open(database_url) as opened:
        yield opened
    resources.close_all()  # the write-back's handle, before its database is dropped


@pytest.fixture
def adapter(tmp_path: Path) -> Path:
    """An adapter's records as `triage train` and `triage tune` leave them (no weights needed)."""
    out = tmp_path / "adapter"
    out.mkdir()
    meta = {
        "base_model": "all-MiniLM-L6-v2",
        "label_distribution": TRAIN_MIX,
        # Held-out confidence: most tickets above 0.9, as a well-trained classifier gives.
        "heldout_confidence": confidence_histogram([0.95] * 80 + [0.75] * 15 + [0.45] * 5),
    }
    (out / "triage_adapter.json").write_text(json.dumps(meta))
    tuning = {"cv_coverage": 0.8, "target": {"precision": 0.99}}
    (out / "policy.json").write_text(json.dumps({"tuning": tuning}))
    return out


def _traffic(
    rdb: redis.Redis,
    tmp_path: Path,
    *,
    mix: dict[str, float],
    confidence: list[float],
    escalated: float,
    corrected: float,
) -> None:
    """Write N results through the write-back, and people's labels through it too (the feedback
    stream), as every feedback channel sends them."""
    labels = [label for label, share in mix.items() for _ in range(round(share * N))]
    for i, label in enumerate(labels):
        ticket = Ticket(id=str(i), source="helpdesk", body=f"ticket {i}")
        frontier = i < escalated * N
        write_back_one(
            ticket, _result(ticket, label, confidence[i % len(confidence)], frontier), []
        )
        # Every (1/corrected)-th ticket gets another label from a human; every 7th a confirmation.
        if corrected and i % round(1 / corrected) == 0:
            _feedback(ticket, "something_else")
        elif i % 7 == 0:
            _feedback(ticket, label)


def _feedback(ticket: Ticket, label: str) -> None:
    """A person's label, written back as the feedback route sends it (a vector given, so the
    index target needs no model)."""
    human_ticket, human = HumanLabel(
        ticket=ticket, label=label, by="reviewer", via="api"
    ).as_writeback()
    write_back_one(human_ticket, human, [1.0, 0.0, 0.0, 0.0])


def _result(ticket: Ticket, label: str, confidence: float, frontier: bool) -> TriageResult:
    trace = [StageTrace(stage="classifier", label=label, confidence=confidence, latency_ms=1.0)]
    decided = ("frontier", 0.99) if frontier else ("classifier", confidence)
    return result_for(ticket, label, *decided).model_copy(update={"trace": trace})


def _drift(adapter: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    out = CliRunner().invoke(main, ["drift", "--adapter", str(adapter), "--json", *extra])
    assert out.exit_code in (0, 1), out.output
    return out.exit_code, json.loads(out.stdout)


def _checks(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in report["checks"]}


def test_traffic_like_the_training_data_is_not_flagged(rdb, tmp_path, adapter) -> None:
    mix = {k: v / 100 for k, v in TRAIN_MIX.items()}
    _traffic(rdb, tmp_path, mix=mix, confidence=AS_HELD_OUT, escalated=0.2, corrected=0.01)
    code, report = _drift(adapter)
    assert code == 0 and report["verdict"] == "no retrain due", report
    checks = _checks(report)
    assert report["tickets"] == N
    assert checks["label mix"]["value"] < 0.05
    assert abs(checks["escalation"]["value"]) < 0.02  # 20% escalated, 20% expected
    assert 0 < checks["corrections"]["value"] <= 0.02


def test_drifted_traffic_is_flagged_on_every_count(rdb, tmp_path, adapter) -> None:
    # A new product: most tickets are one label, the classifier is unsure, escalations soar,
    # and reviewers keep correcting it.
    mix = {"pin_blocked": 0.8, "card_arrival": 0.2}
    _traffic(rdb, tmp_path, mix=mix, confidence=UNSURE, escalated=0.6, corrected=0.1)
    code, report = _drift(adapter)
    assert code == 1 and report["retrain_due"], report
    assert {name for name, c in _checks(report).items() if c["due"]} == {
        "label mix",
        "confidence",
        "escalation",
        "corrections",
    }
    assert report["verdict"].startswith("retrain due: label mix (pin_blocked 20% -> 80%")


def test_the_table_says_it_in_plain_words(rdb, tmp_path, adapter) -> None:
    _traffic(rdb, tmp_path, mix={"refund": 1.0}, confidence=AS_HELD_OUT, escalated=0.2, corrected=0)
    out = CliRunner().invoke(main, ["drift", "--adapter", str(adapter)])
    assert out.exit_code == 1, out.output
    assert "DRIFT" in out.output and "retrain due: label mix" in out.output


def test_an_old_adapter_without_records_is_judged_on_what_it_has(rdb, tmp_path, adapter) -> None:
    (adapter / "triage_adapter.json").write_text(json.dumps({"base_model": "x"}))
    heldout = [{"text": "t", "category": label} for label, n in TRAIN_MIX.items() for _ in range(n)]
    (adapter / "heldout.jsonl").write_text("".join(json.dumps(r) + "\n" for r in heldout))
    (adapter / "policy.json").unlink()
    _traffic(rdb, tmp_path, mix={"refund": 1.0}, confidence=UNSURE, escalated=0.9, corrected=0)
    code, report = _drift(adapter)
    checks = _checks(report)
    assert code == 1 and checks["label mix"]["due"]  # mix from the held-out file
    assert checks["confidence"]["value"] is None and checks["escalation"]["value"] is None
    assert any("heldout.jsonl" in n for n in report["notes"])


def test_too_few_tickets_are_not_judged(rdb, tmp_path, adapter) -> None:
    _traffic(rdb, tmp_path, mix={"refund": 1.0}, confidence=UNSURE, escalated=1.0, corrected=0)
    code, report = _drift(adapter, "--min-tickets", str(N + 1))
    assert code == 0 and not any(c["due"] for c in report["checks"])
    assert "not judged" in " ".join(report["notes"])


def test_the_window_takes_the_newest_results(rdb, tmp_path, adapter) -> None:
    # Old traffic drifted, the newest 200 look like training: a window of 200 sees no drift.
    _traffic(rdb, tmp_path, mix={"refund": 1.0}, confidence=UNSURE, escalated=0.0, corrected=0)
    for i in range(200):
        ticket = Ticket(id=f"new-{i}", source="helpdesk", body="x")
        label = ["card_arrival"] * 10 + ["refund"] * 6 + ["pin_blocked"] * 4
        write_back_one(ticket, _result(ticket, label[i % 20], AS_HELD_OUT[i % 20], i % 5 == 0), [])
    code, report = _drift(adapter, "--window", "200")
    assert code == 0, report
    assert report["tickets"] == 200


def test_the_measures() -> None:
    assert total_variation({"a": 1}, {"a": 5}) == 0.0
    assert total_variation({"a": 1}, {"b": 1}) == 1.0
    assert total_variation({"a": 3, "b": 1}, {"a": 1, "b": 1}) == pytest.approx(0.25)
    same = confidence_histogram([0.1, 0.5, 0.99, 1.0])
    assert same == [0, 1, 0, 0, 0, 1, 0, 0, 0, 2]
    assert psi(same, same) == 0.0
    assert psi([90, 10], [10, 90]) > 1.0


def test_a_legacy_feedback_file_still_counts_and_says_it_is_deprecated(
    rdb, tmp_path, adapter
) -> None:
    _traffic(rdb, tmp_path, mix={"refund": 1.0}, confidence=AS_HELD_OUT, escalated=0, corrected=0)
    # Tickets no one confirmed through the stream (every 7th was): 30 corrections of N.
    fixed = [i for i in range(N) if i % 7][:30]
    lines = [{"ticket_id": str(i), "source": "helpdesk", "label": "other"} for i in fixed]
    legacy = tmp_path / "feedback.jsonl"
    legacy.write_text("".join(json.dumps(line) + "\n" for line in lines))
    out = CliRunner().invoke(
        main, ["drift", "--adapter", str(adapter), "--json", "--feedback", str(legacy)]
    )
    assert "deprecated" in out.stderr and "triage:feedback" in out.stderr
    assert _checks(json.loads(out.stdout))["corrections"]["value"] == pytest.approx(30 / N)


def test_peoples_labels_in_the_ledger_count_as_corrections(rdb, tmp_path, adapter, ledger) -> None:
    _traffic(rdb, tmp_path, mix={"refund": 1.0}, confidence=AS_HELD_OUT, escalated=0, corrected=0)
    # Relabels the ledger holds and Redis no longer does (its streams are trimmed, or were
    # flushed): the ledger is the record.
    rdb.delete("triage:feedback")
    fixed = [i for i in range(N) if i % 7][:30]
    for i in fixed:
        person(
            ledger, Ticket(id=str(i), source="helpdesk", body=f"ticket {i}"), "other", via="jira"
        )
    _, report = _drift(adapter, "--max-correction-rate", "0.2")
    assert _checks(report)["corrections"]["value"] == pytest.approx(30 / N)


def test_precision_below_the_tuned_one_makes_a_retrain_due(rdb, tmp_path, adapter, ledger) -> None:
    from models.classifier import adapter_version

    mix = {k: v / 100 for k, v in TRAIN_MIX.items()}
    _traffic(rdb, tmp_path, mix=mix, confidence=AS_HELD_OUT, escalated=0.2, corrected=0.01)
    seed(ledger, adapter=adapter_version(adapter), audits=40, wrong=4)  # 90% [77%, 96%]
    seed(ledger, adapter="category@old", audits=40, wrong=20, source="old")  # not deployed
    code, report = _drift(adapter)
    precision = _checks(report)["precision"]
    assert code == 1 and precision["due"], report
    assert (precision["value"], precision["limit"]) == (pytest.approx(0.9), 0.99)
    assert report["verdict"].startswith("retrain due: precision (precision 90.0% (95% interval")
    out = CliRunner().invoke(main, ["drift", "--adapter", str(adapter)])
    assert out.exit_code == 1 and "below the 99.0% the adapter was tuned for" in out.output


def test_precision_not_yet_known_to_be_below_is_no_retrain(rdb, tmp_path, adapter, ledger) -> None:
    from models.classifier import adapter_version

    mix = {k: v / 100 for k, v in TRAIN_MIX.items()}
    _traffic(rdb, tmp_path, mix=mix, confidence=AS_HELD_OUT, escalated=0.2, corrected=0.01)
    seed(ledger, adapter=adapter_version(adapter), audits=20, wrong=1)  # 95%, reaches 99%
    code, report = _drift(adapter)
    precision = _checks(report)["precision"]
    assert code == 0 and not precision["due"] and "more audits will tell" in precision["detail"]
    code, report = _drift(adapter, "--audit-window", "10m")  # the audits are older than that
    assert _checks(report)["precision"]["value"] is None
