"""Heavy resources, loaded once per process on first use (never in a parent that forks).

Models, the embedder, the Qdrant client and the frontier client live here; tasks ask for them.
"""

from __future__ import annotations

import logging
import threading
from functools import lru_cache
from typing import TYPE_CHECKING

import redis

from models.cascade import Policy, TaskModels, load_policy
from models.settings import ModelSettings
from models.settings import get_settings as model_settings
from producer.client import redis_client
from producer.labelset import LabelSet
from producer.settings import get_settings as producer_settings

if TYPE_CHECKING:
    from models.embedder import Embedder
    from models.frontier import FrontierClient, SpendBudget
    from models.index import TicketIndex

log = logging.getLogger(__name__)
_lock = threading.Lock()


def redis_conn() -> redis.Redis:
    ps = producer_settings()
    return redis_client(ps.resolved_redis_url, ps.broker_timeout_s)


def close_all() -> None:
    """Release what holds files or sockets (the local Qdrant lock above all) at shutdown."""
    if index.cache_info().currsize:
        index().close()
        index.cache_clear()
    if frontier.cache_info().currsize and (client := frontier()) is not None:
        client.close()
        frontier.cache_clear()


@lru_cache
def task_models(task: str) -> TaskModels:
    quiet_loading()
    from models.classifier import Classifier

    s = model_settings()
    with _lock:
        clf = Classifier.load(
            s.adapter_dir(task), device=s.device, max_length=s.max_length, batch_size=s.batch_size
        )
        clf.merge_adapter()  # this process serves one adapter per task: merged is faster
    log.info("loaded adapter %s for task %s", clf.version, task)
    return TaskModels(labels=clf.labels, predict_proba=clf.predict_proba, version=clf.version)


@lru_cache
def labels(task: str) -> LabelSet:
    return LabelSet.load(model_settings().labels_path(task))


@lru_cache
def embedder() -> Embedder:
    from models.embedder import Embedder

    quiet_loading()
    s = model_settings()
    with _lock:
        return Embedder(s.embedder, batch_size=s.batch_size)


@lru_cache
def index() -> TicketIndex:
    return open_index(model_settings())


def open_index(s: ModelSettings) -> TicketIndex:
    from models.index import TicketIndex

    key = s.qdrant_api_key.get_secret_value() if s.qdrant_api_key else None
    if s.qdrant_url:
        return TicketIndex(url=s.qdrant_url, api_key=key)
    return TicketIndex(path=s.qdrant_path)


@lru_cache
def frontier() -> FrontierClient | None:
    from models.frontier import build_frontier_client

    return build_frontier_client(model_settings())


@lru_cache
def budget() -> SpendBudget:
    from models.frontier import SpendBudget

    return SpendBudget(redis_conn(), model_settings().frontier_daily_budget_usd)


@lru_cache
def policy(task: str = "category") -> Policy:
    """`triage tune`'s policy.json next to the task's adapter, else the settings' thresholds."""
    s = model_settings()
    return load_policy(s.adapter_dir(task), s)


def quiet_loading() -> None:
    # Progress bars from model loading end up as empty WARNING lines in the worker log.
    import transformers

    transformers.logging.disable_progress_bar()  # type: ignore[no-untyped-call]
