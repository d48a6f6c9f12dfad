"""`triage eval`'s own parts, without a model (fast): the search that never returns a ticket's
own copy, leaving labels out, the tables at 80 columns, and the report's plots."""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections.abc import Sequence

import numpy as np
import pytest
from rich.console import Console

from cli.evaluate import _print_figures
from models import plots, scores
from models.assembly import index_search
from models.cascade import Policy, TaskModels
from models.data import LabelledText
from models.evaluation import ConfigRun, Harness, Outcome, choose_unknown
from models.index import SNIPPET_CHARS
from models.overlap import Overlaps, normalise
from models.report import Report, tables
from models.workbench import labelled_index, operating_point
from producer import LabelSet, Neighbour, Ticket

LABELS = LabelSet.from_dict({"task": "category", "labels": [{"name": n} for n in "abcd"]})


def nb(i: str, label: str = "a", snippet: str = "", source: str = "idx") -> Neighbour:
    return Neighbour(ticket_id=i, source=source, label=label, score=0.5, snippet=snippet)


class Listed:
    """A search over one fixed ranking of neighbours, for every query; counts its calls."""

    def __init__(self, ranking: list[Neighbour]) -> None:
        self.ranking = ranking
        self.limits: list[int] = []

    def __call__(self, vectors, k, exclude):
        self.limits.append(k)
        return [self.ranking[:k] for _ in range(len(vectors))]


def test_a_ticket_never_gets_itself_or_a_copy_of_its_text_and_the_overlaps_are_counted():
    long = "x" * (SNIPPET_CHARS + 50)
    ranking = [
        nb("q1", source="eval", snippet="Where is  my CARD?"),  # its own point
        nb("c1", snippet="where is my card?"),  # a copy: case and spaces differ
        nb("c2", snippet="  Where is my card? "),
        nb("o1", snippet="where is my card now?"),  # not a copy
        nb("long", snippet=long[:SNIPPET_CHARS]),  # the index's cut of a copy of q2
        *(nb(f"o{i}") for i in range(2, 30)),
    ]
    search = Listed(ranking)
    overlaps = Overlaps(search)
    overlaps.know([Ticket(id="q1", source="eval", body="Where is  my CARD?")])
    overlaps.know([Ticket(id="q2", source="eval", body=long)])
    vectors = np.zeros((3, 2))
    found = overlaps(vectors, 5, [("eval", "q1"), ("eval", "q2"), ("eval", "unknown")])
    assert [n.ticket_id for n in found[0]] == ["o1", "long", "o2", "o3", "o4"]
    assert [n.ticket_id for n in found[1]] == ["q1", "c1", "c2", "o1", "o2"]
    assert [n.ticket_id for n in found[2]] == ["q1", "c1", "c2", "o1", "long"]  # text unknown
    assert overlaps.counts() == {"own": 1, "copies": 3, "tickets": 2}
    overlaps(vectors, 5, [("eval", "q1"), ("eval", "q2"), ("eval", "unknown")])
    assert overlaps.counts()["copies"] == 3  # a pair met twice counts once
    assert "3 copies of 2 tickets" in overlaps.line()


def test_hidden_labels_are_never_neighbours_however_many_the_index_holds():
    ranking = [nb(f"h{i}", label="d") for i in range(100)] + [nb(f"o{i}") for i in range(10)]
    search = Listed(ranking)
    found = Overlaps(search, hidden_labels={"d"})(np.zeros((1, 2)), 5, [("eval", "q")])
    assert [n.ticket_id for n in found[0]] == [f"o{i}" for i in range(5)]
    assert search.limits == [13, 37, 133]  # asked again with a wider margin until 5 remained
    assert Overlaps(Listed(ranking[:3]), {"d"})(np.zeros((1, 2)), 5, [("e", "q")]) == [[]]


def test_normalised_text_ignores_case_width_and_spacing():
    assert normalise(" Ｃard\tARRIVED \n late ") == normalise("card arrived late")
    assert normalise("card arrived") != normalise("card arrives")


