"""`python -m bench.scope_scores`: which out-of-scope score separates unknown kinds best.

Labels are left out as `bench.leave_out` does (their logits dropped, their tickets out of the
index) and each test ticket gets the candidate scores; each score is cut where it flags a given
share of the in-scope tickets (as `triage tune` cuts the served one, a conformal quantile), and
the bench reports, at a classifier threshold, how many left-out tickets the classifier would
still auto-label and how much in-scope coverage the cut costs. The classifier alone decides
here (no neighbour vote): this ranks scores, the served policy is `bench.leave_out`'s.

- ``served``: the classifier's calibrated confidence times the similarity of the nearest indexed
  ticket of the label it picks (`models.vote.scope_score`);
- ``energy``: log-sum-exp of the calibrated logits (Liu et al. 2020): large when some label's
  logit is large, whatever the others do;
- ``max_logit``: the largest calibrated logit;
- ``energy+5log(sim)``: energy, less where the nearest ticket of the label is far.

    python -m bench.scope_scores --adapter .triage/b77/adapter --leave-out 10 --threshold 0.5
"""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Sequence

import numpy as np

from bench.cascade_runs import arguments, read
from models.settings import get_settings

FLAG_SHARES = (0.03, 0.05, 0.10)


def main(argv: Sequence[str] | None = None) -> int:
    parser = arguments(__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--leave-out", type=int, default=10, help="how many labels, at random")
    parser.add_argument(
        "--threshold", type=float, default=0.9, help="the classifier's auto-label threshold"
    )
    args = parser.parse_args(argv)
    from models import assembly

    train, test = read(args.index_data, args), read(args.test, args)[: args.limit]
    names = sorted({r.label for r in train})
    left = set(random.Random(args.seed).sample(names, args.leave_out))
    s = get_settings()
    clf, embedder = assembly.load_classifier(args.adapter, s), assembly.load_embedder(s)
    keep = [i for i, name in enumerate(clf.labels.names) if name not in left]
    kept_names = np.array([clf.labels.names[i] for i in keep])
    indexed = [r for r in train if r.label not in left]
    index_vectors = embedder.embed([r.text for r in indexed])
    index_labels = np.array([r.label for r in indexed])

    texts = [r.text for r in test]
    logits = (clf.predict_logits(texts) / clf.temperature)[:, keep]
    top = logits.max(axis=1)
    energy = top + np.log(np.exp(logits - top[:, None]).sum(axis=1))
    confidence = np.exp(top - energy)  # the softmax's top probability over the kept labels
    picked = kept_names[logits.argmax(axis=1)]
    similarity = embedder.embed(texts) @ index_vectors.T
    nearest = np.array([similarity[i, index_labels == picked[i]].max() for i in range(len(texts))])
    unknown = np.array([r.label in left for r in test])
    scores = {
        "served": confidence * nearest,
        "energy": energy,
        "max_logit": top,
        "energy+5log(sim)": energy + 5.0 * np.log(np.clip(nearest, 1e-6, 1.0)),
    }
    auto = confidence >= args.threshold
    out: dict[str, object] = {
        "left_out": sorted(left),
        "threshold": args.threshold,
        "in_scope_tickets": int((~unknown).sum()),
        "left_out_tickets": int(unknown.sum()),
        "in_scope_coverage": round(float(auto[~unknown].mean()), 4),
        "left_out_auto_labelled_unchecked": round(float(auto[unknown].mean()), 4),
    }
    for name, score in scores.items():
        rows = []
        for share in FLAG_SHARES:
            cut = np.quantile(score[~unknown], share)
            passes = score >= cut
            rows.append(
                {
                    "flags_in_scope": share,
                    "left_out_auto_labelled": round(float((auto & passes)[unknown].mean()), 4),
                    "in_scope_coverage_lost": round(
                        float((auto & ~passes)[~unknown].sum() / (~unknown).sum()), 4
                    ),
                }
            )
        out[name] = rows
        print(json.dumps({name: rows}), flush=True)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
