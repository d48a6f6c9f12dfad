"""A 150-label, 18,000-row labelled set for timing `triage train` (issue 19's 150-intent case).

Rows, lengths and label count are what matter for time, not the task: Banking77's train and test
tickets (13,083 short texts) with 65 of its 77 labels each split in two at random (142 labels),
and 4,917 IT helpdesk tickets (longer texts) under their 8 labels: 150 labels in all.

    python -m bench.wide_set --out .triage/wide   # -> wide.csv (text,category), labels.json
    /usr/bin/time -v triage train --data .triage/wide/wide.csv --labels .triage/wide/labels.json \
        --out .triage/wide/adapter

Measured 2026-12-06 as process CPU time with one thread (the 2-core Xeon was shared, load 8-20),
`TrainConfig(max_train_examples=N, num_threads=1, ...)` on this set:

| recipe | rows (train/held-out) | epochs | CPU s | train examples/s (wall) |
|---|---|---|---|---|
| all 6 layers, max_length 64 (the old default) | 1,600/400 | 1 | 44.3 | 13.3 |
| top 3 layers, max_length picked (72) | 1,600/400 | 1 | 30.9 | 24.5 |
| top 2 layers, max_length picked (72) | 1,600/400 | 1 | 26.6 | 43.6 |
| top 2 layers (the default) | 3,200/800 | 1 | 53.8 | 8.7 (load 16) |
| top 2 layers (the default) | 3,200/800 | 2 | 81.7 | 8.0 (load 18) |

An epoch of the default costs 27.9 CPU s per 3,200 rows (8.7 ms a row, its held-out pass
included) after 26 s of loading, tokenising and caching the frozen layers: the full 18,000 rows
(14,400/3,600) with 4 epochs project to about 590 CPU s (10 CPU-minutes: about 5-6 minutes on two
idle cores), against about 1,670 CPU s (28 CPU-minutes) for the old recipe's 4 epochs.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
from pathlib import Path

from models.data import examples_dir, read_labelled

IT_HELPDESK = (
    Path(__file__).resolve().parents[2]
    / "shared/data/endava-it-tickets/all_tickets_processed_improved_v3.csv"
)
ROWS, SPLIT_LABELS = 18_000, 65


def build(seed: int = 0) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    banking = examples_dir() / "banking77"
    rows = read_labelled(banking / "train.csv") + read_labelled(banking / "test.csv")
    names = sorted({r.label for r in rows})
    split = set(rng.sample(names, SPLIT_LABELS))
    out = [
        (r.text, f"{r.label}/{rng.randint(0, 1)}" if r.label in split else r.label) for r in rows
    ]
    it = read_labelled(IT_HELPDESK, "Document", "Topic_group")
    out += [(r.text, f"it/{r.label}") for r in rng.sample(it, ROWS - len(out))]
    rng.shuffle(out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(".triage/wide"))
    args = parser.parse_args()
    rows = build()
    args.out.mkdir(parents=True, exist_ok=True)
    with (args.out / "wide.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "category"])
        writer.writerows(rows)
    labels = sorted({label for _, label in rows})
    (args.out / "labels.json").write_text(
        json.dumps({"task": "category", "labels": [{"name": n} for n in labels]}, indent=1)
    )
    print(f"{len(rows)} rows, {len(labels)} labels -> {args.out}")


if __name__ == "__main__":
    main()
