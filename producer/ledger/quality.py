"""Measured precision against the precision an adapter was tuned for: one rule for the desk's
stats page, `triage status --quality` and `triage drift`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from producer.ledger.records import VersionStats

#: below: the whole 95% interval is under the target; under: only the estimate is.
Level = Literal["below", "under", "ok", "unknown"]


@dataclass(frozen=True)
class Target:
    """The precision an adapter was tuned for; None when unknown (`why` says so)."""

    precision: float | None
    why: str


@dataclass(frozen=True)
class Verdict:
    level: Level
    text: str


def target_for(adapter_dir: Path) -> Target:
    """The precision `triage tune` aimed at for the adapter in `adapter_dir` (its
    ``policy.json``, ``tuning.target.precision``)."""
    path = adapter_dir / "policy.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Target(None, f"unknown: no tuned policy at {path} (run `triage tune`)")
    except (OSError, ValueError) as exc:
        return Target(None, f"unknown: {path} could not be read ({exc})")
    target = (data.get("tuning") or {}).get("target") or {} if isinstance(data, dict) else {}
    precision = target.get("precision") if isinstance(target, dict) else None
    if not isinstance(precision, int | float) or not 0 < precision < 1:
        return Target(None, f"unknown: {path} was tuned for no precision target")
    return Target(float(precision), f"tuned for {precision:.1%} ({path})")


def verdict(version: VersionStats, target: Target) -> Verdict:
    """How `version`'s audited precision compares with the tuned target."""
    p = version.precision
    if p is None:
        return Verdict("unknown", "no audits answered in the window: precision not measured")
    if target.precision is None:
        return Verdict("unknown", f"target precision unknown: {target.why}")
    t = target.precision
    measured = f"{p.low:.1%}–{p.high:.1%}, {version.audited} audits"
    if p.high < t:
        return Verdict(
            "below",
            f"precision {p.value:.1%} (95% interval {measured}) is below the {t:.1%} the "
            "adapter was tuned for, beyond doubt at 95%",
        )
    if p.value < t:
        return Verdict(
            "under",
            f"precision {p.value:.1%} is under the tuned {t:.1%}, but its 95% interval "
            f"({measured}) reaches it: more audits will tell",
        )
    return Verdict("ok", f"precision {p.value:.1%} meets the tuned {t:.1%}")
