"""The OpenAI- and Anthropic-compatible proxy: `POST /v1/chat/completions`, `POST /v1/messages`
and `GET /v1/models`, in front of the gateway with the same budgets, retries, breakers,
fallbacks, spans and spend records as agent calls. Errors come in the provider's own shape.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response, StreamingResponse

from steward.errors import ConfigError, ModelError, SpendCapExceeded
from steward.models.budget import SpendScope
from steward.models.deployments import Target
from steward.models.gateway import PER_MESSAGE_TOKENS, Gateway, GatewayCall
from steward.models.passthrough import (
    RELAYED_HEADERS,
    ForwardedStream,
    ProxyDialect,
    UpstreamHTTPError,
    forward_json,
    open_stream,
)
from steward.models.response_cache import CachedAnswer, cache_key, is_deterministic
from steward.security.keys import Principal
from steward.server.auth import USER_HEADER, authenticated
from steward.server.provider_errors import provider_error

router = APIRouter(tags=["gateway"])
log = logging.getLogger("steward.gateway")

_SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
_NO_RETRY = {"x-should-retry": "false"}  # both SDKs obey it before their own retry rules


@router.post("/v1/chat/completions", include_in_schema=True)
async def chat_completions(request: Request) -> Response:
    """OpenAI Chat Completions through the gateway (JSON, or SSE with `stream: true`)."""
    return await _proxy(request, "openai")


@router.post("/v1/messages", include_in_schema=True)
async def messages(request: Request) -> Response:
    """Anthropic Messages through the gateway (JSON, or SSE with `stream: true`)."""
    return await _proxy(request, "anthropic")


@router.get("/v1/models")
async def list_models(request: Request) -> Response:
    """The logical models this gateway routes, in OpenAI's list shape."""
    await authenticated(request)
    gateway: Gateway = request.app.state.gateway
    names = sorted({gateway.deployments.default_model, *gateway.settings.routes})
    data = [{"id": n, "object": "model", "created": 0, "owned_by": "steward"} for n in names]
    return Response(json.dumps({"object": "list", "data": data}), media_type="application/json")


def _user(dialect: ProxyDialect, body: dict[str, Any], request: Request) -> str | None:
    header = request.headers.get(USER_HEADER)
    if header:
        return header
    if dialect == "openai":
        user = body.get("user") or body.get("safety_identifier")
    else:
        user = (body.get("metadata") or {}).get("user_id")
    return str(user)[:200] if user else None


def _bad_request(dialect: ProxyDialect, body: Any) -> str | None:
    if not isinstance(body, dict):
        return "the request body must be a JSON object"
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "model: a model name is required"
    if not isinstance(body.get("messages"), list) or not body["messages"]:
        return "messages: a non-empty list is required"
    if dialect == "anthropic" and not isinstance(body.get("max_tokens"), int):
        return "max_tokens: an integer is required"
    return None


def _output_bound(body: dict[str, Any], default: int) -> int:
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if isinstance(value, int) and value > 0:
            return value
    return default


def _relay(headers: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k in RELAYED_HEADERS}


async def _proxy(request: Request, dialect: ProxyDialect) -> Response:
    principal: Principal = await authenticated(request)
    gateway: Gateway = request.app.state.gateway
    raw = await request.body()
    try:
        body: Any = json.loads(raw)
    except ValueError:
        return provider_error(dialect, 400, "the request body is not valid JSON")
    problem = _bad_request(dialect, body)
    if problem is not None:
        return provider_error(dialect, 400, problem)
    try:
        targets = [t for t in _targets(gateway, body["model"], dialect) if _speaks(t, dialect)]
    except ConfigError as exc:
        return provider_error(
            dialect,
            404,
            str(exc),
            error_type="not_found_error" if dialect == "anthropic" else None,
            code="model_not_found" if dialect == "openai" else None,
        )
    if not targets:
        return provider_error(dialect, 404, f"no {dialect} deployment serves {body['model']!r}")
    client_headers = {k.lower(): v for k, v in request.headers.items()}
    scope = SpendScope(principal.tenant_id, principal.key_id, _user(dialect, body, request))

    cache = request.app.state.response_cache
    key = None
    if cache is not None and is_deterministic(body):
        key = cache_key(principal.tenant_id, dialect, body, client_headers)
        hit = cache.get(key)
        if hit is not None:
            return Response(
                hit.raw,
                media_type="application/json",
                headers={**hit.headers, "x-steward-cache": "hit"},
            )

    input_bound = len(raw) + PER_MESSAGE_TOKENS * (len(body["messages"]) + 1)
    output_bound = _output_bound(body, gateway.settings.reservation_output_tokens)
    estimate = gateway.estimate_usd(targets, input_bound, output_bound)
    try:
        call = await gateway.open_call(
            scope,
            "proxy",
            body["model"],
            estimate,
            max_tokens=output_bound
            if output_bound != gateway.settings.reservation_output_tokens
            else None,
            temperature=body.get("temperature")
            if isinstance(body.get("temperature"), (int, float))
            else None,
        )
    except SpendCapExceeded as exc:
        return _cap_error(dialect, exc)
    if body.get("stream"):
        return await _stream(gateway, call, targets, body, client_headers, dialect, input_bound)
    try:
        answer = await gateway.attempt(
            call, targets, lambda t: forward_json(t, body, client_headers)
        )
    except BaseException as exc:
        await gateway.finish(call, None, error=exc)
        if isinstance(exc, ModelError):
            return _upstream_error(dialect, exc)
        raise
    # Pricing, settlement, the span and the spend row do not hold the answer back: the budget
    # was reserved before the call; this is bookkeeping, and it runs before the next request
    # this process reads (so `/spend` still sees it).
    _background(
        gateway.finish(
            call,
            answer.usage,
            response_model=answer.model,
            response_id=answer.id,
            finish_reasons=answer.finish_reasons,
        )
    )
    headers = _relay(answer.headers)
    if key is not None and cache is not None:
        cache.put(key, CachedAnswer(answer.raw, headers))
    return Response(
        answer.raw, status_code=answer.status, media_type="application/json", headers=headers
    )


