"""The OpenAI- and Anthropic-compatible proxy: `POST /v1/chat/completions`, `POST /v1/messages`
and `GET /v1/models`, in front of the gateway with the same budgets, retries, breakers,
fallbacks, spans and spend records as agent calls. Errors come in the provider's own shape.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response, StreamingResponse

from steward.errors import ModelError, SpendCapExceeded, UnknownModel
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
    with_output_limit,
)
from steward.models.reservation import ReservationPlan
from steward.models.resilience import is_rate_limited
from steward.models.response_cache import CachedAnswer, cache_key, is_deterministic
from steward.security.keys import Principal
from steward.server.auth import USER_HEADER, authenticated
from steward.server.model_list import anthropic_model_page
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
    """The logical models this gateway routes: in Anthropic's paged list shape when the client
    sends `anthropic-version` (the Anthropic SDK's `models.list()`), else in OpenAI's."""
    await authenticated(request)
    gateway: Gateway = request.app.state.gateway
    names = sorted({gateway.deployments.default_model, *gateway.settings.routes})
    if "anthropic-version" in request.headers:
        return anthropic_model_page(names, request.query_params)
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
    if dialect == "anthropic" and body.get("max_tokens") is None:
        return "max_tokens: an integer is required"
    # The reservation is priced from these, so they must mean what the provider reads.
    for name in ("max_tokens", "max_completion_tokens"):
        if body.get(name) is not None and not _int_within(body[name], 1, 2**31 - 1):
            return f"{name}: a positive integer is required"
    if dialect == "openai" and body.get("n") is not None and not _int_within(body["n"], 1, 128):
        return "n: an integer from 1 to 128 is required"
    return None


def _int_within(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _output_limits(body: dict[str, Any], dialect: ProxyDialect) -> tuple[int, int | None]:
    """Choices billed (OpenAI's `n`; Anthropic has none) and the largest output limit the
    request sets per choice."""
    limits = [body[n] for n in ("max_tokens", "max_completion_tokens") if body.get(n) is not None]
    choices = (body.get("n") or 1) if dialect == "openai" else 1
    return choices, max(limits, default=None)


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
    targets = _route(gateway, body["model"], dialect)
    if isinstance(targets, Response):
        return targets
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
    opened = await _open_call(gateway, scope, targets, body, dialect, input_bound)
    if isinstance(opened, Response):
        return opened
    call, body, plan = opened
    if plan.limited_by_budget:
        key = None  # an answer cut short by this caller's budget is not everyone's answer
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


async def _open_call(
    gateway: Gateway,
    scope: SpendScope,
    targets: list[Target],
    body: dict[str, Any],
    dialect: ProxyDialect,
    input_bound: int,
) -> tuple[GatewayCall, dict[str, Any], ReservationPlan] | Response:
    """Reserve the worst case the request allows; the body to forward, with an output limit
    when it set none (else the provider could bill past the reservation); or the refusal."""
    choices, max_tokens = _output_limits(body, dialect)
    plan = await gateway.plan(
        scope, targets, input_tokens=input_bound, max_tokens=max_tokens, choices=choices
    )
    if plan.send_max_tokens is not None:
        body = with_output_limit(body, targets, plan.send_max_tokens)
    temperature = body.get("temperature")
    try:
        call = await gateway.open_call(
            scope,
            "proxy",
            body["model"],
            plan.estimate_usd,
            max_tokens=max_tokens,
            temperature=temperature if isinstance(temperature, (int, float)) else None,
            reserved_for=plan.describe(),
        )
    except SpendCapExceeded as exc:
        return _cap_error(dialect, exc, plan)
    return call, body, plan


def _route(gateway: Gateway, model: str, dialect: ProxyDialect) -> list[Target] | Response:
    """The targets of `model` that speak the endpoint's dialect, or the 404."""
    try:
        targets = [t for t in _targets(gateway, model, dialect) if _speaks(t, dialect)]
    except UnknownModel as exc:
        return provider_error(
            dialect,
            404,
            str(exc),
            error_type="not_found_error" if dialect == "anthropic" else None,
            code="model_not_found" if dialect == "openai" else None,
        )
    if not targets:
        return provider_error(dialect, 404, f"no {dialect} deployment serves {model!r}")
    return targets


def _targets(gateway: Gateway, model: str, dialect: ProxyDialect) -> list[Target]:
    """A routed name, a model string or `<deployment>:<model>`; else a bare model name of the
    endpoint's own dialect (`gpt-4.1` on /v1/chat/completions is `openai:gpt-4.1`)."""
    try:
        return gateway.deployments.targets(model)
    except UnknownModel:
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
        stream.target.breaker.failure()
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


def _cap_error(dialect: ProxyDialect, exc: SpendCapExceeded, plan: ReservationPlan) -> Response:
    details = {
        "cap": exc.cap,
        "limit_usd": exc.limit_usd,
        "resets_at": exc.resets_at,
        "reserved": {
            "usd": plan.estimate_usd,
            "input_tokens": plan.input_tokens,
            "choices": plan.choices,
            "output_tokens_per_choice": plan.output_tokens,
        },
    }
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
    """The provider's own error when it gave one (same status, body, Retry-After; a rate limit
    without one gets it); otherwise a gateway failure in the dialect's shape."""
    if isinstance(exc, UpstreamHTTPError):
        headers = _relay(exc.headers)
        if is_rate_limited(exc) and "retry-after" not in headers:
            headers["retry-after"] = _seconds(exc.retry_after_s or 1.0)
        return Response(
            exc.raw, status_code=exc.status_code, media_type="application/json", headers=headers
        )
    timed_out = "timed out" in str(exc) or "within" in str(exc)
    status = 504 if timed_out else (529 if dialect == "anthropic" else 503)
    retry_after = getattr(exc, "retry_after_s", None)
    wait = None if retry_after is None else {"retry-after": _seconds(retry_after)}
    return provider_error(dialect, status, str(exc), headers=wait)


def _seconds(value: float) -> str:
    return str(max(math.ceil(value), 1))
