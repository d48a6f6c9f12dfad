"""Heavy resources, loaded once per process on first use (never in a parent that forks).

Models, the embedder, the Qdrant client and the frontier client live here; tasks ask for them.
"""

from __future__ import annotations

import logging
import threading
from functools import lru_cache, partial
from typing import TYPE_CHECKING

import redis

from models.cascade import Policy, TaskModels, load_policy
from models.settings import ModelSettings
from models.settings import get_settings as model_settings
from producer.client import redis_client
from producer.labelset import LabelSet
from producer.settings import get_settings as producer_settings

if TYPE_CHECKING:
    from models.adapters import AdapterSet
    from models.embedder import Embedder
    from models.frontier import FrontierClient, SpendBudget
    from models.index import TicketIndex

log = logging.getLogger(__name__)
_lock = threading.Lock()
_index_lock = threading.Lock()
#: Texts per embedder pass on a CPU (see `embedder`).
CPU_EMBED_BATCH = 16


def redis_conn() -> redis.Redis:
    ps = producer_settings()
    return redis_client(ps.resolved_redis_url, ps.broker_timeout_s)


def close_all() -> None:
    """Release what holds files or sockets (the local Qdrant lock above all) at shutdown."""
    with _index_lock:
        if _index.cache_info().currsize:
            _index().close()
            _index.cache_clear()
    if frontier.cache_info().currsize and (client := frontier()) is not None:
        client.close()
        frontier.cache_clear()


@lru_cache
def task_models(task: str) -> TaskModels:
    """The task's classifier: from the shared `adapter_set` when other tasks share its base,
    else its own adapter merged into its base (one adapter per process is faster merged)."""
    quiet_loading()
    s = model_settings()
    if task in shared_base_tasks(s):
        adapters = adapter_set()
        return TaskModels(
            labels=adapters.labels[task],
            predict_proba=partial(adapters.predict_proba, task),
            version=adapters.versions[task],
        )
    from models.classifier import Classifier

    with _lock:
        clf = Classifier.load(
            s.adapter_dir(task),
            device=s.device,
            max_length=s.max_length,
            batch_size=s.batch_size,
            max_batch_tokens=s.max_batch_tokens or None,
        )
        clf.merge_adapter()  # this process serves one adapter per task: merged is faster
    log.info("loaded adapter %s for task %s", clf.version, task)
    return TaskModels(labels=clf.labels, predict_proba=clf.predict_proba, version=clf.version)


@lru_cache
def adapter_set() -> AdapterSet:
    """One base with the adapters of every task in `shared_base_tasks`, switched per batch."""
    from models.adapters import AdapterSet

    s = model_settings()
    tasks = shared_base_tasks(s)
    with _lock:
        adapters = AdapterSet(
            {task: s.adapter_dir(task) for task in tasks},
            device=s.device,
            max_length=s.max_length,
            batch_size=s.batch_size,
            max_batch_tokens=s.max_batch_tokens or None,
        )
    log.info("loaded adapters %s on one base %s", adapters.versions, adapters.base_model)
    return adapters


def shared_base_tasks(s: ModelSettings) -> tuple[str, ...]:
    """The largest group (two or more) of configured tasks whose adapters share base and head.

    Tasks without a readable adapter are left out (they fail on their own when used).
    """
    from models.classifier import read_meta
    from producer.errors import ModelError

    groups: dict[tuple[str, str], list[str]] = {}
    for task in s.labels:
        try:
            meta = read_meta(s.adapter_dir(task))
        except ModelError:
            continue
        groups.setdefault((str(meta["base_model"]), str(meta["head"])), []).append(task)
    largest = max(groups.values(), key=len, default=[])
    return tuple(largest) if len(largest) > 1 else ()


@lru_cache
def labels(task: str) -> LabelSet:
    return LabelSet.load(model_settings().labels_path(task))


@lru_cache
def embedder() -> Embedder:
    from models.base_models import pick_device
    from models.embedder import Embedder

    quiet_loading()
    s = model_settings()
    device = pick_device(s.device)
    # sentence-transformers pads each batch to its longest text: on a CPU, narrower batches pad
    # far less (64 Banking77 tickets: 17 ms each in one batch, 8 in batches of 16, 2 cores).
    batch = s.batch_size if device.type == "cuda" else min(s.batch_size, CPU_EMBED_BATCH)
    with _lock:
        # On the classifier's device: a GPU worker must not embed on its CPU.
        return Embedder(s.embedder, device=str(device), batch_size=batch)


def index() -> TicketIndex:
    """This process's index, opened once even when threads ask at the same time (a local
    Qdrant directory refuses a second client)."""
    with _index_lock:
        return _index()


@lru_cache
def _index() -> TicketIndex:
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
