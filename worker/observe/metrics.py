"""The workers' Prometheus metrics: what they are, and the registry a worker's exporter serves.

Counters and histograms are counted where things happen (`worker.observe.events`,
`worker.observe.timing`); gauges of state (queue depths, dead letters, spend today, live workers)
are read from Redis at scrape time, so every worker reports the same truth and nothing drifts.

Escalation rate is a ratio of counters, not a gauge: a per-process gauge cannot be averaged over
workers, a ratio of summed rates can (see the dashboard, deploy/grafana/ticket-triage.json)::

    sum(rate(triage_worker_tickets_total{stage="classify",outcome="escalated"}[5m]))
      / sum(rate(triage_worker_tickets_total{stage="classify"}[5m]))
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from functools import lru_cache, partial

import redis
from prometheus_client import CollectorRegistry, Counter, Histogram, Metric
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from producer.queue_stats import QueueCollector

#: Seconds; from a few milliseconds (a write-back) to minutes (a slow frontier with retries).
STAGE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
#: Enqueue to decision spans queueing too: up to an hour behind a backlog.
DECISION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class WorkerMetrics:
    """Every metric a worker counts, in one registry (a new one per instance, for tests)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        # One registry and the usual buckets for all; each metric is then one line of meaning.
        counter = partial(Counter, registry=r)
        histogram = partial(Histogram, registry=r, buckets=STAGE_BUCKETS)
        self.tickets = counter(
            "triage_worker_tickets",
            "Ticket events by stage (classify, escalate, writeback) and outcome",
            ["stage", "task", "outcome"],
        )
        self.decisions = counter(
            "triage_decisions",
            "Results decided, by who decided (classifier, retrieval, frontier, human) and status",
            ["task", "decided_by", "status"],
        )
        self.stage_seconds = histogram(
            "triage_stage_seconds",
            "Run time of one task: a classify batch, an escalation, a write-back",
            ["stage"],
        )
        self.first_pass_seconds = histogram(
            "triage_first_pass_seconds",
            "Classifier and retrieval time per ticket (its share of its batch)",
            ["task"],
        )
        self.batch_size = histogram(
            "triage_classify_batch_size",
            "Messages per classify batch (a Celery batch may mix label tasks)",
            buckets=BATCH_BUCKETS,
        )
        self.decision_seconds = histogram(
            "triage_decision_seconds",
            "From enqueue to decision, queueing included",
            ["task", "decided_by"],
            buckets=DECISION_BUCKETS,
        )
        self.sink_seconds = histogram(
            "triage_writeback_sink_seconds",
            "Run time of one write-back sink",
            ["sink"],
        )
        self.sink_failures = counter(
            "triage_writeback_failures",
            "Write-back sink calls that raised (each is retried, then dead-lettered)",
            ["sink"],
        )
        self.frontier_tokens = counter(
            "triage_frontier_tokens",
            "Frontier tokens, by model and kind (input, output)",
            ["model", "kind"],
        )
        self.frontier_spend = counter(
            "triage_frontier_spend_usd",
            "Frontier spend in US dollars, by model",
            ["model"],
        )
        self.dead_lettered = counter(
            "triage_dead_lettered",
            "Messages this worker parked in the dead-letter list, by stage",
            ["stage"],
        )


@lru_cache
def get_metrics() -> WorkerMetrics:
    """This process's metrics."""
    return WorkerMetrics()


def exposition_registry(connect: Callable[[], redis.Redis]) -> CollectorRegistry:
    """What a worker's /metrics serves: its counters plus the state read from Redis at scrape.

    With PROMETHEUS_MULTIPROC_DIR set (prefork, `worker.observe.setup`), the counters come from
    every process's files in that directory instead of this process's memory.
    """
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry = get_metrics().registry
    registry.register(QueueCollector(connect))
    registry.register(StateCollector(connect))
    return registry


class StateCollector(Collector):
    """Gauges read from Redis at scrape time: frontier spend today and its cap, live workers."""

    def __init__(self, connect: Callable[[], redis.Redis]) -> None:
        self._connect = connect

    def collect(self) -> Iterator[Metric]:
        from models.frontier.budget import SpendBudget
        from models.settings import get_settings as model_settings
        from worker.observe.heartbeat import live_workers

        cap = model_settings().frontier_daily_budget_usd
        try:
            r = self._connect()
            spent = SpendBudget(r, cap).spent_today()
            alive = len(live_workers(r))
        except Exception:  # Redis down: `triage_redis_up` says so; no made-up values here
            return
        yield from _families(spent=spent, cap=cap, alive=alive)

    def describe(self) -> Iterator[Metric]:
        yield from _families(spent=None, cap=None, alive=None)


def _families(spent: float | None, cap: float | None, alive: int | None) -> Iterable[Metric]:
    yield GaugeMetricFamily(
        "triage_frontier_spend_today_usd", "Frontier spend so far today (UTC)", value=spent
    )
    yield GaugeMetricFamily(
        "triage_frontier_budget_usd", "Daily frontier spend cap (0: frontier off)", value=cap
    )
    yield GaugeMetricFamily(
        "triage_workers_alive", "Workers whose heartbeat key is live in Redis", value=alive
    )


def timed_sink(name: str, sink: Callable[[], str]) -> str:
    """Run one write-back sink, timing it and counting it when it raises (then re-raise)."""
    m = get_metrics()
    started = time.perf_counter()
    try:
        return sink()
    except Exception:
        m.sink_failures.labels(name).inc()
        raise
    finally:
        m.sink_seconds.labels(name).observe(time.perf_counter() - started)
