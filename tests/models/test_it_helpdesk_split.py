"""The IT-helpdesk split keeps near-duplicate groups on one side and every label in test."""

from __future__ import annotations

import importlib.util
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def load_prepare():
    spec = importlib.util.spec_from_file_location(
        "it_prepare", ROOT / "examples" / "it-helpdesk" / "prepare.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_templated_tickets_never_straddle_the_split():
    prepare = load_prepare()
    template = "new purchase po please approve the attached order for the team " * 2
    rows = [(f"{template} number {i}", "Purchase") for i in range(40)]  # one group of 40
    rows += [(f"laptop {i} screen broken flickers", "Hardware") for i in range(200)]
    rows += [(f"access {i} to shared folder", "Access") for i in range(100)]
    train, test = prepare.split(rows, test_fraction=0.2, seed=0)
    assert sorted(train + test) == sorted(rows)
    purchase_sides = {"train" if r in train else "test" for r in rows[:40]}
    assert len(purchase_sides) == 1
    test_labels = Counter(label for _, label in test)
    assert 30 <= test_labels["Hardware"] <= 50 and 10 <= test_labels["Access"] <= 30
