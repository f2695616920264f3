"""Embeddings through the gateway: OpenAI-compatible `POST …/embeddings` on a deployment, with
the chat path's budget reservation, retries, breakers, fallbacks, pricing, spend record and an
`embeddings {model}` span. `local-minilm` is answered in-process (free, no key)."""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry.trace import Span

from steward.errors import ModelError, UnknownModel
from steward.models.budget import SpendScope
from steward.models.deployments import Target
from steward.models.embeddings import LOCAL_MODEL, Embeddings, LocalEmbedder
from steward.models.gateway import Gateway
from steward.models.passthrough import _http_error, _transport_error, upstream_headers
from steward.models.types import Usage
from steward.observe import genai

OPERATION_EMBEDDINGS = "embeddings"
MAX_INPUTS = 2048


@dataclass(frozen=True)
class EmbeddingAnswer:
    body: dict[str, Any]  # OpenAI's response shape, vectors in the encoding asked for
    usage: Usage


def texts_of(body: Any) -> list[str] | str:
    """The request's texts, or what is wrong with it."""
    if not isinstance(body, dict):
        return "the request body must be a JSON object"
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "model: a model name is required"
    given = body.get("input")
    texts = [given] if isinstance(given, str) else given
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        return "input: a string or a non-empty list of strings is required"
    if len(texts) > MAX_INPUTS:
        return f"input: at most {MAX_INPUTS} strings per request"
    if body.get("encoding_format", "float") not in ("float", "base64"):
        return "encoding_format: 'float' or 'base64' is required"
    dims = body.get("dimensions")
    if dims is not None and (not isinstance(dims, int) or isinstance(dims, bool) or dims < 1):
        return "dimensions: a positive integer is required"
    return list(texts)


def _encoded(vectors: list[list[float]], model: str, tokens: int, fmt: str) -> dict[str, Any]:
    data = []
    for index, values in enumerate(vectors):
        embedding: Any = values
        if fmt == "base64":
            embedding = base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


async def _post(target: Target, body: dict[str, Any], headers: Mapping[str, str]) -> Any:
    import aiohttp

    url = target.deployment.base_url + "/embeddings"
    payload = json.dumps({**body, "model": target.model}).encode()
    try:
        async with target.deployment.session().post(
            url, data=payload, headers=upstream_headers(target, headers)
        ) as response:
            raw = await response.read()
            status = response.status
            answer_headers = {k.lower(): v for k, v in response.headers.items()}
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise _transport_error(target, exc, streaming=False) from exc
    if status >= 400:
        raise _http_error(target, status, raw, answer_headers)
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise ModelError(
            f"{target.deployment.name} answered embeddings that are not JSON", retryable=True
        ) from exc


async def embed(
    gateway: Gateway,
    scope: SpendScope,
    body: dict[str, Any],
    *,
    source: str = "proxy",
    client_headers: Mapping[str, str] | None = None,
) -> EmbeddingAnswer:
    """One embeddings request (already validated by `texts_of`) through the gateway."""
    texts = texts_of(body)
    assert isinstance(texts, list)
    fmt = str(body.get("encoding_format", "float"))
    model = body["model"]
    if model == LOCAL_MODEL:
        return await _local(gateway, texts, fmt)
    targets = [t for t in gateway.deployments.targets(model) if t.deployment.dialect == "openai"]
    if not targets:
        raise UnknownModel(f"no OpenAI-compatible deployment serves embeddings for {model!r}")
    # Every token is at least one byte: the bytes bound the input the caps are checked against.
    bound = sum(len(t.encode()) for t in texts) + len(texts)
    plan = await gateway.plan(scope, targets, input_tokens=bound, max_tokens=0)
    call = await gateway.open_call(
        scope, source, model, plan.estimate_usd, reserved_for=plan.describe()
    )
    _as_embeddings_span(call.span, model)
    try:
        data = await gateway.attempt(call, targets, lambda t: _post(t, body, client_headers or {}))
        tokens = int((data.get("usage") or {}).get("prompt_tokens") or 0)
        usage = Usage(input_tokens=tokens, output_tokens=0)
    except BaseException as exc:
        await gateway.finish(call, None, error=exc)
        raise
    await gateway.finish(call, usage, response_model=str(data.get("model") or model))
    return EmbeddingAnswer(data, usage)


async def _local(gateway: Gateway, texts: list[str], fmt: str) -> EmbeddingAnswer:
    span = gateway.tracing.tracer.start_span(f"{OPERATION_EMBEDDINGS} {LOCAL_MODEL}")
    try:
        _as_embeddings_span(span, LOCAL_MODEL)
        span.set_attribute(genai.GEN_AI_PROVIDER_NAME, "steward.local")
        result: Embeddings = await LocalEmbedder().embed(texts)
        span.set_attribute(genai.GEN_AI_USAGE_INPUT_TOKENS, result.input_tokens)
    finally:
        span.end()
    usage = Usage(input_tokens=result.input_tokens, output_tokens=0)
    return EmbeddingAnswer(_encoded(result.vectors, LOCAL_MODEL, result.input_tokens, fmt), usage)


def _as_embeddings_span(span: Span, model: str) -> None:
    span.update_name(f"{OPERATION_EMBEDDINGS} {model}")
    span.set_attribute(genai.GEN_AI_OPERATION_NAME, OPERATION_EMBEDDINGS)


class GatewayEmbedder:
    """An `Embedder` over a gateway model (for semantic memory on a hosted embedding model)."""

    def __init__(self, gateway: Gateway, model: str, dimensions: int, tenant_id: str) -> None:
        self.gateway = gateway
        self.model = model
        self.dimensions = dimensions
        self.tenant_id = tenant_id

    async def embed(self, texts: Sequence[str]) -> Embeddings:
        body = {"model": self.model, "input": list(texts), "dimensions": self.dimensions}
        answer = await embed(self.gateway, SpendScope(self.tenant_id), body, source="memory")
        rows = sorted(answer.body["data"], key=lambda d: d["index"])
        return Embeddings(
            vectors=[list(map(float, d["embedding"])) for d in rows],
            model=self.model,
            input_tokens=answer.usage.input_tokens,
        )
