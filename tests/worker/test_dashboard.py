"""The Grafana dashboard queries only metrics the code registers, and shows every worker metric."""

from __future__ import annotations

import json
import re
from pathlib import Path

import redis
from prometheus_client import CollectorRegistry

from producer.http.metrics import Metrics
from producer.queue_stats import QueueCollector
from worker.observe.metrics import StateCollector, WorkerMetrics

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "ticket-triage.json"
SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "gauge": ("",),
}


def _never_called() -> redis.Redis:
    raise AssertionError("describing a collector must not read Redis")


def exposed(families) -> set[str]:
    return {f.name + s for f in families for s in SUFFIXES[f.type]}


def registered() -> tuple[set[str], set[str]]:
    """(every series name the code can expose, the worker's own counters and histograms)."""
    worker = exposed(WorkerMetrics().registry.collect())
    http = exposed(Metrics().registry.collect())
    scraped = exposed(
        [*QueueCollector(_never_called).describe(), *StateCollector(_never_called).describe()]
    )
    return worker | http | scraped, worker


def queried() -> set[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert exprs, "the dashboard has no queries"
    return {name for e in exprs for name in re.findall(r"\btriage_[a-z0-9_]+", e)}


def test_every_metric_the_dashboard_queries_is_registered() -> None:
    known, _ = registered()
    unknown = queried() - known
    assert not unknown, f"the dashboard queries metrics no code registers: {sorted(unknown)}"


def test_every_worker_metric_is_on_the_dashboard() -> None:
    _, worker = registered()
    shown = {re.sub(r"_(total|bucket|sum|count)$", "", n) for n in queried()}
    missing = {re.sub(r"_(total|bucket|sum|count)$", "", n) for n in worker} - shown
    assert not missing, f"worker metrics no panel shows: {sorted(missing)}"


def test_each_worker_metrics_counts_in_a_registry_of_its_own() -> None:
    # Tests make many: a shared registry would raise on the second's names, or mix their counts.
    first, second = WorkerMetrics(), WorkerMetrics()
    labels = {"stage": "classify", "task": "category", "outcome": "labelled"}
    first.tickets.labels(**labels).inc()
    assert first.registry.get_sample_value("triage_worker_tickets_total", labels) == 1
    assert second.registry.get_sample_value("triage_worker_tickets_total", labels) is None
    given = CollectorRegistry()
    assert WorkerMetrics(given).registry is given
