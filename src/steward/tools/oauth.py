"""OAuth 2.1 client credentials for remote MCP servers: Steward fetches an access token from the
server's token endpoint and sends it as `Authorization: Bearer` (RFC 6749 §4.4, OAuth 2.1 §4.2).

```python
app.add_mcp_server(
    "crm",
    url="https://crm.example/mcp",
    oauth=ClientCredentials(
        token_url="https://auth.example/oauth/token",
        client_id="steward",
        client_secret_secret="CRM_CLIENT_SECRET",  # a name in the tenant's secret store
        scope="crm.read crm.write",
    ),
)
```

The client authenticates with HTTP Basic (RFC 6749 §2.3.1: id and secret form-encoded, then
base64). A token is kept per (server, tenant) until `refresh_margin_s` before its `expires_in`,
and fetched again once when the MCP server answers 401 (revoked or expired early). The client
secret is read from the secret store at each fetch, so a rotated secret is used at once. Neither
the secret nor a token is logged, put in a span or in an error message.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx2

from steward.errors import ToolError, UserError

MAX_TOKEN_RESPONSE_BYTES = 64_000


@dataclass(frozen=True)
class ClientCredentials:
    """How Steward gets an access token for a remote MCP server (client credentials grant)."""

    token_url: str
    client_id: str
    client_secret_secret: str
    """The name of the client secret in the calling tenant's secret store."""
    scope: str | None = None
    refresh_margin_s: float = 30.0
    """A token is fetched again this long before it expires (at most half its lifetime)."""
    timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if not self.token_url.startswith(("https://", "http://")):
            raise UserError(f"OAuth token_url {self.token_url!r} must be an http(s) URL")
        if not self.client_id or not self.client_secret_secret:
            raise UserError("OAuth client credentials need a client_id and client_secret_secret")
        if self.refresh_margin_s < 0 or self.timeout_s <= 0:
            raise UserError("OAuth refresh_margin_s must be >= 0 and timeout_s positive")


class OAuthError(ToolError):
    """The token endpoint could not be reached or refused Steward's client credentials."""


class TokenSource:
    """The access tokens of one (server, tenant): fetched once, reused until near expiry."""

    def __init__(
        self,
        server: str,
        credentials: ClientCredentials,
        read_secret: Callable[[], Awaitable[str]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.server = server
        self.credentials = credentials
        self._read_secret = read_secret
        self._clock = clock
        self._token: str | None = None
        self._stale_at = 0.0
        self._lock = asyncio.Lock()
        self.failure: OAuthError | None = None
        """The last fetch's error, until a fetch succeeds: why the server refused a call."""

    async def token(self) -> str:
        """A current access token: the cached one, or a new one from the token endpoint."""
        async with self._lock:
            if self._token is None or self._clock() >= self._stale_at:
                await self._fetch()
            assert self._token is not None
            return self._token

    async def refresh(self, rejected: str) -> str:
        """A new token after the server rejected `rejected`; concurrent callers that saw the
        same rejection share one fetch."""
        async with self._lock:
            if self._token is None or self._token == rejected:
                await self._fetch()
            assert self._token is not None
            return self._token

    async def _fetch(self) -> None:
        self._token = None
        try:
            token, expires_in = await self._request()
        except OAuthError as exc:
            self.failure = exc
            raise
        self.failure = None
        self._token = token
        if expires_in is None:
            self._stale_at = float("inf")  # kept until the server rejects it
        else:
            margin = min(self.credentials.refresh_margin_s, expires_in / 2)
            self._stale_at = self._clock() + expires_in - margin

    async def _request(self) -> tuple[str, float | None]:
        creds = self.credentials
        where = f"MCP server {self.server!r}: token endpoint {creds.token_url}"
        secret = await self._read_secret()
        basic = f"{quote(creds.client_id, safe='')}:{quote(secret, safe='')}"
        form = {"grant_type": "client_credentials"}
        if creds.scope:
            form["scope"] = creds.scope
        headers = {
            "Authorization": "Basic " + base64.b64encode(basic.encode()).decode(),
            "Accept": "application/json",
        }
        try:
            async with (
                httpx2.AsyncClient(timeout=creds.timeout_s) as client,
                client.stream("POST", creds.token_url, data=form, headers=headers) as response,
            ):
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_TOKEN_RESPONSE_BYTES:
                        raise OAuthError(f"{where}: answer over {MAX_TOKEN_RESPONSE_BYTES} bytes")
                status = response.status_code
        except httpx2.HTTPError as exc:
            raise OAuthError(f"{where}: not reachable ({type(exc).__name__})") from exc
        answer = _json_object(bytes(body))
        if status != 200:
            error = str(answer.get("error", f"HTTP {status}"))[:100]
            detail = str(answer.get("error_description", ""))[:300]
            hint = " (check the client id and secret)" if error == "invalid_client" else ""
            raise OAuthError(
                f"{where} refused the client credentials: {error}"
                + (f": {detail}" if detail else "")
                + hint
            )
        token = answer.get("access_token")
        kind = answer.get("token_type")
        if not isinstance(token, str) or not token or not isinstance(kind, str):
            raise OAuthError(f"{where}: the answer has no access_token or token_type")
        if kind.lower() != "bearer":
            raise OAuthError(f"{where}: token_type {kind[:40]!r} is not Bearer")
        expires_in = answer.get("expires_in")
        if expires_in is None:
            return token, None
        if isinstance(expires_in, str) and expires_in.isdigit():
            expires_in = int(expires_in)  # some servers send it as a string
        if isinstance(expires_in, bool) or not isinstance(expires_in, int | float):
            raise OAuthError(f"{where}: expires_in is not a number")
        return token, max(float(expires_in), 0.0)


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


class BearerFromSource(httpx2.Auth):
    """Sends each request with the source's token; a 401 gets one new token and one retry."""

    def __init__(self, source: TokenSource) -> None:
        self.source = source

    async def async_auth_flow(
        self, request: httpx2.Request
    ) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        try:
            token = await self.source.token()
        except OAuthError:
            yield request  # unauthenticated: the server's 401 fails the call; `failure` says why
            return
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code != 401:
            return
        try:
            fresh = await self.source.refresh(token)
        except OAuthError:
            return  # the 401 stands
        await response.aread()
        request.headers["Authorization"] = f"Bearer {fresh}"
        yield request
