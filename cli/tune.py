"""`triage tune`: the cascade's thresholds and mix, chosen on held-out tickets (policy.json).

Heavy imports happen inside the command.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from cli.options import FILE, adapter_labels, fields, measured_adapter, read_inputs, unknown_label

if TYPE_CHECKING:
    pass


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
    help="One-sided confidence that the target precision holds on new tickets (Wilson "
    "lower bound on the tuning tickets); 0.5 takes the observed precision as it is.",
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
    from models.workbench import run_tune
    from producer.errors import TriageError

    s = get_settings()
    adapter = opts["adapter"] or s.adapter_dir(opts["task"])
    # Every row of both files checked before the adapter loads.
    index_file, held_file = read_inputs(
        opts["index_data"], opts["held_out"], opts=opts, labels=adapter_labels(adapter)
    )
    try:
        target = TuneTarget(
            precision=(
                opts["target_precision"] or (0.99 if opts["max_escalation"] is None else None)
            ),
            max_escalation=opts["max_escalation"],
            folds=opts["folds"],
            confidence=opts["confidence"],
        )
        index_data = index_file.examples if index_file else None
        held_out = held_file.examples if held_file else None
        report = run_tune(adapter, s, index_data, target, held_out)
    except (TriageError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    p, cal = report.policy, report.calibration
    click.echo(
        f"policy written to {adapter / 'policy.json'}\n"
        f"  classifier_threshold {p.classifier_threshold:.4f}, retrieval_threshold "
        f"{p.retrieval_threshold:.4f}, classifier_weight {p.classifier_weight}, "
        f"vote_temperature {p.vote_temperature}, neighbours {p.neighbours}\n"
        f"  cross-validated: coverage {report.cv_coverage:.3f} at precision "
        f"{report.cv_precision:.4f}; full-coverage accuracy {report.accuracy:.4f}\n"
        f"  ECE raw {cal['ece_raw']:.4f}, temperature {cal['temperature']:.3f} -> "
        f"{cal['ece_temperature']:.4f}, isotonic (out of fold) {cal['ece_isotonic_cv']:.4f}"
    )
