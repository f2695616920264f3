"""`GET /v1/models` in Anthropic's shape: `{data: [{type, id, display_name, created_at}],
has_more, first_id, last_id}`, paged by `limit` (1-1000, default 20), `after_id` and
`before_id` the way the Anthropic API and its SDK's auto-pagination expect."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from starlette.responses import Response

from steward.server.provider_errors import provider_error

__all__ = ["anthropic_model_page"]

_DEFAULT_LIMIT = 20
_MAX_LIMIT = 1000
# Routed names have no release date; the epoch says so without inventing one.
_CREATED_AT = "1970-01-01T00:00:00Z"


def anthropic_model_page(names: Sequence[str], query: Mapping[str, str]) -> Response:
    raw_limit = query.get("limit", str(_DEFAULT_LIMIT))
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= _MAX_LIMIT:
        return _invalid(f"limit: an integer from 1 to {_MAX_LIMIT} is required")
    limit = int(raw_limit)
    after, before = query.get("after_id"), query.get("before_id")
    if after is not None and before is not None:
        return _invalid("after_id and before_id cannot be used together")
    for field, value in (("after_id", after), ("before_id", before)):
        if value is not None and value not in names:
            return _invalid(f"{field}: no model {value!r} is listed")
    if before is not None:
        end = names.index(before)
        page = names[max(end - limit, 0) : end]
        has_more = end - limit > 0
    else:
        start = names.index(after) + 1 if after is not None else 0
        page = names[start : start + limit]
        has_more = start + limit < len(names)
    body = {
        "data": [
            {"type": "model", "id": n, "display_name": n, "created_at": _CREATED_AT} for n in page
        ],
        "has_more": has_more,
        "first_id": page[0] if page else None,
        "last_id": page[-1] if page else None,
    }
    return Response(json.dumps(body), media_type="application/json")


def _invalid(message: str) -> Response:
    return provider_error("anthropic", 400, message)
