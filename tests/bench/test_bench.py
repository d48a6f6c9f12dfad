"""The bench suite's own parts: options, the summary, the naive task, the gpu bench on a CPU."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
import redis

from bench import naive
from bench.__main__ import _options, _parser, figure_key
from bench.harness import Options, banking_tickets, median_index, percentiles_ms
from bench.summary import machine_info, markdown
from producer.names import CLASSIFY_QUEUE
from producer.settings import ProducerSettings

FIGURES = {
    "direct:fp32": {
        "bench": "direct",
        "variant": "fp32",
        "tickets_per_s": 40.0,
        "worker_cpu_ms_per_ticket": 12.0,
        "accuracy": 0.93,
        "auto_precision": 0.991,
        "coverage": 0.8,
    },
    "direct": {
        "bench": "direct",
        "variant": "default",
        "tickets_per_s": 100.0,
        "worker_cpu_ms_per_ticket": 4.5,
        "accuracy": 0.928,
        "auto_precision": 0.992,
        "coverage": 0.79,
    },
    "e2e:fp32": {"bench": "e2e", "variant": "fp32", "tickets_per_s": 30.0},
    "e2e": {"bench": "e2e", "variant": "default", "tickets_per_s": 90.0, "p95_ms": 900.0},
    "naive": {"bench": "naive", "tickets_per_s": 40.0},
    "single": {"bench": "single", "p95_ms": 120.0},
    "gpu": {"bench": "gpu", "gpu_measured": False, "tickets_per_s": 300.0, "tflops": 0.01},
    "memory": {"bench": "memory", "peak_rss_mb": 700.0, "growth_mb": 3.0},
}


def test_summary_gives_each_figure_its_target_and_ratio() -> None:
    text = markdown(FIGURES, {"when": "now", "command": "all", "cpu": "2 cores"})
    rows = {line for line in text.splitlines() if line.startswith("| ")}
    assert "| e2e | tickets_per_s | 90.0 tickets/s | >= 80 (0.8 x direct) | 1.12 | yes |" in rows
    assert "| e2e | tickets_per_s | 90.0 tickets/s | >= 120 (3 x naive) | 0.75 | **no** |" in rows
    assert "| single | p95_ms | 120.0 ms | <= 25 (25 ms, light load) | 4.80 | **no** |" in rows
    assert "| memory | growth_mb | 3.0 MB | <= 25 (flat) | 0.12 | yes |" in rows
    assert "| webhook | rps | not run | 1,500 req/s | - | - |" in rows
    assert "No GPU figure measured" in text
    assert any("no GPU figure measured (CPU smoke: 300.0)" in row for row in rows)
    assert "- cpu: 2 cores" in text


def test_summary_sets_the_default_variant_against_fp32() -> None:
    text = markdown(FIGURES, {"when": "now", "command": "all", "cpu": "2 cores"})
    rows = {line for line in text.splitlines() if line.startswith("| ")}
    cpu = "| direct | worker_cpu_ms_per_ticket | 4.5 ms | <= 4 (1/3 of fp32) | 1.12 | **no** |"
    assert cpu in rows
    assert "| direct:fp32 | worker_cpu_ms_per_ticket | 12.0 ms | fp32, reference | - | - |" in rows
    assert "| direct | accuracy | 0.928 | >= 0.927 (fp32 - 0.3 points) | 1.00 | yes |" in rows
    assert "| direct | auto_precision | 0.992 | >= 0.99 (99%) | 1.00 | yes |" in rows
    assert "| direct | coverage | 0.79 | >= 0.78 (fp32 - 2 points) | 1.01 | yes |" in rows
    assert "| e2e | tickets_per_s | 90.0 tickets/s | >= 75 (2.5 x fp32) | 1.20 | yes |" in rows
    e2e_cpu = "| e2e | worker_cpu_ms_per_ticket | not run | 1/3 of fp32 | - | - |"
    assert e2e_cpu in rows
    assert figure_key("direct", FIGURES["direct:fp32"]) == "direct:fp32"
    assert figure_key("direct", FIGURES["direct"]) == "direct"
    assert figure_key("memory", {"bench": "memory"}) == "memory"


def test_machine_info_names_the_cpu_and_says_when_there_is_no_gpu() -> None:
    info = machine_info("all --quick")
    assert "cores usable" in info["cpu"]
    assert info["gpu"]  # a card's name, or the plain "no GPU" line


def test_quick_sets_small_sizes_and_options_still_win() -> None:
    opts = _options(_parser().parse_args(["all", "--quick", "--tickets", "50"]))
    assert (opts.tickets, opts.memory_tickets, opts.single_samples) == (50, 6500, 20)
    assert opts.repeat == 1
    full = _options(_parser().parse_args(["e2e", "--adapter", "x", "--repeat", "5"]))
    assert full.tickets == Options.tickets and full.adapter == Path("x")
    assert full.memory_tickets == 50_000 and full.repeat == 5


def test_tickets_spread_over_the_test_set_and_percentiles() -> None:
    tickets, truth = banking_tickets(77, "r1")
    assert len(tickets) == len(truth) == 77
    assert len(set(truth)) > 50  # spread over the intents, not the first few
    assert {t.revision for t in tickets} == {"r1"} and tickets[0].source == "bench"
    assert percentiles_ms([0.001] * 19 + [0.1]) == {"p50_ms": 1.0, "p95_ms": 5.95}
    assert median_index([90.0, 70.0, 80.0]) == 2 and median_index([3.0, 1.0, 2.0, 4.0]) == 2


def test_naive_messages_name_the_one_ticket_task(rdb: redis.Redis, redis_url: str) -> None:
    naive.register()
    from worker.app import app

    assert naive.NAIVE_TASK in app.tasks
    tickets, _ = banking_tickets(3, "r1")
    naive.send(tickets, ProducerSettings(redis_url=redis_url))
    messages = [json.loads(m) for m in rdb.lrange(CLASSIFY_QUEUE, 0, -1)]
    queued = [m for m in messages if m["headers"]["task"] == naive.NAIVE_TASK]
    assert len(queued) == 3
    args, kwargs, _ = json.loads(base64.b64decode(queued[0]["body"]))
    assert args == [] and kwargs["ticket"]["source"] == "bench" and kwargs["enqueued_at"]


@pytest.mark.slow
def test_gpu_bench_runs_a_tiny_llama_when_there_is_no_gpu() -> None:
    from bench import gpu

    figures = gpu.run(Options(gpu_config="tiny"))
    assert figures["bench"] == "gpu" and figures["gpu_measured"] is False
    assert figures["tickets_per_s"] > 0 and figures["tflops"] > 0
    assert figures["by_batch"][0]["batch"] == 1
    assert figures["token_budget"]["batches"] >= 1
    json.dumps(figures)  # the final JSON line
