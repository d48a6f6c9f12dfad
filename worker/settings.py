"""Settings of the Celery workers and the write-back sinks (prefix ``TRIAGE_``)."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class WorkerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TRIAGE_", extra="ignore")

    #: Most tickets one classify batch takes (one forward pass).
    classify_batch: int = Field(default=64, ge=1, le=4096)
    #: How long a lone ticket waits for company before its batch runs, in milliseconds.
    classify_flush_ms: int = Field(default=20, ge=1, le=10_000)
    #: Soft/hard time limits per task, seconds. A hard limit kills the child; the message is
    #: redelivered (acks late) and ends in the dead-letter list after `max_retries`.
    classify_time_limit_s: int = Field(default=300, gt=0)
    escalate_time_limit_s: int = Field(default=180, gt=0)
    writeback_time_limit_s: int = Field(default=120, gt=0)
    #: Redis redelivers an unacknowledged message after this long; far above every time limit so
    #: that a slow task is never run twice at once.
    visibility_timeout_s: int = Field(default=3600, gt=0)
    #: Tries of a retryable failure before the dead-letter list; backoff doubles from the base.
    max_retries: int = Field(default=5, ge=0, le=50)
    retry_backoff_s: float = Field(default=1.0, gt=0)
    retry_backoff_max_s: float = Field(default=120.0, gt=0)

    #: HMAC-SHA256 key signing callbacks (``X-Triage-Signature: t=<unix>,v1=<hex>``).
    callback_secret: SecretStr | None = None
    callback_timeout_s: float = Field(default=10.0, gt=0)
    #: Write-back to ticket systems, chosen by `ticket.source`; a system without a token is
    #: skipped (recorded as ``not-configured``). GitHub: issue labels over the REST API.
    github_api_url: str = "https://api.github.com"
    github_token: SecretStr | None = None
    #: Zendesk: ticket tags, and a custom field when its id is given. Auth: email + API token.
    zendesk_url: str | None = None
    zendesk_email: str | None = None
    zendesk_token: SecretStr | None = None
    zendesk_field_id: int | None = None
    #: Jira: the issue's labels field. Auth: email + API token (Cloud) or a bearer PAT (no email).
    jira_url: str | None = None
    jira_email: str | None = None
    jira_token: SecretStr | None = None
    #: Labels we write carry this prefix, so ours are told apart from everyone else's.
    source_label_prefix: str = Field(default="triage:", min_length=1)
    #: A label or tag a person adds to say "hands off": we never write to such a ticket.
    source_human_marker: str = Field(default="triage:human", min_length=1)
    source_timeout_s: float = Field(default=10.0, gt=0)
    #: Results in the event stream before old ones are trimmed.
    events_maxlen: int = Field(default=100_000, ge=1000)

    @model_validator(mode="after")
    def _visibility_above_limits(self) -> WorkerSettings:
        longest = max(
            self.classify_time_limit_s, self.escalate_time_limit_s, self.writeback_time_limit_s
        )
        if self.visibility_timeout_s <= 2 * longest:
            raise ValueError(
                f"TRIAGE_VISIBILITY_TIMEOUT_S={self.visibility_timeout_s} must be more than twice "
                f"the longest task time limit ({longest} s), or slow tasks run twice"
            )
        return self


@lru_cache
def get_settings() -> WorkerSettings:
    return WorkerSettings()
