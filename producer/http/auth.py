"""Who is calling our API: the bearer token, checked by one dependency that yields a `Credential`.

Every token-protected route takes a `Caller` parameter, so rights (scopes per source, read,
feedback, review) and per-credential limits can be added here and reach every route at once.
Webhooks do not use it: their signature over the raw body is their credential (`verify`).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from producer.errors import SignatureInvalid
from producer.http.state import ServicesDep

# auto_error off: a missing or malformed header gets our own 401 and message, like a wrong token.
_bearer = HTTPBearer(auto_error=False)


@dataclass(frozen=True, slots=True)
class Credential:
    """A verified caller. `id` names the token without revealing it: "token-<n>", its place in
    `TRIAGE_API_TOKENS` (1-based), or "insecure" while "api" is in `TRIAGE_INSECURE_SOURCES`."""

    id: str


def authenticate(
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    services: ServicesDep,
) -> Credential:
    """The caller's `Credential`, or `SignatureInvalid` (401) for a missing or unknown token."""
    hs = services.http
    if "api" in hs.insecure_sources:
        return Credential("insecure")
    given = (creds.credentials if creds else "").encode()
    # Every token is compared, in constant time, before looking at which one matched.
    matches = [hmac.compare_digest(t.get_secret_value().encode(), given) for t in hs.api_tokens]
    if True not in matches:
        raise SignatureInvalid("missing or unknown bearer token")
    return Credential(f"token-{matches.index(True) + 1}")


Caller = Annotated[Credential, Depends(authenticate)]
