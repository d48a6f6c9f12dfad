"""The ledger's fixtures: a migrated ledger on each dialect (see `database_url`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from producer.ledger import Ledger


@pytest.fixture
def ledger(database_url: str) -> Iterator[Ledger]:
    with Ledger.open(database_url, upgrade_schema=True) as opened:
        yield opened
