"""The eval report as a person sees it: report.html in headless Chromium, with Banking77's 77
label names and a skewed confidence histogram (thousands of tickets in the top bin). Every text
of every plot lies inside its plot and overlaps no other text; a screenshot is kept."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models.data import examples_dir
from models.evaluation import ConfigRun, Outcome
from models.report import Report
from producer import LabelSet
from tests.review.browser import chromium, keep

pytestmark = pytest.mark.slow

#: Per SVG: texts outside the plot's box, and pairs of texts that overlap (1 px of slack).
CHECK = """
const out = [];
for (const svg of document.querySelectorAll('svg.plot')) {
  const box = svg.getBoundingClientRect();
  const texts = [...svg.querySelectorAll('text')]
    .map(t => [t.textContent, t.getBoundingClientRect()]);
  for (const [s, r] of texts) {
    if (r.left < box.left - 1 || r.right > box.right + 1 || r.top < box.top - 1
        || r.bottom > box.bottom + 1) out.push('outside: ' + s);
  }
  for (let i = 0; i < texts.length; i++) for (let j = i + 1; j < texts.length; j++) {
    const [a, ra] = texts[i], [b, rb] = texts[j];
    if (ra.left < rb.right - 1 && rb.left < ra.right - 1 && ra.top < rb.bottom - 1
        && rb.top < ra.bottom - 1) out.push('overlap: ' + a + ' / ' + b);
  }
}
return out;
"""


def banking_report() -> Report:
    labels = LabelSet.load(examples_dir() / "banking77" / "labels.json")
    rng = np.random.default_rng(0)
    runs = {}
    for name, skill in (("retrieval", 0.9), ("fine-tune", 0.93), ("cascade", 0.94)):
        outcomes = []
        for i in range(3080):
            truth = labels.names[i % len(labels)]
            conf = float(min(1.0, rng.beta(12 * skill, 1.0)))
            right = rng.random() < conf
            label = truth if right else labels.names[(i + 1) % len(labels)]
            outcomes.append(Outcome(truth, label, conf, conf > 0.9, conf <= 0.9, 20.0, 2.0, 0.0))
        runs[name] = ConfigRun(name, outcomes)
    return Report(
        labels,
        runs,
        1.0,
        0.0005,
        tuned={"coverage": 0.75, "precision": 0.99, "target": 0.99, "basis": "cross-validated"},
        meta={"overlaps_excluded": {"own": 0, "copies": 3, "tickets": 3}},
    )


def test_report_plots_show_every_label_and_tick_uncut(tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(banking_report().html(), encoding="utf-8")
    shot = tmp_path / "eval-report.png"
    with chromium(1200, 900) as driver:
        driver.get(page.as_uri())
        assert driver.execute_script("return document.querySelectorAll('svg.plot').length") == 5
        assert driver.execute_script(CHECK) == []
        height = driver.execute_script("return document.body.scrollHeight")
        driver.set_window_size(1200, height + 40)
        driver.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
    keep(shot)
