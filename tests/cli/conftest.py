"""The command line's fixtures: a migrated ledger at TRIAGE_DATABASE_URL (SQLite and
PostgreSQL), and a task whose adapter was tuned for 99% precision."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from producer.ledger import Ledger, migrate

#: What the adapter directory's `policy.json` says `triage tune` aimed at.
TUNED_PRECISION = 0.99


@pytest.fixture
def ledger(database_url: str) -> Iterator[Ledger]:
    migrate(database_url)  # as `triage ledger upgrade` does before anything uses it
    with Ledger.open(database_url) as opened:
        yield opened


@pytest.fixture
def tuned_adapter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The `category` task's adapter directory, as `triage tune` leaves its policy."""
    from models import settings as model_settings

    adapter = tmp_path / "adapters" / "category"
    adapter.mkdir(parents=True)
    policy = {"tuning": {"target": {"precision": TUNED_PRECISION}, "cv_coverage": 0.8}}
    (adapter / "policy.json").write_text(json.dumps(policy))
    monkeypatch.setenv("TRIAGE_ADAPTERS", json.dumps({"category": str(adapter)}))
    model_settings.get_settings.cache_clear()
    yield adapter
    model_settings.get_settings.cache_clear()
