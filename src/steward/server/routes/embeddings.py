"""`POST /v1/embeddings`: OpenAI-compatible embeddings through the gateway (priced and capped
like chat), or the built-in `local-minilm` model with no key. Errors in OpenAI's shape."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from steward.errors import ModelError, SpendCapExceeded, UnknownModel
from steward.models.budget import SpendScope
from steward.models.embeddings_gateway import embed, texts_of
from steward.models.gateway import Gateway
from steward.server.auth import USER_HEADER, authenticated
from steward.server.provider_errors import provider_error
from steward.server.routes.proxy import _upstream_error

router = APIRouter(tags=["gateway"])


@router.post("/v1/embeddings", include_in_schema=True)
async def embeddings(request: Request) -> Response:
    """OpenAI Embeddings: `input` (a string or a list of strings), `model` (a gateway model or
    `local-minilm`), optional `encoding_format` (`float` or `base64`) and `dimensions`."""
    principal = await authenticated(request)
    gateway: Gateway = request.app.state.gateway
    try:
        body: Any = json.loads(await request.body())
    except ValueError:
        return provider_error("openai", 400, "the request body is not valid JSON")
    problem = texts_of(body)
    if isinstance(problem, str):
        return provider_error("openai", 400, problem)
    user = request.headers.get(USER_HEADER) or body.get("user")
    scope = SpendScope(principal.tenant_id, principal.key_id, str(user)[:200] if user else None)
    headers = {k.lower(): v for k, v in request.headers.items()}
    try:
        answer = await embed(gateway, scope, body, client_headers=headers)
    except UnknownModel as exc:
        return provider_error("openai", 404, str(exc), code="model_not_found")
    except SpendCapExceeded as exc:
        return provider_error(
            "openai",
            429,
            str(exc),
            error_type="insufficient_quota",
            code="spend_cap_exceeded",
            headers={"x-should-retry": "false"},
        )
    except ModelError as exc:
        return _upstream_error("openai", exc)
    return Response(json.dumps(answer.body), media_type="application/json")