class WordsEmbedder:
    """Hashed bags of words (lower-cased), unit length: copies embed identically."""

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), 64), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in text.lower().split():
                out[i, int(hashlib.md5(word.encode()).hexdigest(), 16) % 64] += 1.0
        unit: np.ndarray = out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)
        return unit


def test_eval_against_an_index_that_holds_wrong_copies_of_its_tickets_is_not_fooled():
    # The index holds each evaluated ticket again (as the demo's write-back leaves them), with
    # a wrong label; a ticket of its true label is close by. Seen, the copy wins the vote.
    examples = [LabelledText(f"north{i} east{i} south{i} west{i}", "b") for i in range(6)]
    rows = [LabelledText(f"NORTH{i}  east{i} south{i}\twest{i}", "a") for i in range(6)]
    rows += [LabelledText(f"north{i} east{i} south{i} up{i}", "b") for i in range(6)]
    rows += [LabelledText(f"card {i} was stolen from me", "c") for i in range(20)]
    index = labelled_index("category", WordsEmbedder(), rows)  # type: ignore[arg-type]
    plain = index_search(index, "category")
    overlaps = Overlaps(plain)
    try:
        runs = {
            name: Harness(
                labels=LABELS,
                classifier=TaskModels(LABELS, lambda t: np.full((len(t), 4), 0.25), "x@1"),
                embed=WordsEmbedder().embed,
                search=search,
                policy=Policy(neighbours=5, retrieval_threshold=0.5),
                progress=False,
            ).run("retrieval", examples)
            for name, search in (("plain", plain), ("overlaps", overlaps))
        }
    finally:
        index.close()
    assert [o.label for o in runs["plain"].outcomes] == ["a"] * 6  # the leak this guards against
    assert [o.label for o in runs["overlaps"].outcomes] == ["b"] * 6
    assert overlaps.counts() == {"own": 0, "copies": 6, "tickets": 6}


def test_leaving_labels_out_by_name_or_by_a_seeded_share():
    assert choose_unknown(LABELS, "d, b") == ["b", "d"]
    assert choose_unknown(LABELS, "0.5", seed=3) == choose_unknown(LABELS, "0.5", seed=3)
    assert len(choose_unknown(LABELS, "0.5")) == 2
    with pytest.raises(ValueError, match="zz not in the label set"):
        choose_unknown(LABELS, "a,zz")
    with pytest.raises(ValueError, match="fewer than two"):
        choose_unknown(LABELS, "a,b,c")
    with pytest.raises(ValueError, match="between 0 and 1"):
        choose_unknown(LABELS, "1.5")


def outcome(truth: str, label: str, auto: bool, confidence: float = 0.9) -> Outcome:
    return Outcome(truth, label, confidence, auto, not auto, 5.0, 1.0, 0.0)


def test_left_out_labels_are_scored_apart_from_the_in_scope_figures():
    outcomes = [
        outcome("a", "a", True),
        outcome("a", "b", True),
        outcome("b", "b", False),
        outcome("b", "b", True),
        outcome("d", "a", True),  # an unknown kind auto-labelled: wrong by definition
        outcome("d", "b", False),
        outcome("d", "c", False),
        outcome("d", "a", False),
    ]
    m = scores.summarise(outcomes, LABELS, 0.0, unknown={"d"})
    assert m["tickets"] == 4 and m["accuracy"] == 0.75
    assert m["coverage"] == 0.75 and m["auto_precision"] == pytest.approx(2 / 3)
    assert m["unknown_tickets"] == 4 and m["unknown_auto"] == 0.25
    assert m["mixed_auto_precision"] == 0.5  # 2 right of 4 auto labels
    assert set(scores.UNKNOWN_FIGURES) <= set(m)
    assert "unknown_auto" not in scores.summarise(outcomes, LABELS, 0.0)


def outcomes(n: int, seed: int, unknown: int = 0) -> list[Outcome]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        truth = "d" if i < unknown else LABELS.names[i % 3]
        conf = float(rng.uniform(0.3, 1.0))
        label = truth if rng.random() < conf else LABELS.names[(i + 1) % 3]
        out.append(outcome(truth, label, conf > 0.8, conf))
    return out


