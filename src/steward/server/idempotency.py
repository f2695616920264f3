"""Idempotency-Key on every mutating request (POST, PUT, PATCH, DELETE), per the IETF httpapi
draft: a retry gets the stored response, a concurrent duplicate 409, another payload 422.

ASGI middleware behind authentication, so every route gets it without opting in. Keys are scoped
to the tenant and API key; the fingerprint is method, path, query and body. Answers that stream
(SSE) are not stored: a retry is sent to the run they started (303). 5xx answers are not stored
either, so a retry after a server-side failure runs again.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from datetime import UTC, datetime
from email.utils import format_datetime

from sqlalchemy.exc import DBAPIError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from steward.security.keys import Principal
from steward.server.problems import problem
from steward.store.idempotency import Claim, IdempotencyStore, StoredResponse

HEADER = "idempotency-key"
EXPIRES_HEADER = "Idempotency-Key-Expires"
REPLAYED_HEADER = "Idempotent-Replayed"
MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# The draft's header is a Structured Field string; unquoted tokens are accepted as well.
_KEY = re.compile(r"^[\x20-\x21\x23-\x5b\x5d-\x7e]{1,255}$")
_NOT_STORED = frozenset(
    {"date", "server", "content-length", "transfer-encoding", "connection", "set-cookie"}
)


def parse_key(raw: str) -> str | None:
    value = raw.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    return value if _KEY.match(value) else None


def fingerprint(method: str, path: str, query: bytes, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (method.encode(), path.encode(), query, body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


class IdempotencyGate:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in MUTATING:
            await self.app(scope, receive, send)
            return
        raw = next((v for k, v in scope["headers"] if k.lower() == b"idempotency-key"), None)
        principal = scope.get("state", {}).get("principal")
        if raw is None or not isinstance(principal, Principal):
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        key = parse_key(raw.decode("latin-1"))
        if key is None:
            await problem(
                400,
                "idempotency-key-invalid",
                "Invalid Idempotency-Key",
                "the Idempotency-Key must be 1-255 printable ASCII characters",
                instance=path,
            )(scope, receive, send)
            return
        body = await _read_body(receive, self.max_body_bytes)
        if body is None:
            await problem(
                413, detail=f"the body exceeds {self.max_body_bytes} bytes", instance=path
            )(scope, receive, send)
            return
        store: IdempotencyStore = scope["app"].state.idempotency
        scope_ids = (principal.tenant_id, principal.key_id, key)
        print_ = fingerprint(scope["method"], path, scope.get("query_string", b""), body)
        try:
            claim = await asyncio.to_thread(store.claim, *scope_ids, print_)
        except DBAPIError:
            await _store_unavailable(scope, receive, send)
            return
        if claim.outcome != "claimed":
            await _refuse_or_replay(claim, scope, receive, send)
            return
        await self._execute(store, scope_ids, claim.expires_at, scope, body, receive, send)

    async def _execute(
        self,
        store: IdempotencyStore,
        scope_ids: tuple[str, str, str],
        expires_at: datetime,
        scope: Scope,
        body: bytes,
        receive: Receive,
        send: Send,
    ) -> None:
        status = 500
        headers: list[tuple[bytes, bytes]] = []
        chunks: list[bytes] = []
        streamed = False
        expires = (EXPIRES_HEADER.lower().encode(), _http_date(expires_at).encode())

        async def capture(message: Message) -> None:
            nonlocal status, headers, streamed
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                streamed = any(
                    k.lower() == b"content-type" and v.startswith(b"text/event-stream")
                    for k, v in headers
                )
                message = {**message, "headers": [*headers, expires]}
            elif message["type"] == "http.response.body" and not streamed:
                chunks.append(message.get("body", b""))
            await send(message)

        delivered = False

        async def replay_body() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: the client's disconnect, if it comes

        try:
            await self.app(scope, replay_body, capture)
        except BaseException:
            await asyncio.shield(asyncio.to_thread(store.release, *scope_ids))
            raise
        if status >= 500:
            await asyncio.to_thread(store.release, *scope_ids)
            return
        kept = {k.decode("latin-1"): v.decode("latin-1") for k, v in headers}
        kept = {k: v for k, v in kept.items() if k.lower() not in _NOT_STORED}
        if streamed:
            kept.pop("content-type", None)
            stored = StoredResponse(303, {"x-steward-streamed": "true", **kept}, b"")
        else:
            stored = StoredResponse(status, kept, b"".join(chunks))
        await asyncio.shield(asyncio.to_thread(store.complete, *scope_ids, stored))


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole body (RequestGuard bounded it for POST/PUT/PATCH; DELETE is bounded here)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        if size > limit:
            return None
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _refuse_or_replay(claim: Claim, scope: Scope, receive: Receive, send: Send) -> None:
    path = scope["path"]
    expires = {EXPIRES_HEADER: _http_date(claim.expires_at)}
    if claim.outcome == "mismatch":
        await problem(
            422,
            "idempotency-key-reused",
            "Idempotency-Key reused",
            "this Idempotency-Key was used with a different request (method, path or body)",
            instance=path,
            headers=expires,
        )(scope, receive, send)
        return
    if claim.outcome == "in_progress":
        await problem(
            409,
            "idempotency-key-in-use",
            "Request in progress",
            "a request with this Idempotency-Key is still being processed; retry later",
            instance=path,
            headers={**expires, "Retry-After": "1"},
        )(scope, receive, send)
        return
    stored = claim.response
    assert stored is not None
    headers = [(k.encode("latin-1"), str(v).encode("latin-1")) for k, v in stored.headers.items()]
    if stored.headers.get("x-steward-streamed") == "true" and "location" not in stored.headers:
        # A stream cannot be replayed: point at the run it started instead of starting another
        # (at its resumable stream when the answer named one in `Location`).
        location = stored.headers.get("content-location", "")
        headers.append((b"location", location.encode("latin-1")))
    headers += [
        (EXPIRES_HEADER.lower().encode(), expires[EXPIRES_HEADER].encode()),
        (REPLAYED_HEADER.lower().encode(), b"true"),
        (b"content-length", str(len(stored.body)).encode()),
    ]
    await send({"type": "http.response.start", "status": stored.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": stored.body})


async def _store_unavailable(scope: Scope, receive: Receive, send: Send) -> None:
    await problem(
        503,
        "store-unavailable",
        "Service unavailable",
        "the database cannot be reached to check the Idempotency-Key; retry later",
        instance=scope["path"],
        headers={"Retry-After": "1"},
    )(scope, receive, send)


def _http_date(moment: datetime) -> str:
    return format_datetime(moment.astimezone(UTC), usegmt=True)
