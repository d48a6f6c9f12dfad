"""`python -m bench.second_pass`: does the cascade confirm its own earlier mistakes?

The test tickets stream through the first pass twice, each time shuffled, in the worker's
batches; after each batch its auto-labelled tickets go into the index as the write-back does
(set_by "model", with their vectors). The index starts with the labelled file (people's
labels). The second pass meets every ticket's model-labelled near neighbours, its own wrong
labels among them (a ticket never meets itself: same source and id). Its auto-precision must not
fall below the first's. Each `--model-weights` value (`Policy.model_weight`: how much a
model-written neighbour counts in the vote) runs in its own collection; a clean run (nothing
written back) is the baseline.

    python -m bench.second_pass --adapter .triage/adapters/category --model-weights 1,0.5,0
"""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Sequence

from bench.cascade_runs import (
    BATCH,
    Models,
    arguments,
    figures,
    fill,
    load_models,
    read,
    search_of,
)
from models.cascade import FirstPass, Policy, Search, first_pass
from models.index import IndexedTicket
from producer.schemas import Ticket


def main(argv: Sequence[str] | None = None) -> int:
    parser = arguments(__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--model-weights", default="1,0.5,0")
    parser.add_argument(
        "--index-rows", type=int, default=None, help="index only N labelled rows (at random)"
    )
    args = parser.parse_args(argv)
    index_rows = read(args.index_data, args)
    if args.index_rows:  # fewer people's labels: the model's written-back ones weigh more
        index_rows = random.Random(args.seed).sample(index_rows, args.index_rows)
    test = read(args.test, args)[: args.limit]
    models = load_models(args, index_rows)
    tickets = [Ticket(id=f"t-{i}", source="second-pass", body=r.text) for i, r in enumerate(test)]
    truth = {t.id: r.label for t, r in zip(tickets, test, strict=True)}
    out: dict[str, object] = {"tickets": len(tickets), "policy": models.policy.model_dump()}
    for weight in (float(w) for w in args.model_weights.split(",")):
        # Each run its own collection: a copy of the labelled file's (vectors embedded once).
        name = f"{models.name}_w{str(weight).replace('.', '_')}"
        fill(models, name, index_rows)
        policy = models.policy.model_copy(update={"model_weight": weight})
        search = search_of(models, name)
        clean = stream(tickets, models, policy, search, None, random.Random(args.seed))
        passes = []
        for n in (1, 2):
            order = random.Random(args.seed + n)
            firsts = stream(tickets, models, policy, search, name, order)
            passes.append(figures(firsts, [truth[fp.ticket.id] for fp in firsts]))
        out[f"model_weight={weight}"] = {
            "clean": figures(clean, [truth[fp.ticket.id] for fp in clean]),
            "pass_1": passes[0],
            "pass_2": passes[1],
        }
        print(json.dumps({f"model_weight={weight}": out[f"model_weight={weight}"]}), flush=True)
    print(json.dumps(out, indent=2))
    return 0


def stream(
    tickets: Sequence[Ticket],
    models: Models,
    policy: Policy,
    search: Search,
    write_to: str | None,
    rng: random.Random,
) -> list[FirstPass]:
    """One pass in shuffled batches; each batch's auto labels written to `write_to` after it."""
    order = list(tickets)
    rng.shuffle(order)
    out: list[FirstPass] = []
    for start in range(0, len(order), BATCH):
        firsts = first_pass(
            order[start : start + BATCH],
            task=models.task,
            embed=models.embed,
            search=search,
            policy=policy,
        )
        out += firsts
        learnt = [fp for fp in firsts if not fp.needs_escalation]
        if write_to and learnt:
            rows = [
                IndexedTicket(fp.ticket.id, fp.ticket.source, fp.label, fp.ticket.text, "model")
                for fp in learnt
            ]
            models.index.upsert(write_to, rows, models.embed([fp.ticket.text for fp in learnt]))
    return out


if __name__ == "__main__":
    sys.exit(main())
