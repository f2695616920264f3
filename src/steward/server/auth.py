"""Authentication first: an ASGI gate that checks the API key and rate limits before anything
else reads the request, then hands the principal to routes through `request.state`.

Keys come in `x-api-key` or `Authorization: Bearer`; unknown, revoked and malformed keys get the
same 401. A Bearer JWT (when `jwt_algorithm` is set) identifies an end user. Only the health
probes, the API description and signed webhook ingress (`/hooks/…`, which checks its own HMAC
signature) are public. Every failure is counted into the audit log (one record per source,
reason and window).
"""

from __future__ import annotations

import asyncio
import hmac
from typing import Annotated

from fastapi import Depends, Request
from starlette.types import ASGIApp, Receive, Scope, Send

from steward.audit.failures import Failure
from steward.errors import ApiError, Forbidden, Unauthenticated
from steward.security.jwt_auth import JwtVerifier, TokenRejected, looks_like_jwt
from steward.security.keys import KeyStore, Principal
from steward.security.services import Security
from steward.server import rate_limits
from steward.server.headers import pick_headers
from steward.server.problems import problem
from steward.server.provider_errors import proxy_error_for_path
from steward.store.tenants import TenantDirectory

WRITE_ROLES = ("admin", "developer", "runner")
PUBLIC_PATHS = frozenset(
    {"/healthz", "/readyz", "/ok", "/info", "/openapi.json", "/docs", "/redoc"}
)
HOOKS_PREFIX = "/hooks/"
# The dashboard authenticates its own way (a signed session cookie): see steward.server.ui.
UI_PREFIX = "/ui"
METRICS_PATH = "/metrics"
# Failures that belong to no tenant (no key prefix we know) go to this chain of their own.
UNATTRIBUTED_TENANT = "*"
USER_HEADER = "x-steward-user"
# The only headers the gate reads: picked out of the raw list instead of decoding them all.
_READ = frozenset({b"x-api-key", b"authorization", USER_HEADER.encode()})


def presented_key(headers: dict[str, str]) -> str | None:
    key = headers.get("x-api-key")
    if key:
        return key.strip()
    scheme, _, credentials = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials:
        return credentials.strip()
    return None


class AuthGate:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path in PUBLIC_PATHS or path.startswith(HOOKS_PREFIX):
            await self.app(scope, receive, send)
            return
        if path == UI_PREFIX or path.startswith(UI_PREFIX + "/"):
            await self.app(scope, receive, send)
            return
        headers = pick_headers(scope, _READ)
        if path == METRICS_PATH and metrics_token_matches(scope, headers):
            scope.setdefault("state", {})["metrics_reader"] = True
            await self.app(scope, receive, send)
            return
        try:
            principal = await self._authenticate(scope, headers)
        except ApiError as exc:
            if exc.status == 401:
                await _record_failure(scope, headers, exc.detail or exc.title)
            # The proxy endpoints answer in the provider's shape so SDKs raise their own errors.
            response = proxy_error_for_path(
                scope["path"], exc.status, exc.detail or exc.title, exc.headers
            ) or problem(
                exc.status,
                exc.kind,
                exc.title,
                exc.detail,
                instance=scope["path"],
                headers=exc.headers,
            )
            await response(scope, receive, send)
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)

    async def _authenticate(self, scope: Scope, headers: dict[str, str]) -> Principal:
        key = presented_key(headers)
        if key is None:
            raise Unauthenticated("send an API key in the x-api-key header or as a Bearer token")
        state = scope["app"].state
        jwt: JwtVerifier | None = state.security.jwt
        if jwt is not None and looks_like_jwt(key):
            try:
                principal = await asyncio.to_thread(jwt.verify, key)
            except TokenRejected as exc:
                raise Unauthenticated(str(exc)) from exc
            # A token may name a tenant no key or secret has made yet; its rows need one.
            tenants: TenantDirectory = state.security.tenants
            if not tenants.known(principal.tenant_id):
                await asyncio.to_thread(tenants.ensure, principal.tenant_id)
        else:
            keys: KeyStore = state.keys
            # A key seen within its cache TTL costs no database read and no thread hop.
            authenticated = keys.cached(key) or await asyncio.to_thread(keys.authenticate, key)
            if authenticated is None:
                raise Unauthenticated("the API key is unknown or revoked")
            principal = authenticated
        await rate_limits.enforce(state, principal, headers.get(USER_HEADER))
        return principal


def metrics_token_matches(scope: Scope, headers: dict[str, str]) -> bool:
    """Whether the request presents the configured `metrics_token` (constant-time compare)."""
    token = scope["app"].state.runtime.settings.metrics_token
    presented = presented_key(headers)
    if token is None or presented is None:
        return False
    return hmac.compare_digest(presented.encode(), token.get_secret_value().encode())


async def _record_failure(scope: Scope, headers: dict[str, str], reason: str) -> None:
    key = presented_key(headers) or ""
    tenant = None
    if key.startswith("stw_"):
        tenant = await asyncio.to_thread(scope["app"].state.keys.tenant_of_presented, key)
    client = scope.get("client")
    # Counted, not appended one by one: a flood of bad requests becomes one record per window.
    security: Security = scope["app"].state.security
    security.auth_failures.add(
        Failure(
            tenant_id=tenant or UNATTRIBUTED_TENANT,
            source=client[0] if client else None,
            reason=reason,
            method=scope.get("method"),
            path=scope.get("path"),
            key_prefix=key[:17] if key.startswith("stw_") else None,
        )
    )


async def authenticated(request: Request) -> Principal:
    """The principal `AuthGate` established; every non-public route depends on it."""
    principal = getattr(request.state, "principal", None)
    if not isinstance(principal, Principal):  # a route reachable without the gate is a bug
        raise Unauthenticated("no authenticated principal")
    return principal


async def require_admin(principal: Annotated[Principal, Depends(authenticated)]) -> Principal:
    if principal.role != "admin":
        raise Forbidden(f"role {principal.role!r} may not use admin endpoints; an admin key may")
    return principal


async def require_writer(principal: Annotated[Principal, Depends(authenticated)]) -> Principal:
    if principal.role not in WRITE_ROLES:
        raise Forbidden(f"role {principal.role!r} may read but not create or cancel runs")
    return principal


Reader = Annotated[Principal, Depends(authenticated)]
Writer = Annotated[Principal, Depends(require_writer)]
Admin = Annotated[Principal, Depends(require_admin)]
