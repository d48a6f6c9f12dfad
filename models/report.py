"""The decision report of `triage eval`: figures per configuration, cost by volume, and plots.

Markdown for the repository, HTML with inline SVG plots for people (no plotting library: the
charts are a few lines of SVG each, in `models.plots`, and the page is one self-contained
file), and a JSON dict for machines (``configs.<name>.<figure>``). `tables` is the one layout of
the figures (which, under what heading, how formatted) that the terminal, Markdown and HTML
tables all print.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from models import plots, scores
from models.evaluation import ConfigRun
from producer.labelset import LabelSet


def _pct(digits: int) -> Callable[[Any], str]:
    return lambda v: f"{float(v) * 100:.{digits}f}%"


#: (figure, heading, format) of each table's columns; a heading's newline breaks it in a narrow
#: terminal. Precisions get two decimals: a target of 99% is read to the tenth of a point.
QUALITY = (
    ("accuracy", "accuracy", _pct(1)),
    ("macro_f1", "macro\nF1", _pct(1)),
    ("ece", "ECE", _pct(1)),
    ("coverage", "coverage", _pct(1)),
    ("auto_precision", "auto\nprecision", _pct(2)),
    ("escalation_rate", "escalated", _pct(1)),
)
UNKNOWN = (
    ("unknown_tickets", "tickets", lambda v: f"{int(v):,}"),
    ("unknown_auto", "auto-labelled\n(all wrong)", _pct(1)),
    ("mixed_auto_precision", "auto precision\nof the mix", _pct(2)),
)
COST = (
    ("tickets", "tickets", lambda v: f"{int(v):,}"),
    ("cost_per_1k", "$ per 1k", lambda v: f"${float(v):.4f}"),
    ("p50_ms", "p50 ms", lambda v: f"{float(v):.1f}"),
    ("p95_ms", "p95 ms", lambda v: f"{float(v):.1f}"),
)


@dataclass(frozen=True)
class Table:
    title: str
    headings: list[str]
    rows: list[list[str]]


def tables(figures: Mapping[str, Any]) -> list[Table]:
    """The figures (`Report.figures`) as tables: quality, left-out labels (when some were),
    cost and latency. Each is narrow enough for an 80-column terminal."""
    configs: Mapping[str, Mapping[str, Any]] = figures["configs"]
    unknown = figures.get("unknown_labels") or []

    def table(title: str, columns: tuple[tuple[str, str, Callable[[Any], str]], ...]) -> Table:
        return Table(
            title,
            ["configuration", *(h for _, h, _ in columns)],
            [[name, *(f(m[k]) for k, _, f in columns)] for name, m in configs.items()],
        )

    scope = " (in-scope tickets)" if unknown else ""
    out = [table(f"quality{scope}", QUALITY)]
    if unknown:
        out.append(table(f"tickets of left-out labels ({len(unknown)})", UNKNOWN))
    wall = figures.get("meta", {}).get("wall_s", {})
    cost = table(f"cost and latency{scope}", COST)
    if wall:
        cost.headings.append("wall s")
        for row in cost.rows:
            row.append(f"{wall[row[0]]:.0f}" if row[0] in wall else "-")
    out.append(cost)
    return out


@dataclass
class Report:
    labels: LabelSet
    runs: dict[str, ConfigRun]
    usd_per_hour: float
    #: How the frontier configurations would be priced when they were not run (per ticket).
    frontier_usd_per_ticket_estimate: float
    training_cost_usd: float | None = None
    volume: int | None = None
    #: Labels evaluated as if they did not exist (`triage eval --unknown-labels`).
    unknown_labels: tuple[str, ...] = ()
    #: What `triage tune` expected of the policy (`workbench.operating_point`): coverage,
    #: precision and the target; marked on the risk-coverage curve.
    tuned: dict[str, Any] | None = None
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
            "unknown_labels": list(self.unknown_labels),
            "tuned": self.tuned,
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
        lines += [f"- {_meta(k, v)}" for k, v in self.meta.items()]
        if self.unknown_labels:
            lines.append(f"- left-out labels: {', '.join(self.unknown_labels)}")
        if self.tuned:
            lines.append(f"- tuned for: {_tuned(self.tuned)}")
        for t in tables(self.figures()):
            lines += ["", f"## {t.title.capitalize()}", ""]
            lines.append("| " + " | ".join(h.replace("\n", " ") for h in t.headings) + " |")
            lines.append("|---" + "|--:" * (len(t.headings) - 1) + "|")
            lines += ["| " + " | ".join(row) + " |" for row in t.rows]
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
            lines.append("|---|---|--:|")
            lines += [f"| {t} | {p} | {c} |" for t, p, c in scores.top_confusions(self._in(main))]
        lines += ["", "Plots: see the HTML report.", ""]
        return "\n".join(lines)

    def html(self) -> str:
        runs = {r.name: self._in(r) for r in self.runs.values() if r.outcomes}
        main = self._main_run()
        scope = " (in-scope tickets)" if self.unknown_labels else ""
        parts = [
            "<!doctype html><html><head><meta charset='utf-8'>",
            f"<title>triage eval: {html.escape(self.labels.task)}</title>",
            "<style>body{font-family:sans-serif;max-width:1120px;margin:2em auto;color:#222}"
            "table{border-collapse:collapse;margin:.5em 0 1.5em}"
            "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
            "td:first-child,th:first-child{text-align:left}"
            "ul.meta{font-size:.9em;color:#444}svg{margin:.5em 1em .5em 0}"
            ".small{display:flex;flex-wrap:wrap}</style></head><body>",
            f"<h1>Evaluation: {html.escape(self.labels.task)}</h1>",
            "<ul class='meta'>"
            + "".join(
                f"<li>{html.escape(_meta(k, v))}</li>"
                for k, v in self.meta.items()
                if k != "policy"
            )
            + (
                f"<li>left-out labels: {html.escape(', '.join(self.unknown_labels))}</li>"
                if self.unknown_labels
                else ""
            )
            + (f"<li>tuned for: {html.escape(_tuned(self.tuned))}</li>" if self.tuned else "")
            + "</ul>",
        ]
        for t in tables(self.figures()):
            parts += [f"<h2>{html.escape(t.title.capitalize())}</h2>", _table(t)]
        for name, run in self.runs.items():
            if run.skipped:
                parts.append(f"<p>{html.escape(name)}: skipped ({html.escape(run.skipped)})</p>")
        if self.volume is not None:
            parts.append(f"<pre>{html.escape(json.dumps(self.cost_by_volume(), indent=2))}</pre>")
        measured = None
        if runs.get("cascade"):
            m = scores.summarise(runs["cascade"], self.labels, self.usd_per_hour)
            measured = (m["coverage"], 1.0 - m["auto_precision"])
        parts += [
            f"<h2>Reliability diagrams{scope}</h2>",
            "<p>Accuracy per confidence bin (bars) against the diagonal of perfect "
            "calibration; the number over each bar is its tickets.</p>",
            "<div class='small'>"
            + "".join(plots.reliability(name, o) for name, o in runs.items())
            + "</div>",
            f"<h2>Risk-coverage curve{scope}</h2>",
            "<p>Error rate of the auto-labelled share when the most confident tickets go "
            "first. "
            + (
                "◆: the operating point <code>triage tune</code> chose (policy.json); "
                if self.tuned
                else "(No policy.json: the adapter was not tuned.) "
            )
            + "○: the cascade's measured coverage and error rate.</p>",
            plots.risk_coverage(
                {name: scores.risk_coverage(o) for name, o in runs.items()},
                tuned=_tuned_point(self.tuned),
                measured=measured,
            ),
        ]
        if main is not None:
            f1 = scores.per_label_f1(self._in(main), self.labels)
            parts += [
                f"<h2>Per-label F1 ({html.escape(main.name)}){scope}</h2>",
                plots.f1_bars(f1),
            ]
            rows = [[t, p, str(c)] for t, p, c in scores.top_confusions(self._in(main))]
            parts += [
                f"<h2>Top confusions ({html.escape(main.name)})</h2>",
                _table(Table("", ["truth", "predicted", "n"], rows)),
            ]
        parts.append("</body></html>")
        return "\n".join(parts)

    def _in(self, run: ConfigRun) -> list[Any]:
        """`run`'s outcomes of in-scope tickets (all of them when no label was left out)."""
        return scores.in_scope(run.outcomes, self.unknown_labels)

    def _metrics(self) -> dict[str, dict[str, Any]]:
        return {
            n: r.metrics(self.labels, self.usd_per_hour, self.unknown_labels)
            for n, r in self.runs.items()
            if not r.skipped
        }

    def _main_run(self) -> ConfigRun | None:
        """The configuration the detail plots describe: the cascade when it ran."""
        for name in ("cascade", "fine-tune", "retrieval", "frontier+rag", "frontier"):
            if name in self.runs and self.runs[name].outcomes:
                return self.runs[name]
        return None


