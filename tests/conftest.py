"""Shared fixtures: a real Redis, flushed per test (no in-memory imitation, no eager Celery)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import redis

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

#: Tests use their own database on the machine's Redis and flush it around each test.
TEST_REDIS_URL = os.environ.get("TRIAGE_TEST_REDIS_URL", "redis://127.0.0.1:6379/9")


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


def _clear_settings() -> None:
    from producer import settings

    settings.get_settings.cache_clear()
