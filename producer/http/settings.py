"""Settings of the HTTP app, `triage serve` (prefix ``TRIAGE_``): credentials, limits, the edge.

Secrets are lists so a key can be rotated: add the new one, move senders over, drop the old one.
A source with no secret stops the start-up unless it is listed in `TRIAGE_INSECURE_SOURCES`;
so does an empty or whitespace-only token or secret, naming its variable. What each credential
may cause is docs/security.md.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Webhook sources the app knows how to verify and map; "api" is our own `POST /v1/tickets`.
SOURCES = ("github", "zendesk", "jira", "generic")
#: A scope: source names, or "*" for every source that is not a ticket system.
Scope = list[Annotated[str, Field(pattern=r"^(\*|[A-Za-z0-9][A-Za-z0-9_.-]{0,63})$")]]
#: What a plain token in `TRIAGE_API_TOKENS` may do.
DEFAULT_SCOPES: dict[str, list[str]] = {"enqueue": ["*"], "read": ["*"], "feedback": ["*"]}


class ApiToken(BaseModel):
    """A bearer token and its scopes (sources it may enqueue to, read results of, give
    feedback on, review). A scope left out is empty: an object grants what it names."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    token: SecretStr
    name: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    enqueue: Scope = Field(default_factory=list)
    read: Scope = Field(default_factory=list)
    feedback: Scope = Field(default_factory=list)
    review: Scope = Field(default_factory=list)

    @field_validator("token")
    @classmethod
    def _not_blank(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError("TRIAGE_API_TOKENS: a token is empty or whitespace")
        return value


class WebhookKey(BaseModel):
    """A signing key; a generic one is bound to the sources its tickets may have."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    secret: SecretStr
    sources: Scope = Field(default_factory=lambda: ["generic"], min_length=1)

    @field_validator("secret")
    @classmethod
    def _not_blank(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError("TRIAGE_WEBHOOK_SECRETS: a secret is empty or whitespace")
        return value


class HttpSettings(BaseSettings):
    # Errors name the variable and the problem, never the values (they hold the secrets).
    model_config = SettingsConfigDict(
        env_prefix="TRIAGE_", extra="ignore", hide_input_in_errors=True
    )

    #: Bearer tokens of our API (JSON list): a plain string may enqueue to, read and give
    #: feedback on every source that is not a ticket system; an object names its scopes,
    #: ``{"token", "name", "enqueue", "read", "feedback", "review"}`` (docs/security.md).
    api_tokens: list[ApiToken] = Field(default_factory=list)
    #: Webhook sources served (JSON list); each needs secrets or must be marked insecure.
    webhook_sources: list[str] = Field(default_factory=lambda: list(SOURCES))
    #: Signing secrets per source (JSON object of lists), e.g. ``{"github": ["s1", "s2"]}``; a
    #: generic key may be bound to sources: ``{"secret": "...", "sources": ["generic", "desk"]}``.
    webhook_secrets: dict[str, list[WebhookKey]] = Field(default_factory=dict)
    #: Sources (or "api") served WITHOUT verification, for local use only (JSON list).
    insecure_sources: list[str] = Field(default_factory=list)
    #: Largest request body; a bigger one gets 413 before anything else is read.
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    #: Oldest signed timestamp accepted (generic, zendesk), and how far in the future.
    signature_tolerance_s: int = Field(default=300, ge=1)
    #: How long a delivery id is remembered, so a redelivered webhook is not enqueued twice.
    delivery_ttl_s: int = Field(default=3 * 24 * 3600, gt=0)
    #: Verified webhook requests per second per source and signing key before 429 (0: no
    #: limit); shared by app workers. Forgeries are refused before they are counted.
    webhook_rate_per_s: int = Field(default=0, ge=0)
    #: API requests per second per credential before 429 (0: no limit); shared by app workers.
    api_rate_per_s: int = Field(default=0, ge=0)
    #: A Qdrant server to check in `/healthz`; unset, the index is local to the worker.
    qdrant_url: str | None = None
    #: Label-set files by task name (the worker's `TRIAGE_LABELS`): feedback must name a
    #: configured task and a label of its set.
    labels: dict[str, Path] = Field(default_factory=lambda: {"category": _default_labels()})
    #: A connection whose request headers are not all in after this long is closed (408).
    http_header_timeout_s: float = Field(default=10.0, gt=0)
    #: A request body not all in this long after its headers is cut off (408).
    http_body_timeout_s: float = Field(default=30.0, gt=0)
    #: Connections and requests served at once per app process; beyond them, 503.
    http_max_connections: int = Field(default=1000, ge=1)
    #: Serve the OpenAPI schema and its pages (`/docs`, `/redoc`, `/openapi.json`).
    http_docs: bool = False
    #: Serve `/metrics` to anyone; otherwise it needs a valid API token.
    metrics_public: bool = False
    #: How long opening a ticket on the review desk (`/review`) holds it for that reviewer;
    #: nobody else gets it meanwhile, and it is free again once this runs out.
    review_claim_s: float = Field(default=600.0, gt=0)
    #: How long a review desk sign-in lasts (its session, kept in Redis) before signing in again.
    review_session_s: int = Field(default=8 * 3600, ge=60)
    #: Adapter directories by task (the worker's setting): the desk's stats page reads each
    #: task's tuned target precision from ``<adapter>/policy.json``; unset, the default
    #: ``<TRIAGE_DATA_DIR>/adapters/<task>``.
    adapters: dict[str, Path] = Field(default_factory=dict)

    @field_validator("api_tokens", mode="before")
    @classmethod
    def _plain_tokens_get_default_scopes(cls, value: Any) -> Any:
        if not isinstance(value, list):
            return value
        return [
            {"token": v, **DEFAULT_SCOPES} if isinstance(v, str | SecretStr) else v for v in value
        ]

    @field_validator("webhook_secrets", mode="before")
    @classmethod
    def _plain_secrets_are_keys(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        return {
            source: [
                {"secret": k, "sources": [source]} if isinstance(k, str | SecretStr) else k
                for k in keys
            ]
            if isinstance(keys, list)
            else keys
            for source, keys in value.items()
        }

    @model_validator(mode="after")
    def _every_source_is_secured(self) -> HttpSettings:
        unknown = sorted(set(self.webhook_sources) - set(SOURCES))
        if unknown:
            raise ValueError(
                f"TRIAGE_WEBHOOK_SOURCES has unknown sources {unknown}; known: {list(SOURCES)}"
            )
        for source in self.webhook_sources:
            if not self.keys(source) and source not in self.insecure_sources:
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
        self._no_repeated_or_misbound_credentials()
        return self

    def _no_repeated_or_misbound_credentials(self) -> None:
        tokens = [t.token.get_secret_value() for t in self.api_tokens]
        if len(set(tokens)) != len(tokens):
            raise ValueError("TRIAGE_API_TOKENS: a token is listed twice")
        names = [name for name, _ in self.named_tokens()]
        if len(set(names)) != len(names):
            raise ValueError(f"TRIAGE_API_TOKENS: token names repeat: {sorted(names)}")
        for source, keys in self.webhook_secrets.items():
            for key in keys:
                if source != "generic" and key.sources != [source]:
                    raise ValueError(
                        f"TRIAGE_WEBHOOK_SECRETS: only generic keys are bound to sources; "
                        f"{source}'s tickets are {source}'s"
                    )

    def named_tokens(self) -> list[tuple[str, ApiToken]]:
        """Each token with the name logs and metrics show: its own, or ``token-<n>``."""
        return [(t.name or f"token-{n}", t) for n, t in enumerate(self.api_tokens, 1)]

    def keys(self, source: str) -> list[WebhookKey]:
        """The source's signing keys, as configured; empty when insecure."""
        return self.webhook_secrets.get(source, [])

    def secrets(self, source: str) -> list[bytes]:
        """The source's signing keys as bytes, in the order of `keys`."""
        return [k.secret.get_secret_value().encode() for k in self.keys(source)]


def _default_labels() -> Path:
    """The worker's default label set (`models.data.examples_dir`), found without importing
    `models`: the checkout's examples, or those packaged beside `models` in a wheel."""
    root = Path(__file__).resolve().parents[2]
    examples = root / "examples" if (root / "examples").is_dir() else root / "models" / "examples"
    return examples / "banking77" / "labels.json"


@lru_cache
def get_settings() -> HttpSettings:
    return HttpSettings()
