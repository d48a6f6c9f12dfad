"""The demo's figures: what the cascade decided, how well, and how fast."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from producer.schemas import TriageResult


@dataclass
class DemoReport:
    tickets: int
    labelled: int
    needs_review: int
    decided_by: dict[str, int]
    accuracy: float  # of the labels the service applied on its own
    accuracy_all: float  # counting the suggestion of tickets left for review too
    p50_ms: float
    p95_ms: float
    elapsed_s: float
    review_reasons: dict[str, int] = field(default_factory=dict)
    cost_usd: float = 0.0

    def figures(self) -> dict[str, Any]:
        return {
            "tickets": self.tickets,
            "labelled": self.labelled,
            "needs_review": self.needs_review,
            "decided_by": self.decided_by,
            "accuracy": round(self.accuracy, 4),
            "accuracy_all": round(self.accuracy_all, 4),
            "p50_ms": round(self.p50_ms, 1),
            "p95_ms": round(self.p95_ms, 1),
            "elapsed_s": round(self.elapsed_s, 2),
            "tickets_per_s": round(self.tickets / self.elapsed_s, 1) if self.elapsed_s else 0.0,
            "cost_usd": round(self.cost_usd, 6),
            "review_reasons": self.review_reasons,
        }


def build_report(
    results: Sequence[TriageResult],
    truth: dict[str, str],
    elapsed_s: float,
) -> DemoReport:
    labelled = [r for r in results if r.status == "labelled"]
    review = [r for r in results if r.status == "needs_review"]
    latencies = np.array([r.latency_ms for r in results if r.latency_ms is not None] or [0.0])
    return DemoReport(
        tickets=len(results),
        labelled=len(labelled),
        needs_review=len(review),
        decided_by=dict(Counter(r.decided_by for r in labelled)),
        accuracy=_accuracy(labelled, truth),
        accuracy_all=_accuracy(results, truth),
        p50_ms=float(np.percentile(latencies, 50)),
        p95_ms=float(np.percentile(latencies, 95)),
        elapsed_s=elapsed_s,
        review_reasons=dict(Counter(_reason_kind(r.reason) for r in review)),
        cost_usd=sum(step.cost_usd for r in results for step in r.trace),
    )


def print_report(report: DemoReport, console: Console) -> None:
    table = Table(title="ticket-triage demo: Banking77 test tickets", show_header=True)
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_row("tickets", str(report.tickets))
    table.add_row(
        "labelled automatically",
        f"{report.labelled} ({report.labelled / max(1, report.tickets):.1%})",
    )
    for stage in ("classifier", "retrieval", "frontier"):
        table.add_row(f"  decided by {stage}", str(report.decided_by.get(stage, 0)))
    table.add_row("needs review", str(report.needs_review))
    for reason, count in sorted(report.review_reasons.items()):
        table.add_row(f"  {reason}", str(count))
    table.add_row("accuracy of automatic labels", f"{report.accuracy:.2%}")
    table.add_row("accuracy incl. review suggestions", f"{report.accuracy_all:.2%}")
    table.add_row(
        "latency p50 / p95 (enqueue -> label)", f"{report.p50_ms:.0f} / {report.p95_ms:.0f} ms"
    )
    table.add_row("throughput", f"{report.tickets / max(report.elapsed_s, 1e-9):.1f} tickets/s")
    table.add_row("frontier spend", f"${report.cost_usd:.4f}")
    console.print(table)


def _accuracy(results: Sequence[TriageResult], truth: dict[str, str]) -> float:
    if not results:
        return 0.0
    return sum(r.label == truth.get(r.ticket_id) for r in results) / len(results)


def _reason_kind(reason: str | None) -> str:
    if not reason:
        return "unspecified"
    if reason.startswith("no frontier"):
        return "no frontier configured (escalations wait for a human)"
    return reason.split(":", 1)[0]
