"""The wire-compatible model upstream: OpenAI (`/v1/chat/completions`, `/v1/models`) and
Anthropic (`/v1/messages`) endpoints answering from a script, with faults on command; and both
providers' batch APIs (`steward.upstream.batch_api`).

Control API (JSON):

- `POST /_control/script` — `{"responses": [ScriptedResponse, ...]}` (or a bare list) is
  appended to the queue; each model request, of either dialect, takes the next one. With an
  empty queue the upstream echoes the last user message ("Echo: ...").
- `POST /_control/faults` — a `Faults` object replacing the current faults: latency,
  first-chunk delay, an error status with its body, `Retry-After`, a seeded probability,
  truncation after N stream events, a mid-stream error after N events.
- `POST /_control/reset` — empty queue, no faults, no recorded requests.
- `GET /_control/requests` — `{"requests": [{"method", "path", "headers", "body"}, ...]}` for
  every model request received, so tests can assert what a client sent.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any, Literal

import uvicorn
from pydantic import TypeAdapter, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from steward.upstream import anthropic_wire, batch_api, embeddings_wire, openai_wire
from steward.upstream.control import (
    Faults,
    Frame,
    RecordedRequest,
    Reply,
    ScriptedResponse,
    UpstreamState,
)

__all__ = ["create_upstream_app", "serve_upstream"]

Dialect = Literal["openai", "anthropic"]

MODELS = ("gpt-4.1", "gpt-4.1-mini", "gpt-4o-mini", "claude-sonnet-4-5", "claude-haiku-4-5")
_SCRIPT = TypeAdapter(list[ScriptedResponse])
_SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


def _state(request: Request) -> UpstreamState:
    state: UpstreamState = request.app.state.upstream
    return state


def _error(
    dialect: Dialect,
    status: int,
    *,
    code: str | None = None,
    message: str | None = None,
    body: dict[str, Any] | None = None,
    retry_after_s: float | None = None,
    request_id: str,
) -> JSONResponse:
    if body is None:
        body = (
            openai_wire.error_json(status, code, message)
            if dialect == "openai"
            else anthropic_wire.error_json(status, code, message, request_id)
        )
    headers = {"x-request-id" if dialect == "openai" else "request-id": request_id}
    if retry_after_s is not None:
        # Whole seconds when whole, the way real servers write the header.
        seconds = int(retry_after_s) if float(retry_after_s).is_integer() else retry_after_s
        headers["retry-after"] = str(seconds)
    return JSONResponse(body, status_code=status, headers=headers)


def _invalid(dialect: Dialect, body: Any, headers: dict[str, str]) -> str | None:
    """The reason a request would be refused as malformed, checked the way the real APIs do."""
    if not isinstance(body, dict):
        return "The request body must be a JSON object."
    if not body.get("model"):
        return "model: Field required"
    if not isinstance(body.get("messages"), list):
        return "messages: Field required"
    if dialect == "anthropic":
        if "anthropic-version" not in headers:
            return "anthropic-version: header is required"
        if not isinstance(body.get("max_tokens"), int):
            return "max_tokens: Field required"
    return None


async def _paced(
    frames: list[Frame], faults: Faults, hit: bool, error: bytes
) -> AsyncIterator[bytes]:
    """Send frames with the configured delays; cut or break the stream when the fault hit."""
    cut_at = faults.truncate_after_chunks if hit else None
    break_at = faults.stream_error_after_chunks if hit else None
    content_seen = False
    for sent, frame in enumerate(frames):
        if cut_at is not None and sent >= cut_at:
            return
        if break_at is not None and sent >= break_at:
            yield error
            return
        if frame.content and not content_seen:
            content_seen = True
            if faults.first_chunk_delay_s:
                await asyncio.sleep(faults.first_chunk_delay_s)
        elif sent and faults.chunk_delay_s:
            await asyncio.sleep(faults.chunk_delay_s)
        yield frame.data


async def _model_request(request: Request, dialect: Dialect) -> Response:
    state = _state(request)
    raw = await request.body()
    try:
        body: Any = json.loads(raw) if raw else None
    except ValueError:
        body = raw.decode("utf-8", errors="replace")
    headers = dict(request.headers.items())
    recorded = RecordedRequest(request.method, request.url.path, headers, body)
    state.requests.append(recorded)
    request_id = state.next_id("req_")
    faults = state.faults
    if faults.latency_s:
        await asyncio.sleep(faults.latency_s)
    hit = state.draw_fault()
    variant = state.draw_variant() if hit else None
    if variant is not None:
        recorded.fault = variant.model_dump(exclude_defaults=True)
        # The storm's pick replaces the single fault for this one request.
        faults = faults.model_copy(
            update={
                "error_status": variant.error_status,
                "error_code": variant.error_code,
                "retry_after_s": variant.retry_after_s,
                "truncate_after_chunks": variant.truncate_after_chunks,
                "stream_error_after_chunks": None,
            }
        )
        if variant.latency_s:
            await asyncio.sleep(variant.latency_s)
    elif hit:
        recorded.fault = {"error_status": faults.error_status}
    if hit and faults.error_status is not None:
        return _error(
            dialect,
            faults.error_status,
            code=faults.error_code,
            message=faults.error_message,
            body=faults.error_body,
            retry_after_s=faults.retry_after_s,
            request_id=request_id,
        )
    problem = _invalid(dialect, body, headers)
    if problem is not None:
        return _error(dialect, 400, message=problem, request_id=request_id)
    if dialect == "openai":
        reply = state.reply(body, "call_", "chatcmpl-")
    else:
        reply = state.reply(body, "toolu_", "msg_")
    if not body.get("stream"):
        return _json_reply(dialect, reply, request_id)
    if dialect == "openai":
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        frames = openai_wire.stream_frames(reply, include_usage=include_usage)
        error = openai_wire.stream_error_frame(faults.stream_error_type, faults.error_message)
    else:
        frames = anthropic_wire.stream_frames(reply)
        error = anthropic_wire.stream_error_frame(
            faults.stream_error_type, faults.error_message, request_id
        )
    id_header = "x-request-id" if dialect == "openai" else "request-id"
    return StreamingResponse(
        _paced(frames, faults, hit, error),
        media_type="text/event-stream; charset=utf-8",
        headers={**_SSE_HEADERS, id_header: request_id},
    )


def _json_reply(dialect: Dialect, reply: Reply, request_id: str) -> JSONResponse:
    if dialect == "openai":
        return JSONResponse(
            openai_wire.completion_json(reply), headers={"x-request-id": request_id}
        )
    return JSONResponse(anthropic_wire.message_json(reply), headers={"request-id": request_id})


async def chat_completions(request: Request) -> Response:
    return await _model_request(request, "openai")


async def embeddings(request: Request) -> Response:
    """OpenAI embeddings, with the same scripted faults and latency as chat."""
    state = _state(request)
    raw = await request.body()
    try:
        body: Any = json.loads(raw) if raw else None
    except ValueError:
        body = raw.decode("utf-8", errors="replace")
    state.requests.append(
        RecordedRequest(request.method, request.url.path, dict(request.headers.items()), body)
    )
    request_id = state.next_id("req_")
    faults = state.faults
    if faults.latency_s:
        await asyncio.sleep(faults.latency_s)
    if state.draw_fault() and faults.error_status is not None:
        return _error(
            "openai",
            faults.error_status,
            code=faults.error_code,
            message=faults.error_message,
            body=faults.error_body,
            retry_after_s=faults.retry_after_s,
            request_id=request_id,
        )
    problem = embeddings_wire.invalid(body)
    if problem is not None:
        return _error("openai", 400, message=problem, request_id=request_id)
    return JSONResponse(embeddings_wire.embeddings_json(body), headers={"x-request-id": request_id})


async def messages(request: Request) -> Response:
    return await _model_request(request, "anthropic")


async def list_models(request: Request) -> Response:
    data = [
        {"id": model, "object": "model", "created": 1_700_000_000, "owned_by": "steward-upstream"}
        for model in MODELS
    ]
    return JSONResponse({"object": "list", "data": data})


async def _control_body(request: Request) -> Any:
    raw = await request.body()
    return json.loads(raw) if raw else {}


async def control_script(request: Request) -> Response:
    try:
        payload = await _control_body(request)
        items = payload.get("responses", []) if isinstance(payload, dict) else payload
        responses = _SCRIPT.validate_python(items)
    except (ValueError, ValidationError) as exc:
        return JSONResponse({"detail": str(exc)}, status_code=422)
    _state(request).script.extend(responses)
    return JSONResponse({"queued": len(_state(request).script)})


async def control_faults(request: Request) -> Response:
    try:
        faults = Faults.model_validate(await _control_body(request))
    except (ValueError, ValidationError) as exc:
        return JSONResponse({"detail": str(exc)}, status_code=422)
    _state(request).set_faults(faults)
    return JSONResponse(faults.model_dump())


async def control_reset(request: Request) -> Response:
    _state(request).reset()
    return JSONResponse({"reset": True})


async def control_requests(request: Request) -> Response:
    return JSONResponse({"requests": [r.to_json() for r in _state(request).requests]})


def create_upstream_app(state: UpstreamState | None = None) -> Starlette:
    """A fresh upstream app; pass `state` to share or pre-load a script."""
    app = Starlette(
        routes=[
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/v1/embeddings", embeddings, methods=["POST"]),
            Route("/v1/models", list_models, methods=["GET"]),
            Route("/v1/messages", messages, methods=["POST"]),
            Route("/_control/script", control_script, methods=["POST"]),
            Route("/_control/faults", control_faults, methods=["POST"]),
            Route("/_control/reset", control_reset, methods=["POST"]),
            Route("/_control/requests", control_requests, methods=["GET"]),
            *batch_api.routes(),
        ]
    )
    app.state.upstream = state or UpstreamState()
    app.state.batches = batch_api.BatchState()
    return app


def serve_upstream(host: str = "127.0.0.1", port: int = 8900, *, log_level: str = "info") -> None:
    """Run the upstream in the foreground under uvicorn until interrupted."""
    uvicorn.run(create_upstream_app(), host=host, port=port, log_level=log_level)
