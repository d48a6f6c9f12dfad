"""`triage tune`: the cascade's thresholds and mix, chosen on held-out tickets (policy.json).

Heavy imports happen inside the command.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from cli.options import FILE, adapter_labels, fields, measured_adapter, read_inputs, unknown_label

if TYPE_CHECKING:
    from models.cascade import Policy
    from models.tuning import TuneReport


@click.command()
@measured_adapter(
    "tune",
    "Labelled file to build a fresh in-memory neighbour index from (the held-out tickets are "
    "left out); default: the worker's configured index.",
)
@click.option(
    "--held-out",
    type=FILE,
    envvar="TRIAGE_TUNE_HELD_OUT",
    help="Held-out tickets to tune on [default: the split `triage train` saved].",
)
@fields
@unknown_label(("error", "skip"))
@click.option(
    "--precision",
    "target_precision",
    type=float,
    default=None,
    envvar="TRIAGE_TUNE_PRECISION",
    help="Target precision of auto-labelled tickets [default: 0.99].",
)
@click.option(
    "--max-escalation",
    type=float,
    default=None,
    envvar="TRIAGE_TUNE_MAX_ESCALATION",
    help="Instead: the largest share of tickets that may escalate.",
)
@click.option(
    "--confidence",
    type=float,
    default=0.95,  # TuneTarget.confidence (models.tuning is a heavy import for --help)
    show_default=True,
    envvar="TRIAGE_TUNE_CONFIDENCE",
    help="One-sided confidence that the target precision holds on new tickets: the "
    "thresholds must pass a binomial test at 1 - confidence on held-out tickets that chose "
    "nothing (Learn-then-Test).",
)
@click.option(
    "--test-share",
    type=float,
    default=0.5,  # TuneTarget.test_share
    show_default=True,
    envvar="TRIAGE_TUNE_TEST_SHARE",
    help="Share of the held-out tickets kept to test the chosen thresholds on; the rest "
    "chooses the mix, the out-of-scope threshold and the candidate thresholds.",
)
@click.option(
    "--out-of-scope-rate",
    type=float,
    default=0.05,  # TuneTarget.out_of_scope_rate
    show_default=True,
    envvar="TRIAGE_TUNE_OUT_OF_SCOPE_RATE",
    help="Largest share of in-scope tickets sent to review as unlike every label (the "
    "classifier's energy too low: no label's logit is large); 0 turns the check off.",
)
@click.option(
    "--scope-similarity-weight",
    type=click.FloatRange(min=0.0),
    default=0.0,  # TuneTarget.scope_similarity_weight
    show_default=True,
    envvar="TRIAGE_TUNE_SCOPE_SIMILARITY_WEIGHT",
    help="Adds this times the log of the similarity of the nearest ticket of the chosen label "
    "to the out-of-scope score: over 0, a ticket far from every labelled one counts as more "
    "unlike.",
)
@click.option(
    "--model-weight",
    type=float,
    default=0.0,  # TuneTarget.model_weight
    show_default=True,
    envvar="TRIAGE_TUNE_MODEL_WEIGHT",
    help="Weight of a model-written neighbour in the vote (a person's counts "
    "TRIAGE_HUMAN_WEIGHT): 0 keeps the cascade from confirming its own earlier labels.",
)
@click.option("--folds", type=int, default=5, show_default=True)
def tune(**opts: Any) -> None:
    """Choose the cascade thresholds and mix on held-out tickets; write policy.json.

    The worker reads <adapter>/policy.json in preference to the TRIAGE_*_THRESHOLD settings.

    \b
    Example:
      triage tune --index-data examples/banking77/train.csv --precision 0.99
    """
    from models.settings import get_settings
    from models.tuning import TuneTarget
    from producer.errors import TriageError

    s = get_settings()
    adapter = opts["adapter"] or s.adapter_dir(opts["task"])
    # Every row of both files checked before the adapter loads.
    index_file, held_file = read_inputs(
        opts["index_data"], opts["held_out"], opts=opts, labels=adapter_labels(adapter)
    )
    from models.workbench import run_tune  # torch: only once the files are known good

    try:
        target = TuneTarget(
            precision=(
                opts["target_precision"] or (0.99 if opts["max_escalation"] is None else None)
            ),
            max_escalation=opts["max_escalation"],
            folds=opts["folds"],
            confidence=opts["confidence"],
            test_share=opts["test_share"],
            out_of_scope_rate=opts["out_of_scope_rate"] or None,
            model_weight=opts["model_weight"],
            scope_similarity_weight=opts["scope_similarity_weight"],
        )
        index_data = index_file.examples if index_file else None
        held_out = held_file.examples if held_file else None
        report = run_tune(adapter, s, index_data, target, held_out)
    except (TriageError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(describe(report, adapter))


def describe(report: TuneReport, adapter: Path) -> str:
    """What `triage tune` chose and why, for people: the operating point and its interval."""
    p, cal, c = report.policy, report.calibration, report.certified
    lines = [
        f"policy written to {adapter / 'policy.json'}",
        f"  classifier_threshold {p.classifier_threshold:.4f}, retrieval_threshold "
        f"{p.retrieval_threshold:.4f}, classifier_weight {p.classifier_weight}, "
        f"vote_temperature {p.vote_temperature}, neighbours {p.neighbours}, model_weight "
        f"{p.model_weight}",
    ]
    if c is not None:
        lines.append(
            f"  tested on {c.tickets} held-out tickets that chose nothing: coverage "
            f"{c.coverage:.3f}, precision {c.precision:.4f} ({c.right}/{c.auto}), at least "
            f"{c.lower:.4f} with {report.target.confidence:.0%} confidence (Clopper-Pearson; "
            f"{c.tested} threshold pairs tested in order)"
        )
    lines.append(
        f"  selection part, cross-validated: coverage {report.cv_coverage:.3f} at precision "
        f"{report.cv_precision:.4f}; full-coverage accuracy {report.accuracy:.4f}"
    )
    oos = report.out_of_scope
    if p.scope_threshold is not None:
        score = scope_formula(p)
        lines.append(
            f"  out of scope under {p.scope_threshold:.3f} ({score}): flags "
            f"{oos.get('flagged_test', float('nan')):.1%} of in-scope test tickets "
            f"(asked: at most {report.target.out_of_scope_rate:.0%})"
        )
    if cal:
        lines.append(
            f"  ECE raw {cal['ece_raw']:.4f}, temperature {cal['temperature']:.3f} -> "
            f"{cal['ece_temperature']:.4f}, isotonic (out of fold) {cal['ece_isotonic_cv']:.4f}"
        )
    return "\n".join(lines)


def scope_formula(p: Policy) -> str:
    """The out-of-scope score `p` thresholds, as a formula for people."""
    if p.scope_kind == "confidence":
        return "confidence x nearest same-label similarity"
    if p.scope_similarity_weight == 0.0:
        return "the classifier's energy"
    return f"energy + {p.scope_similarity_weight:g} log(nearest same-label similarity)"
