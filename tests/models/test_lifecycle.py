"""`triage train`, `tune` and `eval` on a tiny Banking77 sample with the packaged MiniLM.

One adapter is trained through the CLI for the module; tuning and evaluation run on it, the
frontier configurations against a local server speaking the OpenAI wire format.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from cli.main import main
from models.adapters import AdapterSet
from models.cascade import POLICY_FILE, Policy
from models.classifier import Classifier
from models.data import examples_dir, read_labelled, write_labelled
from models.scores import FIGURES
from models.training import HELDOUT_FILE, TrainConfig, read_heldout, train
from producer.labelset import LabelSet
from tests.factories import sample
from tests.wire_servers import OpenAIServer

BANKING = examples_dir() / "banking77"
pytestmark = pytest.mark.slow


def label_set(task: str, names: list[str]) -> LabelSet:
    return LabelSet.from_dict({"task": task, "labels": [{"name": n} for n in names]})


@pytest.fixture(scope="module")
def names() -> list[str]:
    return ["card_arrival", "exchange_rate", "lost_or_stolen_card", "pin_blocked", "top_up_failed"]


@pytest.fixture(scope="module")
def files(tmp_path_factory, names) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("data")
    label_set("category", names).save(d / "labels.json")
    write_labelled(d / "train.jsonl", sample(BANKING / "train.csv", names, 16))
    write_labelled(d / "test.jsonl", sample(BANKING / "test.csv", names, 6))
    return {"labels": d / "labels.json", "train": d / "train.jsonl", "test": d / "test.jsonl"}


@pytest.fixture(scope="module")
def adapter(files, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("adapters") / "category"
    env = {"TRIAGE_TRAIN_DATA": str(files["train"]), "TRIAGE_TRAIN_EPOCHS": "4"}
    result = CliRunner().invoke(
        main,
        ["train", "--labels", str(files["labels"]), "--out", str(out), "--lr", "3e-3",
         "--max-length", "32", "--batch-size", "16", "--patience", "4", "--eval-fraction", "0.25",
         "--threads", "1"],  # one thread: two fight over a busy 2-core machine
        env=env,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "held-out accuracy" in result.output
    return out


def test_trained_adapter_reloads_and_beats_chance(adapter, files, names):
    assert (adapter / HELDOUT_FILE).is_file()
    assert len(read_heldout(adapter)) == 5 * 4  # 25% of 16 per label
    meta = json.loads((adapter / "triage_adapter.json").read_text())
    assert meta["config"]["epochs"] == 4  # from TRIAGE_TRAIN_EPOCHS
    clf = Classifier.load(adapter)
    test = read_labelled(files["test"])
    probs = clf.predict_proba([r.text for r in test])
    truth = np.array([clf.labels.index[r.label] for r in test])
    assert (probs.argmax(axis=1) == truth).mean() > 2 / len(names)  # chance is 1/5


def test_tune_writes_the_policy_the_worker_reads(adapter, files):
    # 20 held-out tickets, 10 to test on: too few to show 90% with 95% confidence (that takes
    # 29 auto-labelled without an error), which is an error, and no policy.
    tune = ["tune", "--adapter", str(adapter), "--index-data", str(files["train"]), "--folds", "3"]
    refused = CliRunner().invoke(main, [*tune, "--precision", "0.9"])
    assert refused.exit_code == 1 and "no thresholds reach precision 0.9" in refused.output
    assert "Best reachable" in refused.output and not (adapter / POLICY_FILE).exists()
    result = CliRunner().invoke(main, [*tune, "--precision", "0.5", "--confidence", "0.5"])
    assert result.exit_code == 0, result.output
    assert "isotonic" in result.output and "with 50% confidence" in result.output
    body = json.loads((adapter / POLICY_FILE).read_text())
    policy = Policy.model_validate(body)
    assert policy.neighbours == 20
    assert body["tuning"]["target"]["precision"] == 0.5
    assert body["tuning"]["test"]["lower"] >= 0.5 and body["tuning"]["test"]["tickets"] == 10
    assert set(body["tuning"]["calibration"]) >= {"ece_raw", "ece_temperature", "ece_isotonic_cv"}


def test_tuning_searches_every_labelled_ticket_but_its_own(adapter, files):
    from models.settings import ModelSettings
    from models.tuning import tuning_ticket
    from models.workbench import load

    held = read_heldout(adapter)
    rows = read_labelled(files["train"])  # holds the held-out rows too, as a train file does
    m = load(adapter, ModelSettings(), rows, tuning=held)
    try:
        assert m.index.count("category") == len(rows)  # as the served index: every ticket
        ticket = tuning_ticket(0, held[0].text)
        vector = m.embedder.embed([ticket.text])
        own = m.search(vector, 5, [(ticket.source, ticket.id)])[0]
        assert own and all(n.ticket_id != ticket.id for n in own)
        others = m.search(vector, 5, [("elsewhere", "x")])[0]
        assert others[0].ticket_id == ticket.id  # it is indexed: only its own search skips it
    finally:
        m.index.close()


def test_eval_scores_every_configuration_with_a_local_frontier(
    adapter, files, tmp_path, monkeypatch
):
    with OpenAIServer(label="card_arrival") as server:
        monkeypatch.setenv("TRIAGE_FRONTIER_PROVIDER", "openai")
        monkeypatch.setenv("TRIAGE_FRONTIER_URL", server.url)
        monkeypatch.setenv("TRIAGE_FRONTIER_API_KEY", "test-key")
        _clear_model_settings()
        try:
            result = CliRunner().invoke(
                main,
                ["eval", "--data", str(files["test"]), "--adapter", str(adapter),
                 "--index-data", str(files["train"]), "--frontier-limit", "10",
                 "--volume", "50000", "--out", str(tmp_path), "--json", str(tmp_path / "e.json")],
            )  # fmt: skip
        finally:
            _clear_model_settings()
    assert result.exit_code == 0, result.output
    figures = json.loads((tmp_path / "e.json").read_text())
    assert set(figures["configs"]) == {
        "frontier",
        "frontier+rag",
        "retrieval",
        "fine-tune",
        "cascade",
    }
    for name, m in figures["configs"].items():
        assert set(FIGURES) <= set(m), name
    assert figures["configs"]["frontier"]["tickets"] == 10
    assert figures["configs"]["frontier"]["accuracy"] == pytest.approx(0.2)  # always card_arrival
    assert figures["configs"]["frontier"]["cost_per_1k"] > 0
    assert figures["volume"]["frontier_measured"] is True
    assert "<svg" in (tmp_path / "report.html").read_text()
    assert "| cascade |" in (tmp_path / "report.md").read_text()


def test_eval_without_a_frontier_skips_it_with_a_clear_line(adapter, files, tmp_path, caplog):
    _clear_model_settings()
    caplog.set_level(logging.INFO)
    result = CliRunner().invoke(
        main,
        ["eval", "--data", str(files["test"]), "--adapter", str(adapter),
         "--index-data", str(files["train"]), "--configs", "frontier,fine-tune",
         "--out", str(tmp_path), "--json", str(tmp_path / "e.json")],
        env={"TRIAGE_FRONTIER_PROVIDER": "none"},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "skipping frontier: no frontier configured" in result.output
    # Nothing then says it evaluates the configuration it skipped.
    assert not [r.message for r in caplog.records if "frontier" in r.getMessage()]
    assert "configuration 2 of 2: fine-tune" in caplog.text
    assert "WARNING: no --index-data" not in result.output
    figures = json.loads((tmp_path / "e.json").read_text())
    assert set(figures["configs"]) == {"fine-tune"}
    assert "frontier" in figures["skipped"]


def test_eval_leaves_labels_out_and_says_how_many_of_their_tickets_were_auto_labelled(
    adapter, files, tmp_path
):
    _clear_model_settings()
    result = CliRunner().invoke(
        main,
        ["eval", "--data", str(files["test"]), "--adapter", str(adapter),
         "--index-data", str(files["train"]), "--configs", "retrieval,cascade",
         "--unknown-labels", "exchange_rate,pin_blocked", "--out", str(tmp_path),
         "--json", str(tmp_path / "e.json")],
        env={"TRIAGE_FRONTIER_PROVIDER": "none"},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "left out as unknown kinds (2): exchange_rate, pin_blocked" in result.output
    figures = json.loads((tmp_path / "e.json").read_text())
    assert figures["unknown_labels"] == ["exchange_rate", "pin_blocked"]
    for m in figures["configs"].values():
        assert m["tickets"] == 3 * 6 and m["unknown_tickets"] == 2 * 6
        assert 0.0 <= m["unknown_auto"] <= 1.0
    assert "auto-labelled" in result.output and "…" not in result.output
    assert "Tickets of left-out labels (2)" in (tmp_path / "report.md").read_text()
    bad = CliRunner().invoke(
        main,
        ["eval", "--data", str(files["test"]), "--adapter", str(adapter),
         "--unknown-labels", "no_such_label", "--out", str(tmp_path)],
    )  # fmt: skip
    assert bad.exit_code != 0 and "no_such_label not in the label set" in bad.output


def test_two_adapters_on_one_base_both_predict_correctly(adapter, files, names, tmp_path):
    other_names = ["beneficiary_not_allowed", "cash_withdrawal_charge", "apple_pay_or_google_pay"]
    second = tmp_path / "tenant_b"
    train(
        TrainConfig(
            labels=label_set("tenant_b", other_names),
            train_examples=sample(BANKING / "train.csv", other_names, 10),
            epochs=4, batch_size=10, learning_rate=3e-3, max_length=32, patience=4,
            num_threads=1,
        ),
        second,
        progress=False,
    )  # fmt: skip
    both = AdapterSet({"category": adapter, "tenant_b": second})
    assert both.tasks == ["category", "tenant_b"]
    for task, path, task_names in (
        ("category", adapter, names),
        ("tenant_b", second, other_names),
        ("category", adapter, names),  # switching back gives the first adapter again
    ):
        test = sample(BANKING / "test.csv", task_names, 4)
        texts = [r.text for r in test]
        shared = both.predict_proba(task, texts)
        alone = Classifier.load(path).predict_proba(texts)
        assert shared.shape == (len(texts), len(task_names))
        np.testing.assert_allclose(shared, alone, atol=1e-5)
        truth = np.array([task_names.index(r.label) for r in test])
        assert (shared.argmax(axis=1) == truth).mean() > 1.5 / len(task_names)


def _clear_model_settings() -> None:
    from models.settings import get_settings

    get_settings.cache_clear()
