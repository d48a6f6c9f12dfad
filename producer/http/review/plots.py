"""Server-rendered SVG plots for the stats page, with axes and tick labels: precision by day
with its 95% band and the target line, and the ages of the waiting items. No script, no
inline style (the pages' Content-Security-Policy allows neither): presentation attributes only."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import date
from html import escape

from markupsafe import Markup

from producer.ledger.records import Interval

W, H = 640, 240
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 16, 40
#: Waiting-time buckets of the queue-age plot: (upper bound in seconds, tick label).
AGE_BUCKETS = (
    (3600.0, "<1h"),
    (4 * 3600.0, "1–4h"),
    (86400.0, "4–24h"),
    (3 * 86400.0, "1–3d"),
    (7 * 86400.0, "3–7d"),
    (math.inf, ">7d"),
)


def precision_by_day(
    days: Sequence[tuple[date, Interval | None]], target: float | None, title: str
) -> Markup:
    """Audited precision per day (points and line), its 95% interval (band), the target."""
    known = [p for _, p in days if p is not None]
    floor = min([p.low for p in known] + ([target] if target is not None else []) + [0.9])
    step = next(s for s in (0.02, 0.05, 0.1, 0.2) if (1.0 - floor) / s <= 6)
    y0 = max(0.0, math.floor(round(floor / step, 6)) * step)
    x = _x_scale(len(days))

    def y(v: float) -> float:
        return TOP + (1.0 - (v - y0) / (1.0 - y0)) * (H - TOP - BOTTOM)

    parts = [_frame(title)]
    ticks = [y0 + k * step for k in range(round((1.0 - y0) / step) + 1)]
    parts += [_y_tick(y(v), f"{v:.0%}") for v in ticks]
    step = max(1, math.ceil(len(days) / 8))
    parts += [_x_tick(x(i), d.strftime("%m-%d")) for i, (d, _) in enumerate(days) if i % step == 0]
    for run in _runs(days):
        upper = [f"{x(i):.1f},{y(p.high):.1f}" for i, p in run]
        lower = [f"{x(i):.1f},{y(p.low):.1f}" for i, p in reversed(run)]
        parts.append(
            f'<polygon points="{" ".join(upper + lower)}" fill="#9ec5fe" fill-opacity="0.5" '
            f'stroke="none"><title>95% interval</title></polygon>'
        )
        line = " ".join(f"{x(i):.1f},{y(p.value):.1f}" for i, p in run)
        parts.append(f'<polyline points="{line}" fill="none" stroke="#0b5ed7" stroke-width="2"/>')
    for i, (d, p) in enumerate(days):
        if p is not None:
            tip = escape(f"{d}: {p.value:.1%} ({p.low:.1%}–{p.high:.1%})")
            parts.append(
                f'<circle cx="{x(i):.1f}" cy="{y(p.value):.1f}" r="3.5" fill="#0b5ed7">'
                f"<title>{tip}</title></circle>"
            )
    if target is not None:
        ty = y(target)
        parts.append(
            f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{ty:.1f}" y2="{ty:.1f}" stroke="#b02a37" '
            f'stroke-dasharray="6 4" stroke-width="1.5"/>'
            f'<text x="{W - RIGHT - 4}" y="{ty - 5:.1f}" text-anchor="end" fill="#b02a37" '
            f'font-size="11">target {target:.1%}</text>'
        )
    if not known:
        parts.append(_note("no audits answered in this window"))
    parts.append(_axis_titles("day (UTC)", "precision"))
    return _svg(parts, title)


def queue_ages(ages_s: Sequence[float], title: str) -> Markup:
    """How many waiting items have waited how long (bars per bucket)."""
    counts = [0] * len(AGE_BUCKETS)
    for age in ages_s:
        counts[next(i for i, (bound, _) in enumerate(AGE_BUCKETS) if age < bound)] += 1
    top = max(4, _nice(max(counts)))
    x = _x_scale(len(AGE_BUCKETS), pad=0.5)
    width = (W - LEFT - RIGHT) / len(AGE_BUCKETS) * 0.7

    def y(v: float) -> float:
        return TOP + (1.0 - v / top) * (H - TOP - BOTTOM)

    parts = [_frame(title)]
    parts += [_y_tick(y(top * k / 4), f"{top * k / 4:g}") for k in range(5)]
    for i, ((_, label), n) in enumerate(zip(AGE_BUCKETS, counts, strict=True)):
        parts.append(_x_tick(x(i), label))
        if n:
            parts.append(
                f'<rect x="{x(i) - width / 2:.1f}" y="{y(n):.1f}" width="{width:.1f}" '
                f'height="{y(0) - y(n):.1f}" fill="#6f42c1"><title>{escape(label)}: {n}'
                f"</title></rect>"
                f'<text x="{x(i):.1f}" y="{y(n) - 4:.1f}" text-anchor="middle" '
                f'font-size="11" fill="#333">{n}</text>'
            )
    if not ages_s:
        parts.append(_note("nothing waiting"))
    parts.append(_axis_titles("time waiting", "items"))
    return _svg(parts, title)


def _runs(days: Sequence[tuple[date, Interval | None]]) -> list[list[tuple[int, Interval]]]:
    """Consecutive days with a measurement: a day without audits breaks the line and band."""
    runs: list[list[tuple[int, Interval]]] = [[]]
    for i, (_, p) in enumerate(days):
        if p is None:
            runs.append([])
        else:
            runs[-1].append((i, p))
    return [r for r in runs if r]


def _x_scale(n: int, pad: float = 0.0) -> Callable[[float], float]:
    span = W - LEFT - RIGHT

    def x(i: float) -> float:
        slots = max(1.0, n - 1 + 2 * pad)
        return LEFT + (i + pad) / slots * span if n > 1 or pad else LEFT + span / 2

    return x


def _nice(n: int) -> int:
    """The smallest of 1, 2, 5 x 10^k (a multiple of 4 ticks) at least `n`."""
    for base in (4, 8, 20, 40):
        for scale in (1, 10, 100, 1000, 10000):
            if base * scale >= n:
                return base * scale
    return n


def _frame(title: str) -> str:
    return (
        f'<rect x="0" y="0" width="{W}" height="{H}" fill="#fff"/>'
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{H - BOTTOM}" stroke="#333"/>'
        f'<line x1="{LEFT}" y1="{H - BOTTOM}" x2="{W - RIGHT}" y2="{H - BOTTOM}" stroke="#333"/>'
    )


def _y_tick(y: float, label: str) -> str:
    return (
        f'<line x1="{LEFT - 4}" x2="{W - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e3e3e3"/>'
        f'<text x="{LEFT - 7}" y="{y + 4:.1f}" text-anchor="end" font-size="11" '
        f'fill="#333">{escape(label)}</text>'
    )


def _x_tick(x: float, label: str) -> str:
    return (
        f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{H - BOTTOM}" y2="{H - BOTTOM + 4}" stroke="#333"/>'
        f'<text x="{x:.1f}" y="{H - BOTTOM + 16}" text-anchor="middle" font-size="11" '
        f'fill="#333">{escape(label)}</text>'
    )


def _axis_titles(x_title: str, y_title: str) -> str:
    mid_y = (TOP + H - BOTTOM) / 2
    return (
        f'<text x="{(LEFT + W - RIGHT) / 2:.0f}" y="{H - 6}" text-anchor="middle" '
        f'font-size="12" fill="#555">{escape(x_title)}</text>'
        f'<text x="14" y="{mid_y:.0f}" text-anchor="middle" font-size="12" fill="#555" '
        f'transform="rotate(-90 14 {mid_y:.0f})">{escape(y_title)}</text>'
    )


def _note(text: str) -> str:
    return (
        f'<text x="{(LEFT + W - RIGHT) / 2:.0f}" y="{(TOP + H - BOTTOM) / 2:.0f}" '
        f'text-anchor="middle" font-size="13" fill="#777">{escape(text)}</text>'
    )


def _svg(parts: list[str], title: str) -> Markup:
    body = "".join(parts)
    label = escape(title)
    return Markup(
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" role="img" '
        f'aria-label="{label}"><title>{label}</title>{body}</svg>'
    )
