"""`triage eval` measures what the worker runs: one assembly of models, the same labels.

A small MiniLM adapter (the CPU default's mean-pool head) and a seeded local Qdrant; the eval
path (`models.workbench`) and the worker path (`worker.resources`, what the classify task's first
pass calls) label the same tickets.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from models import assembly
from models.cascade import first_pass
from models.data import examples_dir
from models.index import IndexedTicket
from models.settings import ModelSettings
from models.training import TrainConfig, train
from models.workbench import load, run_eval
from producer import LabelSet, Ticket
from tests.factories import sample

BANKING = examples_dir() / "banking77"
NAMES = ["card_arrival", "exchange_rate", "lost_or_stolen_card", "pin_blocked"]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def adapter(tmp_path_factory: pytest.TempPathFactory) -> Path:
    labels = LabelSet.from_dict({"task": "category", "labels": [{"name": n} for n in NAMES]})
    out = tmp_path_factory.mktemp("assembly") / "category"
    config = TrainConfig(
        labels=labels,
        train_examples=sample(BANKING / "train.csv", NAMES, 8),
        epochs=2,
        learning_rate=3e-3,
        max_length=32,
        num_threads=1,  # two threads fight over a busy 2-core machine
    )
    train(config, out, progress=False)
    return out


@pytest.fixture
def configured(
    adapter: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ModelSettings]:
    """Settings of a worker serving the adapter, with batching unlike the defaults (eval used to
    ignore the token budget), and its local index seeded with human-labelled tickets."""
    monkeypatch.setenv("TRIAGE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TRIAGE_LABELS", json.dumps({"category": str(adapter / "labels.json")}))
    monkeypatch.setenv("TRIAGE_ADAPTERS", json.dumps({"category": str(adapter)}))
    monkeypatch.setenv("TRIAGE_BATCH_SIZE", "32")
    monkeypatch.setenv("TRIAGE_MAX_BATCH_TOKENS", "96")
    _clear_resources()
    s = ModelSettings()
    rows = sample(BANKING / "train.csv", NAMES, 12)[::2]
    index = assembly.open_index(s)
    index.upsert(
        "category",
        [IndexedTicket(f"seed-{i}", "seed", r.label, r.text, "human") for i, r in enumerate(rows)],
        assembly.load_embedder(s).embed([r.text for r in rows]),
    )
    index.close()
    yield s
    _clear_resources()


def test_eval_and_the_worker_give_the_same_labels_and_confidences(
    adapter: Path, configured: ModelSettings
) -> None:
    from worker import resources

    examples = sample(BANKING / "test.csv", NAMES, 5)
    # Eval first: it opens and closes the local index the worker then opens (one client at a time).
    report = run_eval(adapter, configured, examples, None, configs=("cascade",))
    evaluated = report.runs["cascade"].outcomes
    # The tickets as `Harness.run` builds them (the id matters: its own is left out of a search).
    tickets = [
        Ticket(id=f"eval-{i}", source="eval", body=ex.text, task="category")
        for i, ex in enumerate(examples)
    ]
    served = first_pass(
        tickets,
        task=resources.task_models("category"),
        embed=resources.embedder().embed,
        search=resources.search("category"),
        policy=resources.policy("category"),
    )
    assert [o.label for o in evaluated] == [f.label for f in served]
    # One batch each (20 tickets, batch size 32), cut alike by the same code: equal to float
    # precision.
    assert [o.confidence for o in evaluated] == pytest.approx([f.confidence for f in served])
    assert [o.auto for o in evaluated] == [not f.needs_escalation for f in served]
    assert len({round(f.confidence, 3) for f in served}) > 1  # real, varied confidences
    assert all(f.neighbours for f in served)  # the seeded index took part


def test_eval_loads_with_the_workers_device_batching_and_merged_adapter(
    adapter: Path, configured: ModelSettings
) -> None:
    from peft import PeftModel

    from models.base_models import pick_device
    from worker import resources

    m = load(adapter, configured, index_data=[])
    m.index.close()
    clf = m.classifier
    assert (clf.batching.batch_size, clf.batching.max_batch_tokens) == (32, 96)
    assert clf.device == pick_device("auto")
    assert not isinstance(clf.model, PeftModel)  # merged, as the worker serves a lone adapter
    worker_embedder = resources.embedder()
    assert (m.embedder.device, m.embedder.batch_size) == (
        worker_embedder.device,
        worker_embedder.batch_size,
    )
    # The embedder batches as the classifier (the first pass plans one cut for both), and runs
    # as the settings say: eval measures the worker's variant.
    assert (m.embedder.batch_size, m.embedder.max_batch_tokens) == (32, 96)
    assert m.embedder.tokens is clf.tokens
    assert m.embedder.inference == clf.inference == worker_embedder.inference


def _clear_resources() -> None:
    from models.settings import get_settings
    from worker import resources

    resources.close_all()
    get_settings.cache_clear()
    resources.task_models.cache_clear()
    resources.adapter_set.cache_clear()
    resources.embedder.cache_clear()
    resources.policy.cache_clear()


def test_eval_on_the_workers_index_never_meets_copies_written_back_there(
    adapter: Path, configured: ModelSettings
) -> None:
    s = configured
    examples = sample(BANKING / "test.csv", NAMES, 3)
    # What `triage demo` leaves behind: the test tickets written back, labelled by the model
    # (here wrongly), under the demo's ids, with the text's spacing and case changed.
    wrong = {name: NAMES[(i + 1) % len(NAMES)] for i, name in enumerate(NAMES)}
    copies = [f"  {ex.text.upper()}  " for ex in examples]
    index = assembly.open_index(s)
    index.upsert(
        "category",
        [
            IndexedTicket(f"t-{i}", "demo", wrong[ex.label], text, "model")
            for i, (ex, text) in enumerate(zip(examples, copies, strict=True))
        ],
        assembly.load_embedder(s).embed(copies),
    )
    index.close()
    report = run_eval(adapter, s, examples, None, configs=("retrieval", "cascade"))
    assert report.meta["overlaps_excluded"] == {
        "own": 0,
        "copies": len(examples),
        "tickets": len(examples),
    }
    assert "worker's index" in report.meta["index"]

    m = load(adapter, s, None)
    try:
        tickets = [
            Ticket(id=f"eval-{i}", source="eval", body=ex.text, task="category")
            for i, ex in enumerate(examples)
        ]
        vectors = m.embedder.embed([t.text for t in tickets])
        keys = [(t.source, t.id) for t in tickets]
        plain = assembly.index_search(m.index, "category")(vectors, 5, keys)
        assert [row[0].ticket_id for row in plain] == [f"t-{i}" for i in range(len(tickets))]
        m.overlaps.know(tickets)
        for i, row in enumerate(m.search(vectors, 5, keys)):
            assert len(row) == 5 and f"t-{i}" not in {n.ticket_id for n in row}
    finally:
        m.index.close()


def test_eval_with_a_label_left_out_scores_its_tickets_apart(
    adapter: Path, configured: ModelSettings
) -> None:
    examples = sample(BANKING / "test.csv", NAMES, 4)
    report = run_eval(
        adapter, configured, examples, None, configs=("cascade",), unknown_labels=["pin_blocked"]
    )
    run = report.runs["cascade"]
    assert "pin_blocked" not in report.labels and len(report.labels) == len(NAMES) - 1
    assert all(o.label != "pin_blocked" for o in run.outcomes)  # the label does not exist
    m = report.figures()["configs"]["cascade"]
    assert m["tickets"] == 12 and m["unknown_tickets"] == 4
    left_out = [o for o in run.outcomes if o.truth == "pin_blocked"]
    assert m["unknown_auto"] == pytest.approx(sum(o.auto for o in left_out) / 4)
    assert report.figures()["unknown_labels"] == ["pin_blocked"]
