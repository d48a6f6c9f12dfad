"""The stats page: per task and adapter version over a window, coverage, audited precision with
its 95% interval, corrections, the queue, the confusion table, SVG plots with axes, and a warning
when precision is under the precision the adapter was tuned for (policy.json)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from producer.ledger import Ledger
from tests.review.support import audits, auto, policy, ticket, unsure


def test_precision_below_the_tuned_target_is_a_clear_warning(
    ann, ledger: Ledger, tmp_path: Path
) -> None:
    policy(tmp_path / "adapter", 0.99)
    audits(ledger, right=30, wrong=10)
    for n in range(10):  # auto labels nobody audited: coverage counts them
        t = ticket(f"b{n}")
        ledger.record([(t, auto(t, "pin_blocked", at=datetime.now(UTC) - timedelta(hours=1)))])
    waiting = ticket("q1")
    ledger.record([(waiting, unsure(waiting, [("pin_blocked", 0.4)], ago_min=90))])
    page = ann.get("/review/stats/category?days=7")
    assert page.status_code == 200
    flat = re.sub(r"\s+", " ", page.text)
    assert 'role="alert"><strong>Precision below target</strong>' in flat
    assert "category@abc123" in flat
    assert "is below the 99.0% the adapter was tuned for" in flat
    # 30 of 40 audits right: 75.0% with its Wilson interval.
    assert '75.0% <span class="muted">(59.8%–85.8%)</span>' in flat
    assert '<td class="num">40</td>' in flat  # audited
    # 50 auto of 51 decisions; 10 of the 50 corrected by a person.
    assert '<td class="num">98.0% <span class="muted">(50)</span></td>' in flat
    assert '<td class="num">10</td> <td class="num">20.0%</td>' in flat
    # The confusion table.
    assert '<td>card_arrival</td><td>lost_or_stolen_card</td><td class="num">10</td>' in flat
    # The queue now.
    assert '<span class="n">1</span> waiting' in flat and "1h 30m" in flat
    # Two plots with axes and tick labels.
    svgs = re.findall(r"<svg .*?</svg>", flat)
    assert len(svgs) == 2
    precision_svg, ages_svg = svgs
    assert "<polygon" in precision_svg and "<polyline" in precision_svg  # band and line
    assert "target 99.0%" in precision_svg and ">precision</text>" in precision_svg
    today = datetime.now(UTC).strftime("%m-%d")
    assert f">{today}</text>" in precision_svg
    assert ">1–4h</text>" in ages_svg and ">items</text>" in ages_svg
    assert "<rect" in ages_svg and "<script" not in flat.split("</header>")[1]


def test_precision_meeting_the_target_raises_no_alarm(ann, ledger: Ledger, tmp_path: Path) -> None:
    policy(tmp_path / "adapter", 0.9)
    audits(ledger, right=40, wrong=0)
    flat = re.sub(r"\s+", " ", ann.get("/review/stats/category").text)
    assert "Precision below target" not in flat and "meets the tuned 90.0%" in flat


@pytest.mark.parametrize("precision", [None, "missing"])
def test_an_unknown_target_is_said(ann, ledger: Ledger, tmp_path: Path, precision) -> None:
    if precision != "missing":
        policy(tmp_path / "adapter", precision)
    audits(ledger, right=5, wrong=5)
    flat = re.sub(r"\s+", " ", ann.get("/review/stats/category").text)
    assert "Precision below target" not in flat
    assert "target precision unknown" in flat and "Target precision: unknown" in flat


def test_the_window_is_a_query_parameter(ann, ledger: Ledger) -> None:
    old = ticket("old")
    long_ago = datetime.now(UTC) - timedelta(days=20)
    ledger.record([(old, auto(old, "card_arrival", at=long_ago, adapter="category@old"))])
    assert "category@old" not in ann.get("/review/stats/category?days=7").text
    assert "category@old" in ann.get("/review/stats/category?days=30").text
    assert ann.get("/review/stats/category?days=0").status_code == 422
    assert ann.get("/review/stats/category?days=365").status_code == 422
    empty = ann.get("/review/stats/category?days=1").text
    assert "No model decisions in this window" in empty and "nothing waiting" in empty