def _targets(gateway: Gateway, model: str, dialect: ProxyDialect) -> list[Target]:
    """A routed name, a model string or `<deployment>:<model>`; else a bare model name of the
    endpoint's own dialect (`gpt-4.1` on /v1/chat/completions is `openai:gpt-4.1`)."""
    try:
        return gateway.deployments.targets(model)
    except ConfigError:
        if model in gateway.settings.routes:
            raise
        return gateway.deployments.targets(f"{dialect}:{model}")


def _speaks(target: Target, dialect: ProxyDialect) -> bool:
    return target.deployment.dialect == dialect


async def _stream(
    gateway: Gateway,
    call: GatewayCall,
    targets: list[Target],
    body: dict[str, Any],
    client_headers: dict[str, str],
    dialect: ProxyDialect,
    input_bound: int,
) -> Response:
    timeout = gateway.settings.first_token_timeout_s
    try:
        stream = await gateway.attempt(
            call,
            targets,
            lambda t: open_stream(t, body, client_headers, first_event_timeout_s=timeout),
        )
    except BaseException as exc:
        await gateway.finish(call, None, error=exc)
        if isinstance(exc, ModelError):
            return _upstream_error(dialect, exc)
        raise
    return StreamingResponse(
        _relay_stream(gateway, call, stream, dialect, input_bound),
        media_type="text/event-stream; charset=utf-8",
        headers={**_SSE_HEADERS, **_relay(stream.headers)},
    )


async def _relay_stream(
    gateway: Gateway,
    call: GatewayCall,
    stream: ForwardedStream,
    dialect: ProxyDialect,
    input_bound: int,
) -> AsyncIterator[bytes]:
    """Forward the events; once bytes went out nothing is retried: a broken upstream becomes an
    error event in the dialect's shape, and the call is priced from what was seen."""
    error: BaseException | None = None
    status = "ok"
    try:
        async for raw, content in stream.events():
            if content:
                call.mark_first_chunk()
            yield raw
        if not stream.state.complete:
            status = "truncated"
            error = ModelError(f"{stream.target.deployment.name} ended the stream early")
            yield _stream_error(dialect, "the upstream stream ended early")
        elif stream.state.error:
            status = "error"
            error = ModelError(stream.state.error)
    except ModelError as exc:
        status, error = "truncated", exc
        stream.target.deployment.breaker.failure()
        yield _stream_error(dialect, str(exc))
    except BaseException as exc:  # the client went away: still price what was generated
        status, error = "cancelled", exc
        raise
    finally:
        stream.close()
        finishing = gateway.finish(
            call,
            stream.state.usage(input_bound),
            response_model=stream.state.model,
            response_id=stream.state.id,
            finish_reasons=stream.state.finish_reasons,
            error=error,
            status=status,
        )
        if status == "cancelled":
            _background(finishing)
        else:
            await finishing


_PENDING: set[asyncio.Task[Any]] = set()


def _background(awaitable: Any) -> None:
    task = asyncio.ensure_future(awaitable)
    _PENDING.add(task)
    task.add_done_callback(_finished)


def _finished(task: asyncio.Task[Any]) -> None:
    _PENDING.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.error("a proxied call's bookkeeping failed", exc_info=task.exception())


def _stream_error(dialect: ProxyDialect, message: str) -> bytes:
    if dialect == "openai":
        payload = {
            "error": {"message": message, "type": "server_error", "param": None, "code": None}
        }
        return f"data: {json.dumps(payload)}\n\n".encode()
    payload2 = {"type": "error", "error": {"type": "api_error", "message": message}}
    return f"event: error\ndata: {json.dumps(payload2)}\n\n".encode()


def _cap_error(dialect: ProxyDialect, exc: SpendCapExceeded) -> Response:
    details = {"cap": exc.cap, "limit_usd": exc.limit_usd, "resets_at": exc.resets_at}
    headers = dict(_NO_RETRY)
    return provider_error(
        dialect,
        429,
        str(exc),
        error_type="insufficient_quota" if dialect == "openai" else "rate_limit_error",
        code="spend_cap_exceeded",
        headers=headers,
        details={"steward_spend_cap": details} if dialect == "openai" else details,
    )


def _upstream_error(dialect: ProxyDialect, exc: ModelError) -> Response:
    """The provider's own error when it gave one (same status, body, Retry-After); otherwise
    a gateway failure in the dialect's shape."""
    if isinstance(exc, UpstreamHTTPError):
        headers = _relay(exc.headers)
        return Response(
            exc.raw, status_code=exc.status_code, media_type="application/json", headers=headers
        )
    timed_out = "timed out" in str(exc) or "within" in str(exc)
    status = 504 if timed_out else (529 if dialect == "anthropic" else 503)
    return provider_error(dialect, status, str(exc))
