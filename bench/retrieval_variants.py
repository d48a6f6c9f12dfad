"""Retrieval alone, fp32 against the CPU default: neighbour labels and the embedder's CPU.

For a label set without a trained adapter (the IT helpdesk set): index `--index` random tickets
of a labelled file with each variant's embedder, search `--queries` others, and print a JSON
line per variant: the nearest neighbour's label right, the 10-neighbour vote right (the vote's
temperature), CPU ms a ticket; then how often both variants found the same nearest ticket.

    python bench/retrieval_variants.py \\
        --data ../shared/data/endava-it-tickets/all_tickets_processed_improved_v3.csv \\
        --text-field Document --label-field Topic_group
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--text-field", default="text")
    p.add_argument("--label-field", default="category")
    p.add_argument("--index", type=int, default=2000)
    p.add_argument("--queries", type=int, default=500)
    p.add_argument("--cache", type=Path, default=Path(".triage/cache/onnx"))
    args = p.parse_args(argv)

    from models.data import read_labelled
    from models.embedder import Embedder
    from models.inference import CpuInference
    from models.settings import ModelSettings

    rows = read_labelled(args.data, args.text_field, args.label_field)
    order = np.random.default_rng(0).permutation(len(rows))
    indexed = [rows[i] for i in order[: args.index]]
    queries = [rows[i] for i in order[args.index : args.index + args.queries]]
    labels = np.array([r.label for r in indexed])
    truth = np.array([r.label for r in queries])
    default = ModelSettings.model_fields["cpu_inference"].default
    nearest: dict[str, np.ndarray] = {}
    variants: tuple[tuple[str, CpuInference], ...] = (("fp32", "fp32"), ("default", default))
    for variant, inference in variants:
        embedder = Embedder(
            "all-MiniLM-L6-v2", inference=inference, cache_dir=args.cache, max_batch_tokens=16384
        )
        started = time.process_time()
        index = embedder.embed([r.text for r in indexed])
        found = embedder.embed([r.text for r in queries])
        cpu_ms = (time.process_time() - started) * 1000.0 / (len(indexed) + len(queries))
        sims = found @ index.T
        top = np.argsort(-sims, axis=1)[:, :10]
        weights = np.exp((np.take_along_axis(sims, top, axis=1) - 1.0) / 0.05)
        votes = [_vote(labels[row], w) for row, w in zip(top, weights, strict=True)]
        nearest[variant] = top[:, 0]
        figures = {
            "variant": variant,
            "inference": inference,
            "nearest_right": round(float((labels[top[:, 0]] == truth).mean()), 4),
            "vote10_right": round(float((np.array(votes) == truth).mean()), 4),
            "cpu_ms_per_ticket": round(cpu_ms, 2),
        }
        print(json.dumps(figures), flush=True)
    same = float((nearest["fp32"] == nearest["default"]).mean())
    print(json.dumps({"same_nearest": round(same, 4)}), flush=True)
    return 0


def _vote(found: np.ndarray, weights: np.ndarray) -> str:
    """The label of most weight among the neighbours found."""
    totals = {str(label): float(weights[found == label].sum()) for label in set(found)}
    return max(totals, key=lambda label: totals[label])


if __name__ == "__main__":
    sys.exit(main())
