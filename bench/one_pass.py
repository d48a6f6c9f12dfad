"""One pass instead of two: the classifier's own mean pool as the retrieval vector (issue 20).

Tunes and evaluates an adapter twice with the code `triage tune` and `triage eval` run
(`models.workbench`), once with the sentence-transformers embedder (two passes, as served) and
once with the merged classifier's normalised mean pool in its place (one pass: its index is
rebuilt from the same labelled file with that vector). Both are tuned for the same precision on
the adapter's held-out split, each on a copy of the adapter (tune writes policy.json). Prints a
JSON line per mode: accuracy, auto precision and coverage of the cascade on the test file, and
CPU ms per ticket of the passes each mode runs.

    python bench/one_pass.py --adapter .triage/adapters/category \\
        --data examples/banking77/test.csv --index-data examples/banking77/train.csv
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


class PooledEmbedder:
    """The merged classifier's normalised mean pool, called like `models.embedder.Embedder`."""

    def __init__(self, adapter: Path, settings: Any) -> None:
        from models import assembly
        from models.inference import MeanPooled, build_run

        self.clf = assembly.load_classifier(adapter, settings)
        self.name = "classifier-pool"
        self.dim = int(self.clf.model.config.hidden_size)
        self.device = self.clf.device
        self.batch_size = settings.batch_size
        self.inference = "fp32"
        self._run = build_run(
            MeanPooled(self.clf.model.encoder), inference="fp32", device=self.clf.device
        )

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        from models.batches import PASS_OVERHEAD_TOKENS, outputs_of_token_ids

        b, tokens = self.clf.batching, self.clf.tokens
        ids = tokens.encode(texts, b.max_length)
        batches = tokens.plan(
            ids,
            batch_size=b.batch_size,
            max_batch_tokens=b.max_batch_tokens,
            overhead_tokens=PASS_OVERHEAD_TOKENS.get(self.device.type),
        )
        return outputs_of_token_ids(self._run, ids, batches, pad_id=tokens.pad_id, width=self.dim)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--adapter", type=Path, required=True)
    p.add_argument("--data", type=Path, required=True, help="test file")
    p.add_argument("--index-data", type=Path, required=True, help="labelled file to index")
    p.add_argument("--text-field", default="text")
    p.add_argument("--label-field", default="category")
    p.add_argument("--precision", type=float, default=0.99)
    p.add_argument("--confidence", type=float, default=0.5, help="as `triage tune`'s")
    p.add_argument("--modes", default="two,one")
    args = p.parse_args(argv)

    from models import workbench
    from models.data import read_labelled
    from models.settings import ModelSettings
    from models.tuning import TuneTarget

    os.environ["TRIAGE_CPU_INFERENCE"] = "fp32"  # the question is one pass or two, not int8
    settings = ModelSettings()
    test = read_labelled(args.data, args.text_field, args.label_field)
    index = read_labelled(args.index_data, args.text_field, args.label_field)
    real_loader = workbench.load_embedder  # type: ignore[attr-defined]
    for mode in args.modes.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            adapter = Path(tmp) / args.adapter.name
            shutil.copytree(args.adapter, adapter)
            (adapter / "policy.json").unlink(missing_ok=True)
            loader: Any = (
                (lambda s, a=adapter: PooledEmbedder(a, s)) if mode == "one" else real_loader
            )
            workbench.load_embedder = loader  # type: ignore[attr-defined]  # `load` calls it
            started = time.perf_counter()
            tuned = workbench.run_tune(
                adapter,
                settings,
                index,
                TuneTarget(precision=args.precision, confidence=args.confidence),
            )
            report = workbench.run_eval(adapter, settings, test, index, configs=("cascade",))
            cascade = report.runs["cascade"].outcomes
            ms = _pass_ms(adapter, settings, [ex.text for ex in test], mode)
        auto = [o for o in cascade if o.auto]
        figures = {
            "mode": mode,
            "data": str(args.data),
            "tickets": len(cascade),
            "accuracy": round(sum(o.label == o.truth for o in cascade) / len(cascade), 4),
            "auto_precision": round(sum(o.label == o.truth for o in auto) / max(1, len(auto)), 4),
            "coverage": round(len(auto) / len(cascade), 4),
            "tuned": tuned.summary() if hasattr(tuned, "summary") else None,
            "cpu_ms_per_ticket": ms,
            "wall_s": round(time.perf_counter() - started, 1),
        }
        print(json.dumps(figures, default=str), flush=True)
    return 0


def _pass_ms(adapter: Path, settings: Any, texts: list[str], mode: str) -> dict[str, float]:
    """CPU ms per ticket of each pass the mode runs, fp32 (tokenisation shared)."""
    from models import assembly

    clf = assembly.load_classifier(adapter, settings)
    passes: dict[str, Any] = {"classifier": clf.predict_logits}
    if mode == "two":
        passes["embedder"] = assembly.load_embedder(settings).embed
    out: dict[str, float] = {}
    for name, run in passes.items():
        run(texts[:64])
        started = time.process_time()
        for start in range(0, len(texts), 64):
            run(texts[start : start + 64])
        out[name] = round((time.process_time() - started) * 1000.0 / len(texts), 2)
    out["total"] = round(sum(out.values()), 2)
    return out


if __name__ == "__main__":
    sys.exit(main())
