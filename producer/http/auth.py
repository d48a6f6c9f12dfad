"""Who is calling our API: the bearer token, checked by one dependency that yields a `Credential`.

Every token-protected route takes a `Caller` parameter, so the caller's scopes and its rate
limit reach every route at once; routes check the scope for the source concerned
(`Credential.require`). Webhooks do not use it: their signature over the raw body is their
credential (`verify`).
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from producer.errors import SignatureInvalid
from producer.http.credentials import INSECURE, Credential
from producer.http.state import ServicesDep

# auto_error off: a missing or malformed header gets our own 401 and message, like a wrong token.
_bearer = HTTPBearer(auto_error=False)
Bearer = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


async def authenticate(creds: Bearer, services: ServicesDep) -> Credential:
    """The caller's `Credential`; `SignatureInvalid` (401) for a missing or unknown token, 429
    once this credential is over `TRIAGE_API_RATE_PER_S` (counted only for known callers)."""
    hs = services.http
    if "api" in hs.insecure_sources:
        caller = INSECURE
    else:
        given = (creds.credentials if creds else "").encode()
        # Every token is compared, in constant time, before looking at which one matched.
        matches = [hmac.compare_digest(token, given) for token, _ in services.tokens]
        if not given or True not in matches:
            raise SignatureInvalid("missing or unknown bearer token")
        caller = services.tokens[matches.index(True)][1]
    if not await services.limiter.allow(f"api:{caller.name}", hs.api_rate_per_s):
        raise HTTPException(429, "rate limited", headers={"Retry-After": "1"})
    return caller


async def scraper(creds: Bearer, services: ServicesDep) -> None:
    """`/metrics`: open when `TRIAGE_METRICS_PUBLIC`, else any valid API token."""
    if not services.http.metrics_public:
        await authenticate(creds, services)


Caller = Annotated[Credential, Depends(authenticate)]
