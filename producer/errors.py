"""One error hierarchy for the whole service.

    TriageError
    ├── RetryableError          try again later: the same call may succeed
    │   ├── BrokerUnavailable   Redis did not take the message
    │   │   └── QueueFull       the queue is at its depth cap: the workers are behind
    │   ├── IndexUnavailable    Qdrant did not answer
    │   ├── FrontierUnavailable the frontier API timed out, rate-limited or failed (429/5xx)
    │   └── SinkUnavailable     a write-back target timed out or failed (429/5xx)
    └── PermanentError          the same call will fail again: do not retry
        ├── InvalidTicket       the payload is not a valid `Ticket` (field-level detail)
        ├── SignatureInvalid    a webhook's signature, timestamp or bearer token is wrong or missing
        ├── LabelSetError       a label-set file is missing or malformed
        ├── ModelError          an adapter or base model cannot be loaded
        ├── FrontierRefused     the frontier answer is unusable (no tool call, label not in enum)
        ├── BudgetExceeded      the frontier spend cap for today is reached
        └── SinkRejected        a write-back target refused the call (4xx)

Errors from redis, httpx and qdrant are mapped at the call site with ``raise ... from exc``.
"""

from __future__ import annotations


class TriageError(Exception):
    """Base of every error the service raises on purpose."""


class RetryableError(TriageError):
    """The same call may succeed later; `retry_after_s` is a hint when the peer gave one."""

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class PermanentError(TriageError):
    """The same call will fail again."""


class BrokerUnavailable(RetryableError):
    pass


class QueueFull(BrokerUnavailable):
    """Redis answers, but the queue holds `TRIAGE_MAX_QUEUE_DEPTH` messages: send later."""


class IndexUnavailable(RetryableError):
    pass


class FrontierUnavailable(RetryableError):
    pass


class SinkUnavailable(RetryableError):
    pass


class InvalidTicket(PermanentError):
    """Carries pydantic's field-level errors in `errors` (a list of dicts)."""

    def __init__(self, message: str, errors: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or []


class SignatureInvalid(PermanentError):
    """The message says which check failed, never which secret or what the right value was."""


class LabelSetError(PermanentError):
    pass


class ModelError(PermanentError):
    pass


class FrontierRefused(PermanentError):
    pass


class BudgetExceeded(PermanentError):
    pass


class SinkRejected(PermanentError):
    pass
