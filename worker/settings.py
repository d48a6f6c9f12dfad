"""Settings of the Celery workers and the write-back sinks (prefix ``TRIAGE_``)."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class WorkerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TRIAGE_", extra="ignore")

    #: Most tickets one classify batch takes (one forward pass).
    classify_batch: int = Field(default=64, ge=1, le=4096)
    #: How long a lone ticket waits for company before its batch runs, in milliseconds.
    classify_flush_ms: int = Field(default=20, ge=1, le=10_000)
    #: Hard time limits per task, seconds (the soft limit, which lets the task clean up, is a
    #: little earlier: `soft_limit_s`). Enforced by the prefork pool only: a hard limit kills the
    #: child; its tickets are sent again and dead-lettered after `max_retries` such deaths.
    classify_time_limit_s: int = Field(default=300, gt=0)
    escalate_time_limit_s: int = Field(default=180, gt=0)
    writeback_time_limit_s: int = Field(default=120, gt=0)
    #: Redis hands an unacknowledged message to another worker after this long. It is how the
    #: messages of a worker that died without a goodbye (kill -9, power loss) come back, so it
    #: bounds their delay; it must stay far above every time limit and retry countdown, or a
    #: slow task (or a retry waiting for its time) runs twice at once.
    visibility_timeout_s: int = Field(default=3600, gt=0)
    #: Tries of a retryable failure (frontier, index) before the dead-letter list; backoff doubles
    #: from the base, with jitter, up to the max.
    max_retries: int = Field(default=5, ge=0, le=50)
    #: Tries of a failing write-back target (callback, ticket system) before the dead-letter
    #: list: more than `max_retries`, since a decided label is cheap to deliver late and costly
    #: to lose (12 tries at the default backoff span up to about 12 minutes).
    sink_max_retries: int = Field(default=12, ge=0, le=50)
    #: First retry's backoff, seconds; each further retry doubles it, with jitter.
    retry_backoff_s: float = Field(default=1.0, gt=0)
    #: Longest backoff between two tries, seconds; a longer Retry-After from a peer is capped to it.
    retry_backoff_max_s: float = Field(default=120.0, gt=0)
    #: How long a worker keeps trying to publish a ticket's next step while Redis is unreachable
    #: (a restart, a failover) before it gives the message back (redelivered after the
    #: visibility timeout). Celery's default gives up after about half a second.
    publish_retry_s: float = Field(default=60.0, ge=0)

    #: A worker that serves the writeback queue beside classify, in a threads or solo pool,
    #: writes each classify batch's results back itself, after the batch's pass, rather than
    #: sending them to its own writeback queue (a batch's failed tickets still go there, to
    #: their retries). False: every result goes through the queue.
    writeback_inline: bool = True

    #: HMAC-SHA256 key signing callbacks (``X-Triage-Signature: t=<unix>,v1=<hex>``).
    callback_secret: SecretStr | None = None
    #: Longest wait for a callback target's answer, seconds.
    callback_timeout_s: float = Field(default=10.0, gt=0)
    #: Write-back to ticket systems, chosen by `ticket.source`, to the ticket's verified
    #: `origin` only (docs/security.md); a system without a token is skipped (recorded as
    #: ``not-configured``). GitHub: issue labels over the REST API.
    github_api_url: str = "https://api.github.com"
    github_token: SecretStr | None = None
    #: Zendesk: ticket tags, and a custom field when its id is given. Auth: email + API token.
    zendesk_url: str | None = None
    zendesk_email: str | None = None
    zendesk_token: SecretStr | None = None
    #: Zendesk custom field per task (JSON object, task -> field id): the task's label goes there.
    zendesk_field_ids: dict[str, int] = Field(default_factory=dict)
    #: The "category" task's field, when `TRIAGE_ZENDESK_FIELD_IDS` names none (older setting).
    zendesk_field_id: int | None = Field(default=None, gt=0)
    #: Jira: the issue's labels field. Auth: email + API token (Cloud) or a bearer PAT (no email).
    jira_url: str | None = None
    jira_email: str | None = None
    jira_token: SecretStr | None = None
    #: Labels we write are ``<prefix><task>:<label>``, so ours are told apart from everyone
    #: else's and each task keeps to its own (`producer.namespace`).
    source_label_prefix: str = Field(default="triage:", min_length=1)
    #: A label or tag a person adds to say "hands off": we never write to such a ticket.
    source_human_marker: str = Field(default="triage:human", min_length=1)
    #: Longest wait for a ticket system's answer (GitHub, Zendesk, Jira), seconds.
    source_timeout_s: float = Field(default=10.0, gt=0)
    #: Results in the event stream before old ones are trimmed.
    events_maxlen: int = Field(default=100_000, ge=1000)
    #: Share of auto-labelled tickets (a model's label, applied) that also go to the review desk
    #: as an audit, so precision is measured in production; the label ships all the same. The
    #: choice is a hash of (task, source, id, revision): a redelivery chooses the same. 0: none.
    #: docs/review.md, "Audit rate", says how many audits a day give what interval.
    audit_rate: float = Field(default=0.02, ge=0.0, le=1.0)

    # Observability (see docs/observability.md).
    #: Port of this worker's Prometheus exporter (/metrics); 0: none. One port per worker node:
    #: its solo or threads pool runs every task in the one process that serves the port (prefork
    #: children report through a multiprocess directory the worker sets up, `worker.observe.setup`).
    metrics_port: int = Field(default=0, ge=0, le=65535)
    #: Address the exporter listens on; all interfaces, so Prometheus can scrape a container.
    #: The metrics hold counts and latencies only, never ticket text.
    metrics_host: str = "0.0.0.0"
    #: How often a worker renews its heartbeat key in Redis (`triage status` lists the live
    #: ones); the key expires after three missed beats, so a killed worker drops off by itself.
    heartbeat_s: float = Field(default=10.0, gt=0, le=3600)
    #: Worker log lines: "text" (Celery's prefix, ticket events as key=value pairs) or "json"
    #: (one JSON object a line, ticket event fields at the top level, for a log shipper).
    log_format: Literal["text", "json"] = "text"

    @field_validator("zendesk_field_ids")
    @classmethod
    def _field_ids_positive(cls, value: dict[str, int]) -> dict[str, int]:
        bad = sorted(task for task, field_id in value.items() if field_id <= 0)
        if bad:
            raise ValueError(f"field ids must be positive (tasks {bad})")
        return value

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
        # A retry waits in its worker as an unacknowledged message: past the visibility timeout
        # Redis would hand it to a second worker while the first still holds it.
        if self.visibility_timeout_s <= 2 * self.retry_backoff_max_s:
            raise ValueError(
                f"TRIAGE_VISIBILITY_TIMEOUT_S={self.visibility_timeout_s} must be more than twice "
                f"TRIAGE_RETRY_BACKOFF_MAX_S={self.retry_backoff_max_s}, or retries run twice"
            )
        # A write-back renews its lease before each sink: one call must fit in the lease.
        slowest = max(self.callback_timeout_s, self.source_timeout_s)
        if slowest >= self.writeback_time_limit_s:
            raise ValueError(
                f"TRIAGE_WRITEBACK_TIME_LIMIT_S={self.writeback_time_limit_s} must be more than "
                f"the callback and source timeouts ({slowest} s)"
            )
        return self

    def zendesk_field_for(self, task: str) -> int | None:
        """The Zendesk custom field that holds `task`'s label, if any."""
        if task in self.zendesk_field_ids:
            return self.zendesk_field_ids[task]
        return self.zendesk_field_id if task == "category" else None

    @property
    def writeback_lease_s(self) -> int:
        """How long one write-back of a ticket revision excludes another (`worker.writeback`)."""
        return self.writeback_time_limit_s


def soft_limit_s(hard_s: int) -> float:
    """The soft time limit before a hard one: 10 s earlier, or a fifth earlier when short."""
    return max(hard_s - 10, hard_s * 0.8)


@lru_cache
def get_settings() -> WorkerSettings:
    return WorkerSettings()
