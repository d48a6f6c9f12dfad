"""The ledger's settings: where it lives, and URLs it refuses."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from producer.ledger import LedgerSettings


def test_postgres_urls_mean_psycopg_3() -> None:
    for given in ("postgresql://u@db/triage", "postgres://u@db/triage"):
        assert LedgerSettings(database_url=given).database_url == "postgresql+psycopg://u@db/triage"


def test_unset_means_sqlite_under_the_data_dir(tmp_path: Path) -> None:
    settings = LedgerSettings(database_url="", data_dir=tmp_path)
    assert settings.resolved_database_url == f"sqlite:///{tmp_path / 'ledger.sqlite3'}"


def test_an_unknown_scheme_is_refused_naming_it() -> None:
    with pytest.raises(ValidationError, match="'mysql' is not one of"):
        LedgerSettings(database_url="mysql://root@db/triage")
