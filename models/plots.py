"""The eval report's charts as inline SVG: reliability diagrams, the risk-coverage curve and
per-label F1 bars, each with its axes, tick labels and a legend where it has several lines.

Plain strings, no plotting library: the report is one self-contained HTML file.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from models.calibration import N_BINS
from models.calibration import reliability as reliability_bins

COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd")
_FONT = "font-family='sans-serif'"


@dataclass(frozen=True)
class Frame:
    """A plot area: data (x in [x0, x1], y in [y0, y1]) to pixels, and its axes."""

    width: int
    height: int
    x1: float = 1.0
    y1: float = 1.0
    left: int = 52
    right: int = 16
    top: int = 16
    bottom: int = 44

    def x(self, value: float) -> float:
        return self.left + value / self.x1 * (self.width - self.left - self.right)

    def y(self, value: float) -> float:
        return self.height - self.bottom - value / self.y1 * (self.height - self.top - self.bottom)

    def svg(self) -> str:
        """The opening tag of this frame's SVG."""
        return (
            f"<svg xmlns='http://www.w3.org/2000/svg' width='{self.width}' "
            f"height='{self.height}' class='plot' {_FONT}>"
        )

    def axes(
        self, xlabel: str, ylabel: str, xticks: Sequence[float], yticks: Sequence[float]
    ) -> list[str]:
        """The frame, grid lines and tick labels at `xticks` and `yticks`, and axis titles."""
        h, b = self.height, self.bottom
        out = [self.svg()]
        for t in xticks:
            x = self.x(t)
            out.append(
                f"<line x1='{x:.1f}' y1='{self.top}' x2='{x:.1f}' y2='{h - b + 4}' "
                "stroke='#e4e4e4'/>"
                f"<text x='{x:.1f}' y='{h - b + 16}' font-size='11' text-anchor='middle'>"
                f"{_tick(t, xticks)}</text>"
            )
        for t in yticks:
            y = self.y(t)
            out.append(
                f"<line x1='{self.left - 4}' y1='{y:.1f}' x2='{self.width - self.right}' "
                f"y2='{y:.1f}' stroke='#e4e4e4'/>"
                f"<text x='{self.left - 7}' y='{y + 4:.1f}' font-size='11' text-anchor='end'>"
                f"{_tick(t, yticks)}</text>"
            )
        out += [
            f"<rect x='{self.left}' y='{self.top}' width='{self.width - self.left - self.right}' "
            f"height='{h - self.top - b}' fill='none' stroke='#333'/>",
            f"<text x='{(self.left + self.width - self.right) / 2:.0f}' y='{h - 8}' "
            f"font-size='12' text-anchor='middle'>{html.escape(xlabel)}</text>",
            f"<text x='14' y='{(self.top + h - b) / 2:.0f}' font-size='12' text-anchor='middle' "
            f"transform='rotate(-90 14 {(self.top + h - b) / 2:.0f})'>{html.escape(ylabel)}</text>",
        ]
        return out


def reliability(name: str, outcomes: Sequence[Any], size: int = 340) -> str:
    """One configuration's reliability diagram: accuracy per confidence bin as bars over the
    diagonal, the bin's ticket count over each bar, and the ECE in the title."""
    conf = np.array([o.confidence for o in outcomes], dtype=np.float64)
    ok = np.array([o.label == o.truth for o in outcomes])
    bins, ece = reliability_bins(conf, ok)
    n_bins = N_BINS
    f = Frame(size, size + 20, top=36)
    ticks = [i / 5 for i in range(6)]
    out = f.axes("confidence", "accuracy", ticks, ticks)
    out.append(
        f"<text x='{f.left}' y='16' font-size='13' font-weight='bold'>{html.escape(name)}</text>"
        f"<text x='{f.width - f.right}' y='16' font-size='11' text-anchor='end'>"
        f"ECE {ece:.1%}, {len(outcomes):,} tickets</text>"
    )
    width = f.x(1.0 / n_bins) - f.x(0.0)
    for mean_conf, acc, count in bins:
        i = min(math.ceil(mean_conf * n_bins) - 1, n_bins - 1)
        x = f.x(max(i, 0) / n_bins)
        out.append(
            f"<rect x='{x + 1:.1f}' y='{f.y(acc):.1f}' width='{width - 2:.1f}' "
            f"height='{f.y(0) - f.y(acc):.1f}' fill='{COLOURS[0]}' fill-opacity='0.75'>"
            f"<title>confidence {mean_conf:.3f}, accuracy {acc:.3f}, {count} tickets</title></rect>"
            + (  # over the bar, or inside it at the top of the frame
                f"<text x='{x + width / 2:.1f}' y='{f.y(acc) - 3:.1f}' font-size='9' "
                if acc < 0.92
                else f"<text x='{x + width / 2:.1f}' y='{f.y(acc) + 10:.1f}' font-size='9' "
                "fill='#fff' "
            )
            + f"text-anchor='middle'>{_count(count)}</text>"
        )
    out.append(
        f"<line x1='{f.x(0):.1f}' y1='{f.y(0):.1f}' x2='{f.x(1):.1f}' y2='{f.y(1):.1f}' "
        "stroke='#888' stroke-dasharray='4'/>"
    )
    return "".join([*out, "</svg>"])


