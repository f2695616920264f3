"""Request authentication: an API key in `x-api-key` or `Authorization: Bearer`, then a rate check.

Unknown, revoked and malformed keys get the same 401; the principal scopes every later query.
"""

from __future__ import annotations

import asyncio
import math
from typing import Annotated

from fastapi import Depends, Request

from steward.errors import ApiError, Forbidden, Unauthenticated
from steward.policy.rate_limit import MemoryRateLimiter
from steward.security.keys import KeyStore, Principal

WRITE_ROLES = ("admin", "developer", "runner")


def presented_key(request: Request) -> str | None:
    key = request.headers.get("x-api-key")
    if key:
        return key.strip()
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials:
        return credentials.strip()
    return None


async def authenticate(request: Request) -> Principal:
    key = presented_key(request)
    if key is None:
        raise Unauthenticated("send an API key in the x-api-key header or as a Bearer token")
    keys: KeyStore = request.app.state.keys
    principal = await asyncio.to_thread(keys.authenticate, key)
    if principal is None:
        raise Unauthenticated("the API key is unknown or revoked")
    limiter: MemoryRateLimiter = request.app.state.rate_limiter
    for bucket in _buckets(principal, request.headers.get("x-steward-user")):
        decision = limiter.take(bucket)
        if not decision.allowed:
            retry = max(1, math.ceil(decision.retry_after_s))
            raise ApiError(
                429,
                "rate-limited",
                "Too many requests",
                f"rate limit exceeded for {bucket.split(':', 1)[0]}; retry in {retry}s",
                headers={"Retry-After": str(retry)},
            )
    return principal


def _buckets(principal: Principal, user: str | None) -> list[str]:
    buckets = [f"key:{principal.key_id}"]
    if user:
        buckets.append(f"user:{principal.tenant_id}:{user}")
    return buckets


async def require_writer(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
    if principal.role not in WRITE_ROLES:
        raise Forbidden(f"role {principal.role!r} may read but not create or cancel runs")
    return principal


Reader = Annotated[Principal, Depends(authenticate)]
Writer = Annotated[Principal, Depends(require_writer)]
