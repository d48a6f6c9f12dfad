"""What every frontier client shares: the answer type, the protocol, HTTP with retries, checks.

A wire format (`openai.py`, `anthropic.py`) only says how to shape the request body and where
the tool call sits in the response; sending, retrying, the concurrency cap, validation of the
answer against the label set, and cost all live here, once.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, ClassVar, Protocol

import httpx

from models.frontier.prompt import FrontierPrompt, build_prompt
from models.frontier.retryable import inline_wait_s, is_retryable_status
from models.frontier.tool import TOOL_NAME, parse_arguments
from models.settings import ModelSettings
from producer.backoff import parse_retry_after
from producer.errors import FrontierRefused, FrontierUnavailable
from producer.labelset import LabelSet
from producer.schemas import Neighbour, Ticket

logger = logging.getLogger(__name__)

#: A forced tool call with a label and a confidence needs a few dozen tokens; the cap stops a
#: misbehaving model from running up the bill.
MAX_OUTPUT_TOKENS = 256


@dataclass(frozen=True)
class FrontierAnswer:
    """A validated label from a frontier model, with what it cost."""

    label: str
    confidence: float | None
    input_tokens: int
    output_tokens: int
    cost_usd: float
    latency_ms: float
    model: str


class FrontierClient(Protocol):
    """Labels one ticket with a frontier model; safe to share between threads."""

    def classify(
        self, ticket: Ticket, labels: LabelSet, examples: Sequence[Neighbour]
    ) -> FrontierAnswer: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class ToolCall:
    """What a wire format finds in a response: the raw tool call and the usage."""

    name: str
    arguments: object
    input_tokens: int
    output_tokens: int
    model: str


class HttpFrontierClient(ABC):
    """One `httpx.Client` per object, reused by all threads; subclasses speak a wire format."""

    #: Short name for messages and logs.
    provider: ClassVar[str]
    default_base_url: ClassVar[str]
    #: Path of the endpoint, relative to the base URL.
    path: ClassVar[str]

    def __init__(
        self, settings: ModelSettings, *, transport: httpx.BaseTransport | None = None
    ) -> None:
        self._settings = settings
        self._slots = threading.BoundedSemaphore(settings.frontier_concurrency)
        key = settings.frontier_api_key.get_secret_value() if settings.frontier_api_key else None
        self._http = httpx.Client(
            base_url=settings.frontier_url or self.default_base_url,
            headers=self.auth_headers(key),
            timeout=settings.frontier_timeout_s,
            limits=httpx.Limits(max_connections=settings.frontier_concurrency),
            transport=transport,
        )

    # -- wire format ---------------------------------------------------------------------------

    @abstractmethod
    def auth_headers(self, api_key: str | None) -> dict[str, str]:
        """Headers sent with every request (the key is omitted when None: a local server)."""

    @abstractmethod
    def request_body(self, prompt: FrontierPrompt) -> dict[str, Any]:
        """The JSON body that asks the model for a forced `set_label` call."""

    @abstractmethod
    def tool_call(self, body: Any) -> ToolCall:
        """The tool call and usage in a response body; `FrontierRefused` if there is none."""

    # -- the call ------------------------------------------------------------------------------

    def classify(
        self, ticket: Ticket, labels: LabelSet, examples: Sequence[Neighbour]
    ) -> FrontierAnswer:
        """Ask the model for a label; raises `FrontierUnavailable` or `FrontierRefused`."""
        started = time.perf_counter()
        prompt = build_prompt(ticket, labels, examples[: self._settings.frontier_examples])
        # The slot is held across retries, so a rate-limited provider never sees more parallel
        # calls from this process than the cap.
        with self._slots:
            body = self._post(self.request_body(prompt))
        call = self.tool_call(body)
        if call.name != TOOL_NAME:
            raise FrontierRefused(f"{self.provider} called tool {call.name!r}, not {TOOL_NAME!r}")
        label, confidence = parse_arguments(call.arguments, labels)
        s = self._settings
        cost = (
            call.input_tokens * s.frontier_input_usd_per_mtok
            + call.output_tokens * s.frontier_output_usd_per_mtok
        ) / 1e6
        answer = FrontierAnswer(
            label=label,
            confidence=confidence,
            input_tokens=call.input_tokens,
            output_tokens=call.output_tokens,
            cost_usd=cost,
            latency_ms=(time.perf_counter() - started) * 1000.0,
            model=call.model or s.frontier_model,
        )
        logger.info(
            "frontier ticket=%s label=%s latency_ms=%.0f tokens=%d+%d cost_usd=%.6f",
            ticket.id, label, answer.latency_ms, answer.input_tokens, answer.output_tokens, cost,
        )  # fmt: skip
        return answer

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> HttpFrontierClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:  # fmt: skip
        self.close()

    # -- helpers -------------------------------------------------------------------------------

    def _post(self, body: dict[str, Any]) -> Any:
        """POST with retries; the parsed JSON of a 2xx response."""
        tries = self._settings.frontier_max_retries + 1
        for attempt in range(tries):
            cause: Exception | None = None
            try:
                response = self._http.post(self.path, json=body)
            except httpx.TimeoutException as exc:
                failure = FrontierUnavailable(
                    f"{self.provider} did not answer within {self._settings.frontier_timeout_s}s"
                )
                cause = exc
            except (httpx.NetworkError, httpx.RemoteProtocolError, httpx.ProxyError) as exc:
                failure = FrontierUnavailable(f"{self.provider} is unreachable: {exc!r}")
                cause = exc
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                # Anything else (bad URL or scheme, ...) is configuration: retrying cannot help.
                raise FrontierRefused(f"{self.provider} request failed: {exc!r}") from exc
            else:
                if response.is_success:
                    return self._json(response)
                if not is_retryable_status(response.status_code):
                    raise FrontierRefused(
                        f"{self.provider} refused the call: HTTP {response.status_code}: "
                        f"{_excerpt(response.text)}"
                    )
                failure = FrontierUnavailable(
                    f"{self.provider} answered HTTP {response.status_code}: "
                    f"{_excerpt(response.text)}",
                    retry_after_s=parse_retry_after(response.headers.get("retry-after")),
                )
            wait = inline_wait_s(attempt, self._settings.frontier_backoff_s, failure.retry_after_s)
            if attempt == tries - 1 or wait is None:
                raise failure from cause
            logger.warning(
                "frontier %s try %d/%d failed (%s); retrying in %.2fs",
                self.provider, attempt + 1, tries, failure, wait,
            )  # fmt: skip
            time.sleep(wait)
        raise AssertionError("unreachable: the last try returns or raises")

    def _json(self, response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError as exc:
            raise FrontierRefused(
                f"{self.provider} answered with non-JSON: {_excerpt(response.text)}"
            ) from exc


def dig(body: Any, *path: str | int) -> Any:
    """`body[path[0]][path[1]]...`, or `FrontierRefused` naming where the response broke off."""
    node = body
    for i, key in enumerate(path):
        try:
            node = node[key]  # a str key on a list (or an int on a dict) fails like a missing one
        except (KeyError, IndexError, TypeError):
            where = "".join(f"[{k!r}]" for k in path[: i + 1])
            raise FrontierRefused(f"the response has no {where}") from None
    return node


def tokens(usage: Any, key: str) -> int:
    """A token count from a usage object; 0 when missing, as some local servers omit usage."""
    value = usage.get(key) if isinstance(usage, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _excerpt(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."