def _meta(key: str, value: Any) -> str:
    """One line of the report's header, in words where the key is known."""
    if key == "overlaps_excluded":
        return (
            f"left out of the neighbours: {value['copies']:,} copies of a ticket's own text "
            f"and {value['own']:,} own points, in {value['tickets']:,} tickets"
        )
    if key == "wall_s":
        return "time: " + ", ".join(f"{k} {v:.0f} s" for k, v in value.items())
    if isinstance(value, dict):
        return f"{key}: " + ", ".join(f"{k} {v}" for k, v in value.items())
    return f"{key}: {value}"


def _tuned(tuned: Mapping[str, Any]) -> str:
    target = f"precision {tuned['target']:.2%}; " if "target" in tuned else ""
    lower = f" (at least {tuned['lower']:.2%})" if "lower" in tuned else ""
    basis = f", {tuned['basis']}" if "basis" in tuned else ""
    return (
        f"{target}expected {tuned['precision']:.2%} precision{lower} "
        f"at {tuned['coverage']:.1%} coverage{basis}"
    )


def _tuned_point(tuned: Mapping[str, Any] | None) -> tuple[float, float] | None:
    return (tuned["coverage"], 1.0 - tuned["precision"]) if tuned else None


def _table(t: Table) -> str:
    head = "".join(f"<th>{html.escape(h).replace(chr(10), '<br>')}</th>" for h in t.headings)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in t.rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"
