"""The desk's fixtures: the HTTP app with a real Redis and a migrated ledger (SQLite and
PostgreSQL, `database_url`), and clients signed in as the reviewers of `support.TOKENS`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from producer.http import create_app
from producer.ledger import Ledger
from producer.settings import ProducerSettings
from tests.review.support import ANN, desk_settings, sign_in


@pytest.fixture
def ledger(database_url: str) -> Iterator[Ledger]:
    with Ledger.open(database_url, upgrade_schema=True) as opened:
        yield opened


@pytest.fixture
def make_client(
    redis_url: str, ledger: Ledger, tmp_path: Path
) -> Iterator[Callable[..., TestClient]]:
    """A TestClient of a fresh app (settings overridden by kwargs), optionally signed in."""
    clients: list[TestClient] = []

    def make(token: str | None = None, base_url: str = "http://testserver", **extra: Any):
        app = create_app(desk_settings(tmp_path, **extra), ProducerSettings(redis_url=redis_url))
        client = TestClient(app, base_url=base_url)
        client.__enter__()
        clients.append(client)
        if token is not None:
            assert sign_in(client, token).status_code == 303
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def ann(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client(ANN)
