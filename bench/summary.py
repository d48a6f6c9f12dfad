"""The Markdown summary of `python -m bench all`: each figure, its target and ratio, the machine."""

from __future__ import annotations

import os
import platform
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

Figures = Mapping[str, Mapping[str, Any]]


@dataclass(frozen=True)
class Target:
    """One figure and its target. `goal` gives the target value from all results (None: n/a)."""

    bench: str
    figure: str
    unit: str
    at_least: bool | None  # True: >= goal, False: <= goal, None: no target (for reference)
    goal: Callable[[Figures], float | None]
    says: str


TARGETS = [
    Target("direct:fp32", "tickets_per_s", "tickets/s", None, lambda f: None, "fp32, reference"),
    Target("direct", "tickets_per_s", "tickets/s", None, lambda f: None, "the ceiling"),
    Target(
        "direct:fp32", "worker_cpu_ms_per_ticket", "ms", None, lambda f: None, "fp32, reference"
    ),
    Target(
        "direct",
        "worker_cpu_ms_per_ticket",
        "ms",
        False,
        lambda f: _times(f, "direct:fp32", "worker_cpu_ms_per_ticket", 1 / 3),
        "1/3 of fp32",
    ),
    Target("direct:fp32", "accuracy", "", None, lambda f: None, "fp32, reference"),
    Target(
        "direct",
        "accuracy",
        "",
        True,
        lambda f: _plus(f, "direct:fp32", "accuracy", -0.003),
        "fp32 - 0.3 points",
    ),
    Target("direct", "auto_precision", "", True, lambda f: 0.99, "99%"),
    Target("direct:fp32", "coverage", "", None, lambda f: None, "fp32, reference"),
    Target(
        "direct",
        "coverage",
        "",
        True,
        lambda f: _plus(f, "direct:fp32", "coverage", -0.02),
        "fp32 - 2 points",
    ),
    Target("e2e:fp32", "tickets_per_s", "tickets/s", None, lambda f: None, "fp32, reference"),
    Target(
        "e2e",
        "tickets_per_s",
        "tickets/s",
        True,
        lambda f: _times(f, "e2e:fp32", "tickets_per_s", 2.5),
        "2.5 x fp32",
    ),
    Target("e2e:fp32", "worker_cpu_ms_per_ticket", "ms", None, lambda f: None, "fp32, reference"),
    Target(
        "e2e",
        "worker_cpu_ms_per_ticket",
        "ms",
        False,
        lambda f: _times(f, "e2e:fp32", "worker_cpu_ms_per_ticket", 1 / 3),
        "1/3 of fp32",
    ),
    Target(
        "e2e",
        "tickets_per_s",
        "tickets/s",
        True,
        lambda f: _times(f, "direct", "tickets_per_s", 0.8),
        "0.8 x direct",
    ),
    Target(
        "e2e",
        "tickets_per_s",
        "tickets/s",
        True,
        lambda f: _times(f, "naive", "tickets_per_s", 3.0),
        "3 x naive",
    ),
    Target("e2e", "p95_ms", "ms", None, lambda f: None, "backlog latency, reference"),
    Target("naive", "tickets_per_s", "tickets/s", None, lambda f: None, "one task per ticket"),
    Target("single", "p95_ms", "ms", False, lambda f: 25.0, "25 ms, light load"),
    Target("gpu", "tickets_per_s", "tickets/s", True, lambda f: _gpu(f, 150.0), "150 on one H100"),
    Target(
        "gpu",
        "tflops",
        "TFLOP/s",
        True,
        lambda f: _gpu(f, f["gpu"].get("peak_tflops")),
        "card peak",
    ),
    Target("memory", "peak_rss_mb", "MB", None, lambda f: None, "reference"),
    Target("memory", "growth_mb", "MB", False, lambda f: 25.0, "flat"),
    Target("webhook", "rps", "req/s", True, lambda f: 1500.0, "1,500 req/s"),
    Target("webhook", "p99_ms", "ms", False, lambda f: 20.0, "20 ms"),
    Target("backfill", "tickets_per_s", "tickets/s", True, lambda f: 20_000.0, "20,000/s"),
    Target("backfill", "peak_rss_mb", "MB", False, lambda f: 300.0, "300 MB"),
]

