"""Threshold tuning, calibration and the report on synthetic outcomes (no model: fast)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence

import numpy as np
import pytest

from models import calibration, scores
from models.cascade import POLICY_FILE, Policy, TaskModels, load_policy
from models.data import LabelledText
from models.evaluation import ConfigRun, Harness, Outcome
from models.report import Report
from models.settings import ModelSettings
from models.tuning import Signals, TuneTarget, Unreachable, choose, tune, wilson_lower
from producer import LabelSet, Neighbour
from producer.errors import FrontierUnavailable

LABELS = LabelSet.from_dict({"task": "category", "labels": [{"name": n} for n in "abcd"]})


def signals(n: int, seed: int) -> Signals:
    """Calibrated by construction: a ticket is right with probability its confidence."""
    rng = np.random.default_rng(seed)
    clf = rng.uniform(0.3, 1.0, n)
    mixed = np.clip(clf + rng.normal(0.05, 0.05, n), 0.3, 1.0)
    return Signals(clf, rng.random(n) < clf, mixed, rng.random(n) < mixed)


def apply(t, s: Signals) -> tuple[float, float]:
    by_clf = s.clf_conf >= t.classifier
    auto = by_clf | (s.mix_conf >= t.retrieval)
    ok = auto & np.where(by_clf, s.clf_ok, s.mix_ok)
    return float(auto.mean()), float(ok.sum() / max(1, auto.sum()))


def test_too_few_held_out_tickets_to_show_the_target_is_an_error():
    with pytest.raises(Unreachable, match=r"no thresholds reach precision 0\.99"):
        tune_on(400, TuneTarget(precision=0.99, classifier_weights=(0.5,)))


def test_thresholds_hit_the_precision_target_on_held_out_tickets():
    target = TuneTarget(precision=0.95)
    t = choose(signals(3000, seed=1), target)
    coverage, precision = apply(t, signals(3000, seed=2))
    assert precision >= 0.94  # the target, within sampling noise of 3,000 fresh tickets
    assert coverage > 0.1


def test_wilson_lower_bound_matches_the_textbook_value():
    got = wilson_lower(np.array([95, 0, 10]), np.array([100, 0, 10]), 1.96)
    assert got == pytest.approx([0.8882, 0.0, 0.7225], abs=1e-4)


def test_a_confidence_margin_makes_the_target_hold_on_fresh_tickets():
    # Thresholds read off 600 tickets by the point estimate (confidence 0.5) are the luckiest
    # of many tried and mostly miss the target on fresh tickets; the Wilson bound corrects it.
    held = {0.5: 0, 0.9: 0}
    for seed in range(20):
        fresh = signals(5000, seed=1000 + seed)
        for confidence in held:
            t = choose(signals(600, seed=seed), TuneTarget(precision=0.95, confidence=confidence))
            held[confidence] += apply(t, fresh)[1] >= 0.95
    assert held[0.9] >= 12 and held[0.9] >= 2 * held[0.5]


def test_max_escalation_target_caps_the_escalation_rate():
    target = TuneTarget(precision=None, max_escalation=0.2)
    t = choose(signals(2000, seed=3), target)
    coverage, _ = apply(t, signals(2000, seed=4))
    assert coverage >= 0.77


def test_an_unreachable_target_auto_labels_nothing():
    s = signals(500, seed=5)
    bad = Signals(s.clf_conf, np.zeros(500, bool), s.mix_conf, np.zeros(500, bool))
    t = choose(bad, TuneTarget(precision=0.99))
    assert (t.coverage, t.classifier, t.retrieval) == (0.0, 1.01, 1.01)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"precision": None},
        {"precision": 1.5},
        {"max_escalation": 0.1},
        {"folds": 1},
        {"confidence": 1.0},
        {"scope_similarity_weight": -1.0},
    ],
)
def test_tune_target_checks(kwargs):
    with pytest.raises(ValueError):
        TuneTarget(**kwargs)


def tune_on(n: int, target: TuneTarget, *, logits: bool = False):
    """The classifier is unsure and half wrong; the neighbours are right. With `logits`, the
    classifier gives them too (the log of its probabilities: the energy score is 0)."""
    rng = np.random.default_rng(0)
    truth = [LABELS.names[i % 4] for i in range(n)]
    examples = [LabelledText(f"ticket {i}", t) for i, t in enumerate(truth)]
    probs = {}
    for ex in examples:
        row = np.full(4, 0.1)
        right = rng.random() < 0.5
        row[LABELS.index[ex.label] if right else (LABELS.index[ex.label] + 1) % 4] = 0.7
        probs[ex.text] = row
    label_of = {f"tune-{i}": t for i, t in enumerate(truth)}

    def search(vectors: np.ndarray, k: int, exclude: Sequence[tuple[str, str]]):
        return [
            [
                Neighbour(
                    ticket_id=f"n{j}", source="s", label=label_of[i], score=0.9, set_by="human"
                )
                for j in range(3)
            ]
            for _, i in exclude
        ]

    def predict(texts: Sequence[str]) -> np.ndarray:
        return np.stack([probs[t] for t in texts])

    return tune(
        examples,
        task=TaskModels(
            LABELS,
            predict,
            "x@1",
            predict_logits=(lambda texts: np.log(predict(texts))) if logits else None,
        ),
        embed=lambda texts: np.ones((len(texts), 2), dtype=np.float32),
        search=search,
        base=Policy(),
        target=target,
    )


def test_tune_runs_the_first_pass_and_prefers_the_mix_that_helps():
    """The classifier is unsure and half wrong; the neighbours are right: the mix must win."""
    report = tune_on(400, TuneTarget(precision=0.95, classifier_weights=(0.5, 1.0)))
    assert report.policy.classifier_weight == 0.5
    assert report.accuracy == 1.0 and report.cv_coverage > 0.9
    assert report.certified is not None and report.certified.coverage > 0.9
    assert report.certified.lower >= 0.95 and report.certified.tickets == 200
    assert report.classifier_alone.coverage == 0.0  # 50% right: nothing reaches 95%
    assert report.retrieval_alone.precision > 0.95
    assert {c["classifier_weight"] for c in report.candidates} == {0.5, 1.0}
    summary = json.loads(json.dumps(report.summary()))
    assert summary["test"]["lower"] == report.certified.lower
    # Half the tickets' classifier label has no neighbour at all (score 0): the conformal
    # cut at 5% sits at 0 and flags nothing.
    assert report.policy.scope_threshold == 0.0 and summary["out_of_scope"]["flagged_test"] == 0


@pytest.mark.parametrize("weight", [0.0, 2.0])
def test_tune_writes_the_energy_score_and_its_similarity_weight(weight: float) -> None:
    report = tune_on(
        200, TuneTarget(precision=0.95, classifier_weights=(0.5,), scope_similarity_weight=weight)
    )
    assert report.policy.scope_kind == "confidence"  # no logits: the confidence product
    report = tune_on(
        200,
        TuneTarget(precision=0.95, classifier_weights=(0.5,), scope_similarity_weight=weight),
        logits=True,
    )
    p = report.policy
    assert p.scope_kind == "energy" and p.scope_similarity_weight == weight
    # Every energy is log(1) = 0, every nearest same-label similarity 0.9 or none (0.001):
    # the cut at 5% is the score of a ticket without a neighbour of its label.
    assert p.scope_threshold == pytest.approx(weight * math.log(1e-3) if weight else 0.0)
    assert Policy.model_validate_json(p.model_dump_json()) == p  # what the worker reads


def test_temperature_and_isotonic_lower_the_ece_of_an_overconfident_model():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, 2000)
    logits = rng.normal(0, 1, (2000, 5))
    logits[np.arange(2000), y] += 1.5
    over = logits * 4  # deliberately over-confident
    before = calibration.expected_calibration_error(calibration.softmax(over), y)
    t = calibration.fit_temperature(over, y)
    after = calibration.expected_calibration_error(calibration.softmax(over / t), y)
    assert after < before / 3
    assert calibration.isotonic_cv_ece(over, y) < before / 3


def test_the_worker_reads_the_tuned_policy_next_to_the_adapter(tmp_path):
    settings = ModelSettings(classifier_threshold=0.5, adapters={"category": tmp_path})
    assert load_policy(tmp_path, settings).classifier_threshold == 0.5  # the fallback
    Policy(classifier_threshold=0.97, neighbours=20).save(tmp_path / POLICY_FILE, {"cv": 1})
    tuned = load_policy(tmp_path, settings)
    assert (tuned.classifier_threshold, tuned.neighbours) == (0.97, 20)
    (tmp_path / POLICY_FILE).write_text("{not json")
    with pytest.raises(Exception, match="rerun `triage tune`"):
        load_policy(tmp_path, settings)


def outcomes(n: int, seed: int, cost: float = 0.0) -> list[Outcome]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        truth = LABELS.names[i % 4]
        conf = float(rng.uniform(0.3, 1.0))
        label = truth if rng.random() < conf else LABELS.names[(i + 1) % 4]
        out.append(Outcome(truth, label, conf, conf > 0.8, conf <= 0.8, 5.0 + i % 7, 1.0, cost))
    return out


def test_report_has_every_figure_and_renders_its_plots():
    runs = {
        "frontier": ConfigRun("frontier", skipped="no frontier configured"),
        "fine-tune": ConfigRun("fine-tune", outcomes(300, 1)),
        "cascade": ConfigRun("cascade", outcomes(300, 2, cost=0.0001)),
    }
    report = Report(LABELS, runs, 3600.0, 0.0005, training_cost_usd=1.0, volume=100_000)
    figures = json.loads(json.dumps(report.figures()))
    for name in ("fine-tune", "cascade"):
        assert set(scores.FIGURES) <= set(figures["configs"][name])
    assert figures["skipped"] == {"frontier": "no frontier configured"}
    cascade = figures["configs"]["cascade"]
    assert cascade["cost_per_1k"] == pytest.approx(0.1 + 1.0)  # $0.0001 each + 1 ms at $3600/h
    assert 0 < cascade["coverage"] < 1 and cascade["p50_ms"] <= cascade["p95_ms"]
    volume = figures["volume"]
    assert volume["monthly_usd"]["cascade"] == pytest.approx(110.0)
    assert volume["frontier_measured"] is False and volume["break_even_fine-tune"] is None

    page = report.html()
    # A reliability diagram per configuration run, the risk-coverage curve, per-label F1.
    assert page.count("<svg") == 4 and page.count("class='plot'") == 4
    for title in ("Reliability diagram", "Risk-coverage curve", "Per-label F1", "Top confusions"):
        assert title in page
    assert re.search(r"<polyline points='[\d., ]+'", page)
    md = report.markdown()
    assert "| cascade |" in md and "frontier: skipped" in md and "tickets a month" in md


def test_cheaper_fine_tune_has_a_break_even_volume():
    runs = {"fine-tune": ConfigRun("fine-tune", outcomes(100, 1))}
    report = Report(LABELS, runs, 0.0, 0.001, training_cost_usd=5.0, volume=1000)
    assert report.cost_by_volume()["break_even_fine-tune"] == 5000  # $5 / $0.001 per ticket


class DownFrontier:
    def classify(self, ticket, labels, examples):
        raise FrontierUnavailable("test server down")

    def close(self) -> None:
        pass


def fake_harness(frontier=None) -> Harness:
    """Classifier sure of 'a' for everything; neighbours all say the true label 'b'."""
    probs = np.array([0.94, 0.02, 0.02, 0.02])

    def search(vectors, k, exclude):
        return [[Neighbour(ticket_id="n", source="s", label="b", score=0.9)] for _ in exclude]

    return Harness(
        labels=LABELS,
        classifier=TaskModels(LABELS, lambda texts: np.tile(probs, (len(texts), 1)), "x@1"),
        embed=lambda texts: np.ones((len(texts), 2), dtype=np.float32),
        search=search,
        policy=Policy(classifier_threshold=0.9, retrieval_threshold=0.9),
        frontier=frontier,
        batch_size=3,
    )


def test_each_configuration_uses_only_its_own_stages():
    examples = [LabelledText(f"t{i}", "b") for i in range(7)]
    harness = fake_harness()
    fine_tune = harness.run("fine-tune", examples).outcomes
    assert {o.label for o in fine_tune} == {"a"} and all(o.auto for o in fine_tune)
    retrieval = harness.run("retrieval", examples).outcomes
    assert {o.label for o in retrieval} == {"b"} and all(o.auto for o in retrieval)
    assert harness.run("frontier", examples).skipped
    with pytest.raises(ValueError, match="unknown configuration"):
        harness.run("magic", examples)


def test_the_single_stage_configurations_skip_the_out_of_scope_check():
    # Its score is the classifier's confidence times the neighbour's similarity: the retrieval
    # configuration's uniform classifier would flag every ticket.
    examples = [LabelledText(f"t{i}", "b") for i in range(5)]
    harness = fake_harness()
    harness.policy = harness.policy.model_copy(update={"scope_threshold": 0.5})
    assert all(o.auto and o.label == "b" for o in harness.run("retrieval", examples).outcomes)
    cascade = harness.run("cascade", examples).outcomes  # 0.94 x no 'a' neighbour: flagged
    assert not any(o.auto for o in cascade)


def test_an_unavailable_frontier_sends_tickets_to_review_not_the_eval_down():
    examples = [LabelledText(f"t{i}", "b") for i in range(4)]
    run = fake_harness(DownFrontier()).run("frontier", examples)
    assert len(run.outcomes) == 4 and not any(o.auto for o in run.outcomes)
    assert all(o.escalated for o in run.outcomes)


def test_the_tune_command_defaults_to_the_tune_targets_confidence():
    from cli.tune import tune as tune_command

    target = TuneTarget()
    defaults = {p.name: p.default for p in tune_command.params}
    assert defaults["confidence"] == target.confidence
    assert defaults["test_share"] == target.test_share
    assert defaults["out_of_scope_rate"] == target.out_of_scope_rate
    assert defaults["model_weight"] == target.model_weight
    assert defaults["scope_similarity_weight"] == target.scope_similarity_weight
