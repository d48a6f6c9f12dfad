"""`python -m bench.leave_out`: tickets of a kind the label set does not know (labels left out).

Some labels are taken away as if they did not exist (`models.novelty.leave_labels_out`: their
classifier probabilities dropped and the rest renormalised, their tickets out of the index), and
the test tickets go through the first pass with the tuned policy (the adapter's policy.json). The
left-out labels' tickets stand in for unknown kinds: how many are auto-labelled (necessarily
wrong), with the out-of-scope check and without it; and what the check costs the in-scope
tickets' coverage. The whole label set's figures (coverage, auto-precision, accuracy) come too.

    python -m bench.leave_out --adapter .triage/adapters/category --leave-out 10
"""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Sequence

from bench.cascade_runs import arguments, figures, fill, load_models, read, run_pass, search_of
from models.novelty import leave_labels_out
from producer.schemas import Ticket


def main(argv: Sequence[str] | None = None) -> int:
    parser = arguments(__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--leave-out", type=int, default=10, help="how many labels, at random")
    parser.add_argument("--labels", default=None, help="or these labels, comma-separated")
    args = parser.parse_args(argv)
    train = read(args.index_data, args)
    test = read(args.test, args)[: args.limit]
    names = sorted({r.label for r in train})
    left = (
        sorted(args.labels.split(","))
        if args.labels
        else sorted(random.Random(args.seed).sample(names, args.leave_out))
    )
    models = load_models(args, [r for r in train if r.label not in left])
    fill(models, "everything", train)
    tickets = [Ticket(id=f"t-{i}", source="leave-out", body=r.text) for i, r in enumerate(test)]
    truth = [r.label for r in test]
    unknown = [t in left for t in truth]
    task, search = leave_labels_out(models.task, search_of(models), left)
    out: dict[str, object] = {"left_out": left, "policy": models.policy.model_dump()}
    for gate in ("with_check", "without_check"):
        policy = models.policy
        if gate == "without_check":
            policy = policy.model_copy(update={"scope_threshold": None})
        everything = run_pass(
            tickets,
            task=models.task,
            embed=models.embed,
            search=search_of(models, "everything"),
            policy=policy,
        )
        firsts = run_pass(tickets, task=task, embed=models.embed, search=search, policy=policy)
        inside = [(fp, t) for fp, t, u in zip(firsts, truth, unknown, strict=True) if not u]
        outside = [fp for fp, u in zip(firsts, unknown, strict=True) if u]
        out[gate] = {
            "all_labels": figures(everything, truth),
            "in_scope": figures([fp for fp, _ in inside], [t for _, t in inside]),
            "left_out_tickets": len(outside),
            "left_out_auto_labelled": round(
                sum(not fp.needs_escalation for fp in outside) / max(1, len(outside)), 4
            ),
        }
        print(json.dumps({gate: out[gate]}), flush=True)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