LIMITS = {
    "direct": "CPU time of the models: by default one int8 ONNX Runtime run a batch, on one "
    "thread, through the layers the classifier and the embedder share and then each one's own "
    "top (`models.trunk`: 8 layer passes where fp32, `direct:fp32`, runs 12 in two torch "
    "passes); tokenised and cut into batches once; the neighbour search is one float32 "
    "product per batch over the local collection's mirrored vectors, under 0.3 ms a ticket",
    "e2e": "direct's work plus, per classify batch, its write-back (one script call per sink "
    "step for the batch, one Qdrant upsert committed through SQLite's WAL, one ledger commit; "
    "with no frontier the unsure tickets go to review in it), Celery's overhead (each message "
    "popped and decoded one at a time) and the log lines. A batch holds its turn on the cores "
    "for its model passes alone: its search, vote, results and write-back, Python under one "
    "GIL, run on the second core beside the next batch's passes",
    "naive": "a batch-of-one classifier and embedder pass per ticket, plus a write-back per "
    "ticket in its task (about 20 Redis round trips and a one-point upsert)",
    "single": "a batch-of-one first pass and its write-back, in the same task; a ticket to an "
    "idle worker does not wait for the batch timer",
    "gpu": "on a GPU: the bf16 matmul rate; on a CPU: a tiny model, no GPU figure",
    "memory": "the classifier and embedder weights, torch's allocator, the local Qdrant index "
    "(float64 in qdrant-client) and its float32 search mirror",
    "webhook": "one uvicorn process: HMAC, validation, the Redis push",
    "backfill": "parsing and validating each line; one Redis round trip per chunk",
}


def markdown(figures: Figures, machine: Mapping[str, Any]) -> str:
    """The summary table and the machine, as Markdown."""
    lines = [
        "# Benchmark results",
        "",
        f"Run {machine['when']} with `python -m bench {machine['command']}`.",
        "",
        "## Machine",
        "",
        *[f"- {key}: {value}" for key, value in machine.items() if key not in {"when", "command"}],
        "",
        "## Figures",
        "",
        "Ratio is figure / target; a target is met when the ratio is >= 1 (at least) or <= 1 (at "
        "most). `direct`, `e2e` and `naive` give the median of their runs (`runs_tickets_per_s` "
        "below has each one): shared 2-core machines vary by 10-20% from run to run.",
        "",
        "| bench | figure | value | target | ratio | met |",
        "|---|---|---|---|---|---|",
    ]
    for t in TARGETS:
        lines.append(_row(t, figures))
    gpu = figures.get("gpu")
    if gpu is not None and not gpu.get("gpu_measured"):
        lines += ["", "**No GPU figure measured**: the `gpu` bench ran its tiny CPU model only."]
    lines += ["", "## What limits each figure", ""]
    lines += [f"- `{name}`: {why}" for name, why in LIMITS.items() if name in figures]
    lines += ["", "## Raw figures", "", "```"]
    lines += [_json(f) for f in figures.values()]
    lines += ["```", ""]
    return "\n".join(lines)


def machine_info(command: str) -> dict[str, Any]:
    """What the figures were measured on."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "none"
    return {
        "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": command,
        "cpu": f"{cpu}, {len(os.sched_getaffinity(0))} cores usable",
        "gpu": gpu if gpu != "none" else "no GPU (no GPU figure measured)",
        "load average at start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "python / torch": f"{platform.python_version()} / {torch.__version__}",
    }


def _row(t: Target, figures: Figures) -> str:
    found = figures.get(t.bench)
    value = None if found is None else found.get(t.figure)
    if t.bench == "gpu" and found is not None and not found.get("gpu_measured"):
        shown = "no GPU figure measured" + (f" (CPU smoke: {value})" if value is not None else "")
        return f"| {t.bench} | {t.figure} | {shown} | {t.says} | - | - |"
    if value is None:
        return f"| {t.bench} | {t.figure} | not run | {t.says} | - | - |"
    shown = f"{value} {t.unit}".strip()
    if t.at_least is None:
        return f"| {t.bench} | {t.figure} | {shown} | {t.says} | - | - |"
    try:
        goal = t.goal(figures)
    except (KeyError, TypeError):
        goal = None
    if goal is None or goal == 0:
        return f"| {t.bench} | {t.figure} | {shown} | {t.says} (not run) | - | - |"
    sign = ">=" if t.at_least else "<="
    ratio = float(value) / goal
    met = ratio >= 1.0 if t.at_least else ratio <= 1.0
    return (
        f"| {t.bench} | {t.figure} | {shown} | {sign} {_number(goal)} ({t.says}) "
        f"| {ratio:.2f} | {'yes' if met else '**no**'} |"
    )


def _number(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.4g}"


def _times(figures: Figures, bench: str, figure: str, factor: float) -> float | None:
    found = figures.get(bench)
    if found is None or found.get(figure) is None:
        return None
    return float(found[figure]) * factor


def _plus(figures: Figures, bench: str, figure: str, delta: float) -> float | None:
    found = figures.get(bench)
    if found is None or found.get(figure) is None:
        return None
    return float(found[figure]) + delta


def _gpu(figures: Figures, goal: float | None) -> float | None:
    return goal if figures["gpu"].get("gpu_measured") else None


def _json(figures: Mapping[str, Any]) -> str:
    import json

    return json.dumps(figures)