def risk_coverage(
    curves: Mapping[str, Sequence[tuple[float, float]]],
    *,
    tuned: tuple[float, float] | None = None,
    measured: tuple[float, float] | None = None,
    width: int = 640,
    height: int = 400,
) -> str:
    """Error rate against coverage per configuration; ◆ marks the tuned operating point
    (coverage, 1 - expected precision), ● the cascade's measured one."""
    marks = [p for p in (tuned, measured) if p is not None]
    top = max([r for c in curves.values() for _, r in c] + [r for _, r in marks] + [0.01])
    yticks = _nice_ticks(top)
    f = Frame(width, height, y1=yticks[-1], left=58, right=150)
    out = f.axes("coverage (share auto-labelled)", "error rate", [i / 5 for i in range(6)], yticks)
    for i, (name, curve) in enumerate(curves.items()):
        colour = COLOURS[i % len(COLOURS)]
        pts = " ".join(f"{f.x(c):.1f},{f.y(r):.1f}" for c, r in curve)
        out.append(
            f"<polyline points='{pts}' fill='none' stroke='{colour}' stroke-width='2'/>"
            f"<text x='{width - f.right + 10}' y='{f.top + 14 + 18 * i}' font-size='12' "
            f"fill='{colour}'>— {html.escape(name)}</text>"
        )
    legend_y = f.top + 14 + 18 * len(curves) + 8
    if tuned is not None:
        x, y = f.x(tuned[0]), f.y(tuned[1])
        out.append(
            f"<path d='M{x:.1f},{y - 7:.1f} L{x + 7:.1f},{y:.1f} L{x:.1f},{y + 7:.1f} "
            f"L{x - 7:.1f},{y:.1f} Z' fill='#000'><title>tuned: {tuned[0]:.1%} coverage, "
            f"{tuned[1]:.2%} error expected</title></path>"
            f"<text x='{width - f.right + 10}' y='{legend_y}' font-size='12'>◆ tuned</text>"
        )
    if measured is not None:
        x, y = f.x(measured[0]), f.y(measured[1])
        out.append(
            f"<circle cx='{x:.1f}' cy='{y:.1f}' r='5' fill='none' stroke='#000' "
            f"stroke-width='2'><title>cascade measured: {measured[0]:.1%} coverage, "
            f"{measured[1]:.2%} error</title></circle>"
            f"<text x='{width - f.right + 10}' y='{legend_y + 18}' font-size='12'>"
            "○ cascade, measured</text>"
        )
    return "".join([*out, "</svg>"])


def f1_bars(f1: Mapping[str, float], width: int = 760, row: int = 15) -> str:
    """One bar per label, worst first, on an F1 axis from 0 to 1 ticked at top and bottom."""
    items = sorted(f1.items(), key=lambda kv: kv[1])
    f = Frame(width, row * len(items) + 70, left=280, right=40, top=24, bottom=46)
    inner = f.height - f.top - f.bottom
    ticks = [i / 5 for i in range(6)]
    out = [f.svg()]
    for t in ticks:
        x = f.x(t)
        out.append(
            f"<line x1='{x:.1f}' y1='{f.top}' x2='{x:.1f}' y2='{f.top + inner}' stroke='#e4e4e4'/>"
            f"<text x='{x:.1f}' y='{f.top - 6}' font-size='11' text-anchor='middle'>{t:g}</text>"
            f"<text x='{x:.1f}' y='{f.top + inner + 14}' font-size='11' text-anchor='middle'>"
            f"{t:g}</text>"
        )
    for i, (name, value) in enumerate(items):
        y = f.top + 3 + i * row
        out.append(
            f"<text x='{f.left - 6}' y='{y + row - 5}' font-size='11' text-anchor='end'>"
            f"{html.escape(name)}</text>"
            f"<rect x='{f.left}' y='{y}' width='{f.x(value) - f.left:.1f}' height='{row - 3}' "
            f"fill='{COLOURS[0]}'/>"
            f"<text x='{f.x(value) + 4:.1f}' y='{y + row - 5}' font-size='10'>{value:.2f}</text>"
        )
    out.append(
        f"<line x1='{f.left}' y1='{f.top}' x2='{f.left}' y2='{f.top + inner}' stroke='#333'/>"
        f"<text x='{f.x(0.5):.1f}' y='{f.height - 8}' font-size='12' text-anchor='middle'>"
        "F1</text>"
    )
    return "".join([*out, "</svg>"])


def _nice_ticks(top: float, most: int = 6) -> list[float]:
    """0 and evenly spaced round values (1, 2, 2.5 or 5 times a power of ten) up to `top`."""
    raw = top / (most - 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    return [round(i * step, 12) for i in range(math.ceil(top / step - 1e-9) + 1)]


def _tick(value: float, ticks: Sequence[float]) -> str:
    """A share as a percentage, with the decimals its axis's step needs (``0.25%``)."""
    step = (ticks[1] - ticks[0] if len(ticks) > 1 else 1.0) * 100
    digits = next(d for d in range(6) if abs(round(step, d) - step) < 1e-9 or d == 5)
    return f"{value * 100:.{digits}f}%"


def _count(n: int) -> str:
    """A bin's ticket count short enough to sit over a bar: 812, 1.6k, 16k."""
    if n < 1000:
        return str(n)
    return f"{n / 1000:.1f}k" if n < 10_000 else f"{n / 1000:.0f}k"
