"""Remote MCP servers behind OAuth 2.1 client credentials: a real token endpoint (Starlette on
uvicorn) issues tokens that a real `MCPServer` over streamable HTTP checks on every request."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import secrets
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote

import pytest
import uvicorn
from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from steward import Context, Steward, ToolError
from steward.config import Settings
from steward.errors import UserError
from steward.observe.trace_store import list_run_spans
from steward.runs.engine import RunRequest
from steward.runtime import Runtime
from steward.store.schema import Run
from steward.tools.mcp_spec import MCPServerSpec
from steward.tools.oauth import ClientCredentials, OAuthError, TokenSource

CLIENT_ID = "steward client"  # a space: Basic credentials are form-encoded first (§2.3.1)
CLIENT_SECRET = "s3cret:with/odd+chars"
SCOPE = "crm.read"


class Issuer:
    """The authorization server's view: who asked for tokens, which tokens are still valid."""

    def __init__(self, expires_in: int = 3600) -> None:
        self.expires_in = expires_in
        self.requests = 0
        self.rejected = 0
        self.valid: set[str] = set()
        self.calls: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    async def token(self, request: Request) -> JSONResponse:
        with self._lock:
            self.requests += 1
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        user, _, password = base64.b64decode(encoded or "").decode().partition(":")
        if scheme != "Basic" or (unquote(user), unquote(password)) != (CLIENT_ID, CLIENT_SECRET):
            return JSONResponse(
                {"error": "invalid_client", "error_description": "client authentication failed"},
                status_code=401,
                headers={"WWW-Authenticate": "Basic"},
            )
        if form.get("grant_type") != "client_credentials" or form.get("scope") != SCOPE:
            return JSONResponse({"error": "invalid_request"}, status_code=400)
        token = secrets.token_urlsafe(24)
        with self._lock:
            self.valid.add(token)
        return JSONResponse(
            {"access_token": token, "token_type": "bearer", "expires_in": str(self.expires_in)},
            headers={"Cache-Control": "no-store"},
        )

    def revoke_all(self) -> None:
        with self._lock:
            self.valid.clear()


class CheckBearer:
    """The MCP server's resource check: a token the issuer gave out and has not revoked."""

    def __init__(self, app: ASGIApp, issuer: Issuer) -> None:
        self.app = app
        self.issuer = issuer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            presented = dict(scope["headers"]).get(b"authorization", b"").decode()
            scheme, _, token = presented.partition(" ")
            if scheme != "Bearer" or token not in self.issuer.valid:
                self.issuer.rejected += 1
                await send({"type": "http.response.start", "status": 401, "headers": []})
                await send({"type": "http.response.body", "body": b"invalid_token"})
                return
        await self.app(scope, receive, send)


def crm_server(issuer: Issuer) -> ASGIApp:
    server = MCPServer("crm")

    @server.tool(annotations=ToolAnnotations(read_only_hint=True))
    def lookup_customer(customer_id: int) -> dict[str, object]:
        """Look up a customer of the CRM by customer id: name and plan."""
        issuer.calls.append({"customer_id": customer_id})
        return {"customer_id": customer_id, "name": "Ada Lovelace", "plan": "gold"}

    return CheckBearer(server.streamable_http_app(), issuer)


@contextlib.contextmanager
def serving(app: ASGIApp) -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not start on port {port}")
            time.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


@dataclass
class Setup:
    runtime: Runtime
    issuer: Issuer
    token_url: str


class Question(BaseModel):
    message: str


class Answer(BaseModel):
    text: str
    tools: list[str]


def crm_app(mcp_url: str, token_url: str) -> Steward:
    app = Steward()
    app.add_mcp_server(
        "crm",
        url=mcp_url,
        oauth=ClientCredentials(
            token_url=token_url,
            client_id=CLIENT_ID,
            client_secret_secret="CRM_CLIENT_SECRET",
            scope=SCOPE,
        ),
    )

    @app.agent(name="crm_agent", tools=["crm"])
    async def crm_agent(ctx: Context, input: Question) -> Answer:
        loop = await ctx.tool_loop(input.message)
        return Answer(text=loop.text, tools=[r["tool"] for r in loop.tool_results])

    @app.agent(name="direct_agent", tools=["crm"])
    async def direct_agent(ctx: Context, input: Question) -> Answer:
        try:
            customer = await ctx.tool("crm__lookup_customer", {"customer_id": 42})
        except ToolError as exc:
            return Answer(text=f"tool error: {exc}", tools=[])
        return Answer(text=str(customer["name"]), tools=["crm__lookup_customer"])

    return app


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    issuer = Issuer()
    tokens = Starlette(routes=[Route("/token", issuer.token, methods=["POST"])])
    with serving(tokens) as auth_base, serving(crm_server(issuer)) as mcp_base:
        token_url = f"{auth_base}/token"
        app = crm_app(f"{mcp_base}/mcp", token_url)
        settings = Settings(home=tmp_path / "home", model="local", apps=[], sandbox_pool_size=0)
        runtime = Runtime.build(settings, app, execute=True)
        runtime.security.secrets.set("default", "CRM_CLIENT_SECRET", CLIENT_SECRET)
        await runtime.start()
        try:
            yield Setup(runtime, issuer, token_url)
        finally:
            await runtime.stop()


