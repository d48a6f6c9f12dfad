"""Heavy resources, loaded once per process on first use (never in a parent that forks).

Models, the embedder, the Qdrant client, the frontier client and the ledger live here; tasks ask
for them. What is loaded, and how, is `models.assembly`'s, which `triage eval` and `tune` call too.
"""

from __future__ import annotations

import logging
import threading
from functools import lru_cache
from typing import TYPE_CHECKING

import redis

from models import assembly
from models.assembly import open_index  # `cli.demo` opens the worker's index through here
from models.cascade import Policy, Search, TaskModels, load_policy
from models.settings import get_settings as model_settings
from producer.client import redis_client
from producer.labelset import LabelSet
from producer.ledger import get_settings as ledger_settings
from producer.settings import get_settings as producer_settings

if TYPE_CHECKING:
    from models.adapters import AdapterSet
    from models.embedder import Embedder
    from models.frontier import FrontierClient, SpendBudget
    from models.index import TicketIndex
    from producer.ledger import Ledger

log = logging.getLogger(__name__)
_lock = threading.Lock()
_index_lock = threading.Lock()
_ledger_lock = threading.Lock()


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
    with _ledger_lock:
        if _ledger.cache_info().currsize:
            _ledger().close()
            _ledger.cache_clear()
            # Opened again (a test, a reloaded worker), it reads where the ledger is anew.
            ledger_settings.cache_clear()


@lru_cache
def task_models(task: str) -> TaskModels:
    """The task's classifier: from the shared `adapter_set` when other tasks share its base,
    else its own adapter merged into its base."""
    quiet_loading()
    s = model_settings()
    if task in assembly.shared_base_tasks(s):
        return assembly.adapter_set_models(adapter_set(), task)
    with _lock:
        clf = assembly.load_classifier(s.adapter_dir(task), s)
    log.info("loaded adapter %s for task %s", clf.version, task)
    return assembly.classifier_models(clf)


@lru_cache
def adapter_set() -> AdapterSet:
    """One base with the adapters of every task in `shared_base_tasks`, switched per batch."""
    s = model_settings()
    tasks = assembly.shared_base_tasks(s)
    with _lock:
        adapters = assembly.load_adapter_set({task: s.adapter_dir(task) for task in tasks}, s)
    log.info("loaded adapters %s on one base %s", adapters.versions, adapters.base_model)
    return adapters


@lru_cache
def labels(task: str) -> LabelSet:
    return LabelSet.load(model_settings().labels_path(task))


@lru_cache
def embedder() -> Embedder:
    quiet_loading()
    with _lock:
        return assembly.load_embedder(model_settings())


def index() -> TicketIndex:
    """This process's index, opened once even when threads ask at the same time (a local
    Qdrant directory refuses a second client)."""
    with _index_lock:
        return _index()


@lru_cache
def _index() -> TicketIndex:
    return open_index(model_settings())


def search(task: str) -> Search:
    """The first pass's neighbour search for `task`, over this process's index."""
    return assembly.index_search(index(), task)


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


def ledger() -> Ledger:
    """This process's ledger, opened on first use: in the process that writes, after any fork
    (a pool of connections per process). A SQLite ledger is migrated as it opens; a PostgreSQL
    one must be at the newest schema (`triage ledger upgrade`), else `LedgerError`. A failed
    open is not kept: the next write-back tries again."""
    with _ledger_lock:  # one open (and one SQLite migration) even when threads ask at once
        return _ledger()


@lru_cache
def _ledger() -> Ledger:
    from producer.ledger import Ledger

    return Ledger.open()


def quiet_loading() -> None:
    # Progress bars from model loading end up as empty WARNING lines in the worker log.
    import transformers

    transformers.logging.disable_progress_bar()  # type: ignore[no-untyped-call]