def report(unknown: tuple[str, ...] = ()) -> Report:
    runs = {
        "frontier": ConfigRun("frontier", skipped="no frontier configured"),
        "frontier+rag": ConfigRun("frontier+rag", outcomes(300, 0, 20 if unknown else 0)),
        "retrieval": ConfigRun("retrieval", outcomes(300, 1, 20 if unknown else 0)),
        "fine-tune": ConfigRun("fine-tune", outcomes(300, 2, 20 if unknown else 0)),
        "cascade": ConfigRun("cascade", outcomes(300, 3, 20 if unknown else 0)),
    }
    return Report(
        LABELS,
        runs,
        3600.0,
        0.0005,
        unknown_labels=unknown,
        tuned={"coverage": 0.8, "precision": 0.99, "target": 0.99, "basis": "cross-validated"},
        meta={
            "overlaps_excluded": {"own": 0, "copies": 12, "tickets": 9},
            "index": "in-memory, 10,003 labelled tickets (--index-data)",
            "wall_s": {"retrieval": 61.2, "fine-tune": 100.0, "cascade": 140.4},
        },
    )


@pytest.mark.parametrize("unknown", [(), ("d",)])
def test_the_eval_tables_fit_80_columns_with_nothing_cut(unknown):
    figures = json.loads(json.dumps(report(unknown).figures()))
    out = io.StringIO()
    _print_figures(figures, Console(file=out, width=80, record=True, color_system=None))
    text = out.getvalue()
    assert "…" not in text
    assert max(len(line) for line in text.splitlines()) <= 80
    for t in tables(figures):
        for row in t.rows:
            for cell in row:
                assert cell in text, cell
    assert "12 copies of the ticket's own text" in text
    if unknown:
        assert "auto-labelled" in text and "tickets of left-out labels (1)" in text
    cascade = figures["configs"]["cascade"]
    assert f"{cascade['auto_precision'] * 100:.2f}%" in text  # a percentage, to the hundredth


def test_report_plots_have_ticks_bin_counts_and_the_tuned_point():
    page = report(("d",)).html()
    assert page.count("<svg") == 4 + 2  # a reliability diagram per run, risk-coverage, F1
    reliability = re.findall(r"<svg.*?</svg>", page)[0]
    for tick in ("0%", "20%", "100%"):
        assert f">{tick}</text>" in reliability
    # Each bar carries its ticket count, and the counts add up to the run's tickets.
    bars = re.findall(r"(\d+) tickets</title></rect>", reliability)
    assert sum(int(b) for b in bars) == 280  # frontier+rag's in-scope tickets
    assert "◆ tuned" in page and "tuned: 80.0% coverage, 1.00% error expected" in page
    assert "cascade measured" in page
    assert "left-out labels: d" in page and "Tickets of left-out labels (1)" in page
    md = report(("d",)).markdown()
    assert "| cascade |" in md and "auto-labelled (all wrong)" in md
    assert "tuned for: precision 99.00%; expected 99.00% precision at 80.0% coverage" in md


def test_risk_coverage_axis_ticks_reach_past_the_highest_error():
    svg = plots.risk_coverage({"x": [(0.5, 0.004), (1.0, 0.013)]}, tuned=(0.8, 0.01))
    assert ">1.5%</text>" in svg and ">0.5%</text>" in svg and ">100%</text>" in svg


def test_the_operating_point_comes_from_the_tuning_summary():
    cv = {"cv_coverage": 0.8, "cv_precision": 0.991, "target": {"precision": 0.99}}
    assert operating_point(cv) == {
        "coverage": 0.8,
        "precision": 0.991,
        "basis": "cross-validated",
        "target": 0.99,
    }
    certified = cv | {"test": {"coverage": 0.7, "precision": 0.995, "lower": 0.990}}
    point = operating_point(certified)
    assert point is not None and (point["coverage"], point["lower"]) == (0.7, 0.990)
    assert point["basis"] == "held-out test part"
    assert operating_point({}) is None
