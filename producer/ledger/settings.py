"""Where the ledger lives (prefix ``TRIAGE_``): PostgreSQL by URL, else SQLite in the data dir."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Schemes the ledger speaks; ``postgresql://`` and ``postgres://`` mean psycopg 3.
_SCHEMES = {
    "sqlite": "sqlite",
    "postgresql": "postgresql+psycopg",
    "postgres": "postgresql+psycopg",
    "postgresql+psycopg": "postgresql+psycopg",
}


class LedgerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TRIAGE_", extra="ignore")

    #: The ledger's database (the store of record: decisions, people's labels, the review desk),
    #: e.g. ``postgresql://triage@db:5432/triage`` (psycopg 3). Unset: SQLite at
    #: ``<data_dir>/ledger.sqlite3``, migrated on first use; a PostgreSQL ledger is migrated
    #: explicitly, by ``producer.ledger.migrate(url)``, before the processes that use it start.
    database_url: str | None = None
    #: Where the embedded ledger (``ledger.sqlite3``) lives, beside the adapters, the local Qdrant
    #: index and the embedded Redis (the models' setting of the same name).
    data_dir: Path = Path(".triage")
    #: How long a SQLite writer waits for another process's write to finish before failing
    #: (a retryable error). Several processes share one SQLite ledger through this and WAL.
    database_busy_timeout_s: float = Field(default=30.0, gt=0)

    @field_validator("database_url")
    @classmethod
    def _known_scheme(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        scheme, sep, rest = value.strip().partition("://")
        if not sep or scheme not in _SCHEMES:
            known = ", ".join(f"{s}://" for s in _SCHEMES)
            raise ValueError(f"scheme {scheme!r} is not one of {known}")
        return f"{_SCHEMES[scheme]}://{rest}"

    @property
    def resolved_database_url(self) -> str:
        """`database_url`, or the embedded SQLite file under `data_dir`."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'ledger.sqlite3').resolve()}"


@lru_cache
def get_settings() -> LedgerSettings:
    return LedgerSettings()
