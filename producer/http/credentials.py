"""What a caller may do: a `Credential` (an API token's name and scopes) and the rule of scopes.

A scope is a set of sources. ``"*"`` covers every source that is not a ticket system; a ticket
system (`producer.schemas.TICKET_SYSTEMS`) is covered only when named (docs/security.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from producer.http.errors import Forbidden
from producer.http.settings import DEFAULT_SCOPES, HttpSettings
from producer.schemas import TICKET_SYSTEMS

Right = Literal["enqueue", "read", "feedback", "review"]


def covers(scope: Iterable[str], source: str) -> bool:
    """Whether `scope` grants `source`: by name, or by "*" when it is not a ticket system."""
    names = set(scope)
    return source in names or ("*" in names and source not in TICKET_SYSTEMS)


@dataclass(frozen=True, slots=True)
class Credential:
    """A verified caller. `name` is what logs, metrics and the ledger show: the token's own
    name, ``token-<n>`` (its place in `TRIAGE_API_TOKENS`), or ``insecure`` while "api" is in
    `TRIAGE_INSECURE_SOURCES`; the token itself is never shown."""

    name: str
    enqueue: frozenset[str] = frozenset()
    read: frozenset[str] = frozenset()
    feedback: frozenset[str] = frozenset()
    review: frozenset[str] = frozenset()

    def may(self, right: Right, source: str) -> bool:
        return covers(self._scope(right), source)

    def require(self, right: Right, source: str) -> None:
        """`Forbidden` (403) unless this credential has `right` for `source`."""
        if not self.may(right, source):
            raise Forbidden(f"credential {self.name!r} may not {right} source {source!r}")

    def names(self, right: Right, source: str) -> bool:
        """Whether `source` is named in the scope itself (how a ticket system is granted)."""
        return source in self._scope(right)

    def _scope(self, right: Right) -> frozenset[str]:
        scope: frozenset[str] = getattr(self, right)
        return scope


#: A caller of an API served without tokens ("api" in `TRIAGE_INSECURE_SOURCES`).
INSECURE = Credential("insecure", **{k: frozenset(v) for k, v in DEFAULT_SCOPES.items()})


def credentials(settings: HttpSettings) -> list[tuple[bytes, Credential]]:
    """Each configured token (as bytes, to compare) and the `Credential` it proves."""
    return [
        (
            token.token.get_secret_value().encode(),
            Credential(
                name,
                enqueue=frozenset(token.enqueue),
                read=frozenset(token.read),
                feedback=frozenset(token.feedback),
                review=frozenset(token.review),
            ),
        )
        for name, token in settings.named_tokens()
    ]
