"""Settings of the HTTP app, `triage serve` (prefix ``TRIAGE_``): tokens, webhook secrets, limits.

Secrets are lists so a key can be rotated: add the new one, move senders over, drop the old one.
A source with no secret stops the start-up unless it is listed in `TRIAGE_INSECURE_SOURCES`.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Webhook sources the app knows how to verify and map; "api" is our own `POST /v1/tickets`.
SOURCES = ("github", "zendesk", "jira", "generic")


class HttpSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TRIAGE_", extra="ignore")

    #: Bearer tokens accepted by `/v1/tickets` and the result and feedback routes (JSON list).
    api_tokens: list[SecretStr] = Field(default_factory=list)
    #: Webhook sources served (JSON list); each needs secrets or must be marked insecure.
    webhook_sources: list[str] = Field(default_factory=lambda: list(SOURCES))
    #: Signing secrets per source (JSON object of lists), e.g. ``{"github": ["s1", "s2"]}``.
    webhook_secrets: dict[str, list[SecretStr]] = Field(default_factory=dict)
    #: Sources (or "api") served WITHOUT verification, for local use only (JSON list).
    insecure_sources: list[str] = Field(default_factory=list)
    #: Largest request body; a bigger one gets 413 before anything else is read.
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    #: Oldest signed timestamp accepted (generic, zendesk), and how far in the future.
    signature_tolerance_s: int = Field(default=300, ge=1)
    #: How long a delivery id is remembered, so a redelivered webhook is not enqueued twice.
    delivery_ttl_s: int = Field(default=3 * 24 * 3600, gt=0)
    #: Webhook requests per second per source before 429 (0: no limit); shared by app workers.
    webhook_rate_per_s: int = Field(default=0, ge=0)
    #: Where human feedback is appended as JSON lines, for the next training run.
    feedback_path: Path = Path(".triage/feedback.jsonl")
    #: A Qdrant server to check in `/healthz`; unset, the index is local to the worker.
    qdrant_url: str | None = None

    @model_validator(mode="after")
    def _every_source_is_secured(self) -> HttpSettings:
        unknown = sorted(set(self.webhook_sources) - set(SOURCES))
        if unknown:
            raise ValueError(
                f"TRIAGE_WEBHOOK_SOURCES has unknown sources {unknown}; known: {list(SOURCES)}"
            )
        for source in self.webhook_sources:
            if not self.secrets(source) and source not in self.insecure_sources:
                raise ValueError(
                    f"webhook source {source!r} has no secret: set TRIAGE_WEBHOOK_SECRETS="
                    f'\'{{"{source}": ["..."]}}\', drop it from TRIAGE_WEBHOOK_SOURCES, or (local '
                    f"use only) add it to TRIAGE_INSECURE_SOURCES"
                )
        if not self.api_tokens and "api" not in self.insecure_sources:
            raise ValueError(
                'no TRIAGE_API_TOKENS: set a bearer token or (local use only) add "api" to '
                "TRIAGE_INSECURE_SOURCES"
            )
        return self

    def secrets(self, source: str) -> list[bytes]:
        """The source's signing keys, newest first as configured; empty when insecure."""
        return [s.get_secret_value().encode() for s in self.webhook_secrets.get(source, [])]


@lru_cache
def get_settings() -> HttpSettings:
    return HttpSettings()
