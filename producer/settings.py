"""Settings for reaching the broker and the result store (prefix ``TRIAGE_``).

Validated when first read (`get_settings()` is cached), so a bad value fails at start-up with the
variable's name, not on the first ticket.
"""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import urlsplit

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from producer.callbacks import Allow

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


class ProducerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TRIAGE_", extra="ignore")

    #: Redis for the broker, the result store and the event stream. ``redis://``, ``rediss://`` or
    #: ``unix:///path/redis.sock``. Unset: 127.0.0.1:6379 (``triage demo`` starts an embedded one).
    redis_url: str | None = None
    #: How long enqueueing the same ticket revision again stays a no-op.
    dedupe_ttl_s: int = Field(default=7 * 24 * 3600, gt=0)
    #: How long `enqueue` waits for Redis before raising `BrokerUnavailable`.
    broker_timeout_s: float = Field(default=5.0, gt=0)
    #: Back-pressure: most messages a queue may hold before producers get `QueueFull` (the
    #: webhook answers 503) instead of Redis growing without bound while workers are behind.
    #: A call that finds the queue empty is always taken, so the bound is the larger of this
    #: and one call's tickets (a backfill chunk). About 2 kB of Redis memory a message. 0: no cap.
    max_queue_depth: int = Field(default=100_000, ge=0)
    #: Callback hosts and networks that may be called although they are not public addresses
    #: (loopback, private, link-local...): a JSON list of host names, addresses and CIDRs, e.g.
    #: ``["receiver.internal", "10.1.2.0/24"]``. Empty: callbacks reach public addresses only
    #: (docs/security.md, "Callbacks").
    callback_allow: list[str] = Field(default_factory=list)
    #: Our labels in the ticket systems are ``<prefix><task>:<label>`` (`producer.namespace`);
    #: the webhooks read a person's relabel by it. The worker writes with the same variable.
    source_label_prefix: str = Field(default="triage:", min_length=1)
    #: Who the bot is in each ticket system (GitHub login, Jira accountId, Zendesk user id), so
    #: the label changes it makes are not taken for a person's relabel. Unset: every label change
    #: in that system is ignored (none becomes a human label). See docs/security.md.
    github_bot_login: str | None = Field(default=None, min_length=1)
    jira_bot_account_id: str | None = Field(default=None, min_length=1)
    zendesk_bot_user_id: str | None = Field(default=None, min_length=1)

    @field_validator("redis_url")
    @classmethod
    def _known_scheme(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        scheme = urlsplit(value).scheme
        if scheme not in {"redis", "rediss", "unix"}:
            raise ValueError(f"scheme {scheme!r} is not redis://, rediss:// or unix://")
        return value

    @field_validator("callback_allow")
    @classmethod
    def _allow_entries(cls, value: list[str]) -> list[str]:
        Allow.parse(value)  # a bad entry stops the start, naming it
        return value

    @property
    def callback_allowlist(self) -> Allow:
        """`callback_allow`, parsed."""
        return Allow.parse(self.callback_allow)

    @property
    def resolved_redis_url(self) -> str:
        return self.redis_url or DEFAULT_REDIS_URL

    @property
    def broker_url(self) -> str:
        """The same Redis in kombu's spelling (``redis+socket://`` for a unix socket)."""
        return kombu_url(self.resolved_redis_url)


def kombu_url(redis_url: str) -> str:
    if redis_url.startswith("unix://"):
        return "redis+socket://" + redis_url.removeprefix("unix://")
    return redis_url


@lru_cache
def get_settings() -> ProducerSettings:
    return ProducerSettings()
