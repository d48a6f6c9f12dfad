"""The decision report of `triage eval`: figures per configuration, cost by volume, and plots.

Markdown for the repository, HTML with inline SVG plots for people (no plotting library: four
simple charts are a few lines of SVG each, and the page is one self-contained file), and a JSON
dict for machines (``configs.<name>.<figure>``).
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from models import scores
from models.calibration import reliability
from models.evaluation import ConfigRun
from producer.labelset import LabelSet

_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd")


@dataclass
class Report:
    labels: LabelSet
    runs: dict[str, ConfigRun]
    usd_per_hour: float
    #: How the frontier configurations would be priced when they were not run (per ticket).
    frontier_usd_per_ticket_estimate: float
    training_cost_usd: float | None = None
    volume: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def figures(self) -> dict[str, Any]:
        """JSON-ready: ``configs.<name>.{accuracy, macro_f1, ece, ...}``, skipped, cost math."""
        configs = {
            name: {k: round(v, 6) if isinstance(v, float) else v for k, v in m.items()}
            for name, m in self._metrics().items()
        }
        out: dict[str, Any] = {
            "configs": configs,
            "skipped": {n: r.skipped for n, r in self.runs.items() if r.skipped},
            "meta": self.meta,
        }
        if self.volume is not None:
            out["volume"] = self.cost_by_volume()
        return out

    def cost_by_volume(self) -> dict[str, Any]:
        """Monthly cost of each configuration at `volume` tickets, and the fine-tune break-even."""
        assert self.volume is not None
        per_ticket = {n: m["cost_per_1k"] / 1000.0 for n, m in self._metrics().items()}
        frontier = per_ticket.get("frontier", self.frontier_usd_per_ticket_estimate)
        monthly = {n: round(c * self.volume, 4) for n, c in per_ticket.items()}
        out: dict[str, Any] = {
            "tickets_per_month": self.volume,
            "monthly_usd": monthly,
            "frontier_usd_per_ticket": frontier,
            "frontier_measured": "frontier" in per_ticket,
            "training_usd": self.training_cost_usd,
        }
        for name in ("fine-tune", "cascade"):
            if name in per_ticket and self.training_cost_usd is not None:
                saving = frontier - per_ticket[name]
                # Tickets a month at which a month's saving over the frontier pays the training.
                out[f"break_even_{name}"] = (
                    round(self.training_cost_usd / saving) if saving > 0 else None
                )
        return out

    def markdown(self) -> str:
        lines = [f"# Evaluation: {self.labels.task}", ""]
        lines += [f"- {k}: {v}" for k, v in self.meta.items()]
        lines += ["", "| configuration | " + " | ".join(scores.FIGURES) + " |"]
        lines.append("|---" * (len(scores.FIGURES) + 1) + "|")
        for name, m in self._metrics().items():
            lines.append(f"| {name} | " + " | ".join(_fmt(k, m[k]) for k in scores.FIGURES) + " |")
        for name, run in self.runs.items():
            if run.skipped:
                lines.append(f"\n{name}: skipped ({run.skipped})")
        if self.volume is not None:
            v = self.cost_by_volume()
            lines += ["", f"## Cost at {self.volume:,} tickets a month", ""]
            lines += [f"- {n}: ${c:,.2f} a month" for n, c in v["monthly_usd"].items()]
            kind = "measured" if v["frontier_measured"] else "estimated from the prompt size"
            lines.append(f"- frontier per ticket ({kind}): ${v['frontier_usd_per_ticket']:.5f}")
            if v["training_usd"] is not None:
                lines.append(f"- one-off training: ${v['training_usd']:.2f}")
            for name in ("fine-tune", "cascade"):
                if f"break_even_{name}" in v:
                    lines.append(
                        f"- {name} pays for itself from {v[f'break_even_{name}']} tickets a month"
                    )
        main = self._main_run()
        if main is not None:
            lines += ["", f"## Top confusions ({main.name})", "", "| truth | predicted | n |"]
            lines.append("|---|---|---|")
            lines += [f"| {t} | {p} | {c} |" for t, p, c in scores.top_confusions(main.outcomes)]
        lines += ["", "Plots: see the HTML report.", ""]
        return "\n".join(lines)

    def html(self) -> str:
        runs = [r for r in self.runs.values() if r.outcomes]
        main = self._main_run()
        parts = [
            "<!doctype html><html><head><meta charset='utf-8'>",
            f"<title>triage eval: {html.escape(self.labels.task)}</title>",
            "<style>body{font-family:sans-serif;max-width:1000px;margin:2em auto}"
            "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;"
            "text-align:right}svg{margin:1em 0}</style></head><body>",
            f"<h1>Evaluation: {html.escape(self.labels.task)}</h1>",
            _table(self._metrics()),
        ]
        for name, run in self.runs.items():
            if run.skipped:
                parts.append(f"<p>{html.escape(name)}: skipped ({html.escape(run.skipped)})</p>")
        if self.volume is not None:
            parts.append(f"<pre>{html.escape(json.dumps(self.cost_by_volume(), indent=2))}</pre>")
        parts += [
            "<h2>Reliability diagram</h2>",
            _reliability_svg(runs),
            "<h2>Risk-coverage curve</h2>",
            _risk_coverage_svg(runs),
        ]
        if main is not None:
            f1 = scores.per_label_f1(main.outcomes, self.labels)
            parts += [f"<h2>Per-label F1 ({html.escape(main.name)})</h2>", _f1_svg(f1)]
            rows = "".join(
                f"<tr><td>{html.escape(t)}</td><td>{html.escape(p)}</td><td>{c}</td></tr>"
                for t, p, c in scores.top_confusions(main.outcomes)
            )
            parts += [
                f"<h2>Top confusions ({html.escape(main.name)})</h2>",
                f"<table><tr><th>truth</th><th>predicted</th><th>n</th></tr>{rows}</table>",
            ]
        parts.append("</body></html>")
        return "\n".join(parts)

    def _metrics(self) -> dict[str, dict[str, Any]]:
        return {
            n: r.metrics(self.labels, self.usd_per_hour)
            for n, r in self.runs.items()
            if not r.skipped
        }

    def _main_run(self) -> ConfigRun | None:
        """The configuration the detail plots describe: the cascade when it ran."""
        for name in ("cascade", "fine-tune", "retrieval", "frontier+rag", "frontier"):
            if name in self.runs and self.runs[name].outcomes:
                return self.runs[name]
        return None


def _fmt(key: str, value: float) -> str:
    if key.endswith("_ms"):
        return f"{value:.1f}"
    if key == "cost_per_1k":
        return f"${value:.4f}"
    return f"{value:.4f}"


def _table(rows: Mapping[str, Mapping[str, Any]]) -> str:
    head = "".join(f"<th>{k}</th>" for k in ("configuration", *scores.FIGURES))
    body = "".join(
        f"<tr><td>{html.escape(n)}</td>"
        + "".join(f"<td>{_fmt(k, m[k])}</td>" for k in scores.FIGURES)
        + "</tr>"
        for n, m in rows.items()
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _axes(w: int, h: int, pad: int, xlabel: str, ylabel: str) -> list[str]:
    return [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{w}' height='{h}' class='plot'>",
        f"<line x1='{pad}' y1='{h - pad}' x2='{w - 10}' y2='{h - pad}' stroke='black'/>",
        f"<line x1='{pad}' y1='10' x2='{pad}' y2='{h - pad}' stroke='black'/>",
        f"<text x='{w // 2}' y='{h - 8}' text-anchor='middle' font-size='12'>{xlabel}</text>",
        f"<text x='12' y='{h // 2}' font-size='12' transform='rotate(-90 12 {h // 2})' "
        f"text-anchor='middle'>{ylabel}</text>",
    ]


def _legend(runs: list[ConfigRun], x: int) -> list[str]:
    return [
        f"<text x='{x}' y='{24 + 16 * i}' font-size='12' fill='{_COLOURS[i % 5]}'>"
        f"{html.escape(r.name)}</text>"
        for i, r in enumerate(runs)
    ]


def _reliability_svg(runs: list[ConfigRun], w: int = 420, h: int = 360, pad: int = 40) -> str:
    """Accuracy against mean confidence per bin; the diagonal is perfect calibration."""
    sx, sy = w - pad - 10, h - pad - 10
    out = _axes(w, h, pad, "confidence", "accuracy")
    out.append(
        f"<line x1='{pad}' y1='{h - pad}' x2='{pad + sx}' y2='{h - pad - sy}' "
        "stroke='#999' stroke-dasharray='4'/>"
    )
    for i, run in enumerate(runs):
        conf = np.array([o.confidence for o in run.outcomes])
        ok = np.array([o.label == o.truth for o in run.outcomes])
        bins, _ = reliability(conf, ok)
        pts = " ".join(f"{pad + c * sx:.1f},{h - pad - a * sy:.1f}" for c, a, _ in bins)
        out.append(f"<polyline points='{pts}' fill='none' stroke='{_COLOURS[i % 5]}'/>")
    return "".join([*out, *_legend(runs, pad + 10), "</svg>"])


def _risk_coverage_svg(runs: list[ConfigRun], w: int = 420, h: int = 360, pad: int = 40) -> str:
    """Error rate of the auto-labelled share when the most confident go first."""
    sx, sy = w - pad - 10, h - pad - 10
    curves = {r.name: scores.risk_coverage(r.outcomes) for r in runs}
    top = max([risk for c in curves.values() for _, risk in c] + [0.01])
    out = _axes(w, h, pad, "coverage", f"error rate (max {top:.3f})")
    for i, run in enumerate(runs):
        pts = " ".join(
            f"{pad + c * sx:.1f},{h - pad - r / top * sy:.1f}" for c, r in curves[run.name]
        )
        out.append(f"<polyline points='{pts}' fill='none' stroke='{_COLOURS[i % 5]}'/>")
    return "".join([*out, *_legend(runs, pad + 10), "</svg>"])


def _f1_svg(f1: Mapping[str, float], w: int = 700, row: int = 14) -> str:
    """One bar per label, worst first."""
    items = sorted(f1.items(), key=lambda kv: kv[1])
    h, left = row * len(items) + 20, 260
    out = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{w}' height='{h}' class='plot'>"]
    for i, (name, value) in enumerate(items):
        y = 10 + i * row
        out.append(
            f"<text x='{left - 6}' y='{y + row - 4}' font-size='11' text-anchor='end'>"
            f"{html.escape(name)}</text>"
            f"<rect x='{left}' y='{y}' width='{value * (w - left - 50):.1f}' height='{row - 3}' "
            f"fill='{_COLOURS[0]}'/>"
            f"<text x='{left + value * (w - left - 50) + 4:.1f}' y='{y + row - 4}' "
            f"font-size='10'>{value:.2f}</text>"
        )
    return "".join([*out, "</svg>"])
