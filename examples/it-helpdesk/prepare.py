"""Split the Endava IT helpdesk tickets into train/test with near-duplicates kept on one side.

The file is full of templated emails ("new purchase po ..."); a random split puts copies of
the same template on both sides and inflates retrieval and kNN scores. Rows whose first 80
characters (lower-cased, whitespace collapsed) match form one group; a group goes wholly to
train or to test. Groups whose rows disagree on the label are kept (the labels are silver,
see SOURCE.md) but still never straddle the split.

    python examples/it-helpdesk/prepare.py [--source CSV] [--out DIR] [--test-fraction 0.2]

Writes ``train.csv`` and ``test.csv`` (columns ``text``, ``category``) into --out
(default ``.triage/it-helpdesk``), stratified by label with a fixed seed.
"""

from __future__ import annotations

import argparse
import csv
import random
import re
from collections import defaultdict
from pathlib import Path

DEFAULT_SOURCE = (
    Path(__file__).resolve().parents[3]
    / "shared"
    / "data"
    / "endava-it-tickets"
    / "all_tickets_processed_improved_v3.csv"
)


def group_key(text: str) -> str:
    return re.sub(r"\s+", " ", text.lower()).strip()[:80]


def split(
    rows: list[tuple[str, str]], test_fraction: float, seed: int
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    groups: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for text, label in rows:
        groups[group_key(text)].append((text, label))
    # Stratify groups by their majority label, so every class keeps its share in test.
    by_label: dict[str, list[list[tuple[str, str]]]] = defaultdict(list)
    for members in groups.values():
        labels = [label for _, label in members]
        by_label[max(set(labels), key=labels.count)].append(members)
    rng = random.Random(seed)
    train: list[tuple[str, str]] = []
    test: list[tuple[str, str]] = []
    for label in sorted(by_label):
        label_groups = by_label[label]
        rng.shuffle(label_groups)
        wanted = test_fraction * sum(len(g) for g in label_groups)
        taken = 0
        for members in label_groups:
            if taken < wanted:
                test.extend(members)
                taken += len(members)
            else:
                train.extend(members)
    rng.shuffle(train)
    rng.shuffle(test)
    return train, test


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--out", type=Path, default=Path(".triage/it-helpdesk"))
    parser.add_argument("--test-fraction", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    with args.source.open(encoding="utf-8", newline="") as fh:
        rows = [(r["Document"].strip(), r["Topic_group"]) for r in csv.DictReader(fh)]
    rows = [(text, label) for text, label in rows if text]
    train, test = split(rows, args.test_fraction, args.seed)
    train_keys = {group_key(text) for text, _ in train}
    assert not any(group_key(text) in train_keys for text, _ in test), "a group straddles"

    args.out.mkdir(parents=True, exist_ok=True)
    for name, part in (("train.csv", train), ("test.csv", test)):
        with (args.out / name).open("w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["text", "category"])
            writer.writerows(part)
    print(f"{len(rows)} rows -> train {len(train)}, test {len(test)} in {args.out}")


if __name__ == "__main__":
    main()