async def finish(runtime: Runtime, agent: str, message: str) -> Run:
    run = await runtime.engine.submit(
        RunRequest(tenant_id="default", agent=agent, input={"message": message})
    )
    return await asyncio.wait_for(runtime.engine.wait("default", run.id), 60)


async def test_runs_use_the_oauth_protected_tool_with_one_token(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    assert "crm__lookup_customer" in setup.runtime.engine.app.tools  # imported with a token
    runs = [await finish(setup.runtime, "crm_agent", "Look up CRM customer 42") for _ in range(3)]

    for run in runs:
        assert run.status == "success", run.error
        assert run.output is not None
        assert run.output["tools"] == ["crm__lookup_customer"]
        assert "Ada Lovelace" in run.output["text"]
    assert len(setup.issuer.calls) == 3
    assert setup.issuer.requests == 1  # the import and three calls shared one token
    assert setup.issuer.rejected == 0
    [token] = setup.issuer.valid
    setup.runtime.tracing.force_flush()
    spans = json.dumps([list_run_spans(setup.runtime.db, "default", r.id) for r in runs])
    assert "execute_tool crm__lookup_customer" in spans
    for leak in (token, CLIENT_SECRET):
        assert leak not in spans
        assert leak not in caplog.text


async def test_a_revoked_token_is_refreshed_exactly_once(setup: Setup) -> None:
    setup.issuer.revoke_all()

    first = await finish(setup.runtime, "direct_agent", "go")
    second = await finish(setup.runtime, "direct_agent", "go")

    for run in (first, second):
        assert run.status == "success", run.error
        assert run.output == {"text": "Ada Lovelace", "tools": ["crm__lookup_customer"]}
    assert setup.issuer.rejected == 1  # the one call with the revoked token
    assert setup.issuer.requests == 2  # the first token, and one refresh


async def test_a_wrong_client_secret_is_a_clear_tool_error_not_a_crash(setup: Setup) -> None:
    wrong = "not-the-secret"
    setup.runtime.security.secrets.set("default", "CRM_CLIENT_SECRET", wrong)
    setup.issuer.revoke_all()  # the next call needs a new token, with the wrong secret

    refused = await finish(setup.runtime, "direct_agent", "go")
    by_model = await finish(setup.runtime, "crm_agent", "Look up CRM customer 42")

    assert refused.status == "success", refused.error
    assert refused.output is not None
    text = refused.output["text"]
    assert text.startswith("tool error: ")
    assert "token endpoint" in text and "invalid_client" in text
    assert "check the client id and secret" in text
    assert wrong not in text and CLIENT_SECRET not in text
    assert by_model.status == "success", by_model.error  # the model got the error, run went on
    assert setup.issuer.calls == []

    setup.runtime.security.secrets.set("default", "CRM_CLIENT_SECRET", CLIENT_SECRET)
    healed = await finish(setup.runtime, "direct_agent", "go")
    assert healed.output == {"text": "Ada Lovelace", "tools": ["crm__lookup_customer"]}


async def test_a_token_is_fetched_again_shortly_before_it_expires(setup: Setup) -> None:
    now = [1000.0]
    credentials = ClientCredentials(
        token_url=setup.token_url,
        client_id=CLIENT_ID,
        client_secret_secret="unused here",
        scope=SCOPE,
        refresh_margin_s=30,
    )

    async def read_secret() -> str:
        return CLIENT_SECRET

    source = TokenSource("crm", credentials, read_secret, clock=lambda: now[0])
    before = setup.issuer.requests
    first = await source.token()
    now[0] += 3600 - 31  # still 31 s to go: reused
    assert await source.token() == first
    assert setup.issuer.requests == before + 1
    now[0] += 2  # within the 30 s margin: fetched again
    second = await source.token()
    assert second != first
    assert setup.issuer.requests == before + 2
    assert await source.refresh(first) == second  # a stale rejection does not fetch again
    assert setup.issuer.requests == before + 2


async def test_the_token_endpoints_refusal_names_its_error(setup: Setup) -> None:
    credentials = ClientCredentials(
        token_url=setup.token_url, client_id=CLIENT_ID, client_secret_secret="x", scope="other"
    )

    async def read_secret() -> str:
        return CLIENT_SECRET

    with pytest.raises(OAuthError, match="refused the client credentials: invalid_request"):
        await TokenSource("crm", credentials, read_secret).token()
    unreachable = ClientCredentials(
        token_url="http://127.0.0.1:9/token", client_id=CLIENT_ID, client_secret_secret="x"
    )
    with pytest.raises(OAuthError, match="not reachable"):
        await TokenSource("crm", unreachable, read_secret).token()


def test_oauth_needs_a_url_and_no_static_token() -> None:
    oauth = ClientCredentials(
        token_url="https://a.example/t", client_id="c", client_secret_secret="s"
    )
    with pytest.raises(UserError, match="oauth needs a url"):
        MCPServerSpec(name="crm", command="python", oauth=oauth)
    with pytest.raises(UserError, match="oauth needs a url"):
        MCPServerSpec(name="crm", url="https://crm.example/mcp", token_secret="T", oauth=oauth)
    with pytest.raises(UserError, match="http"):
        ClientCredentials(token_url="ftp://a.example", client_id="c", client_secret_secret="s")
