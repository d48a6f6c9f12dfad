"""Shared fixtures: a real Redis, flushed per test, and an empty ledger database per test on
SQLite and on a real PostgreSQL (no in-memory imitation, no eager Celery)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _test_redis_url() -> str:
    """The tests' own database on the machine's Redis, flushed around each test; under
    pytest-xdist each worker ("gw0", "gw1"...) takes the next database, so none flushes
    another's."""
    url = os.environ.get("TRIAGE_TEST_REDIS_URL", "redis://127.0.0.1:6379/9")
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if worker.startswith("gw"):
        base, _, db = url.rpartition("/")
        url = f"{base}/{int(db or 0) + int(worker[2:])}"
    return url


TEST_REDIS_URL = _test_redis_url()


@pytest.fixture
def redis_url(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    client = redis.Redis.from_url(TEST_REDIS_URL)
    client.flushdb()
    monkeypatch.setenv("TRIAGE_REDIS_URL", TEST_REDIS_URL)
    _clear_settings()
    yield TEST_REDIS_URL
    client.flushdb()
    client.close()
    _clear_settings()


@pytest.fixture
def rdb(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """An empty ledger database, once SQLite (in tmp_path) and once PostgreSQL (a schema of the
    test's own at TRIAGE_TEST_DATABASE_URL, dropped after it); TRIAGE_DATABASE_URL names it."""
    from producer.ledger import settings
    from tests.ledger.databases import fresh_database

    with fresh_database(request.param, tmp_path) as url:
        monkeypatch.setenv("TRIAGE_DATABASE_URL", url)
        settings.get_settings.cache_clear()
        yield url
    settings.get_settings.cache_clear()


def _clear_settings() -> None:
    from producer import settings

    settings.get_settings.cache_clear()
