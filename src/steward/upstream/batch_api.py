"""The upstream's provider batch APIs, wire-compatible with OpenAI's Batch API (`/v1/files`,
`/v1/batches`) and Anthropic's Message Batches (`/v1/messages/batches`).

A batch is `in_progress` until `delay_s` (0.2 s by default) has passed since it was created;
the first read after that answers every request in it, in order, the way `/v1/chat/completions`
and `/v1/messages` would (the script queue, else the echo), and the batch is `completed` (OpenAI)
or `ended` (Anthropic). A cancel before then cancels every request. State lives in memory, like
the rest of the upstream.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from steward.upstream import anthropic_wire, openai_wire
from steward.upstream.control import UpstreamState

_OPENAI_ENDPOINTS = ("/v1/chat/completions",)


@dataclass
class _File:
    id: str
    filename: str
    purpose: str
    content: bytes
    created_at: int

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.content),
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
        }


@dataclass
class _Batch:
    id: str
    dialect: str
    requests: list[dict[str, Any]]
    created_at: float
    ready_at: float
    input_file_id: str | None = None
    metadata: dict[str, Any] | None = None
    results: list[dict[str, Any]] | None = None
    cancelled_at: float | None = None
    output_file_id: str | None = None


@dataclass
class BatchState:
    delay_s: float = 0.2
    files: dict[str, _File] = field(default_factory=dict)
    batches: dict[str, _Batch] = field(default_factory=dict)


def _upstream(request: Request) -> UpstreamState:
    state: UpstreamState = request.app.state.upstream
    return state


def _batches(request: Request) -> BatchState:
    state: BatchState = request.app.state.batches
    return state


def _openai_error(status: int, message: str) -> JSONResponse:
    body = openai_wire.error_json(status, None, message)
    return JSONResponse(body, status_code=status)


def _anthropic_error(status: int, message: str) -> JSONResponse:
    body = anthropic_wire.error_json(status, None, message, "req_batch")
    return JSONResponse(body, status_code=status)


async def _json_object(request: Request) -> dict[str, Any] | None:
    try:
        body = json.loads(await request.body())
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _settle(request: Request, batch: _Batch) -> None:
    """Answer a batch's requests once it is due (and was not cancelled)."""
    if batch.results is not None or time.time() < batch.ready_at:
        return
    upstream = _upstream(request)
    results = []
    for item in batch.requests:
        body = item["body"]
        if batch.cancelled_at is not None:
            results.append({"custom_id": item["custom_id"], "cancelled": True})
        elif batch.dialect == "openai":
            reply = upstream.reply(body, "call_", "chatcmpl-")
            answer = openai_wire.completion_json(reply)
            results.append({"custom_id": item["custom_id"], "body": answer})
        else:
            reply = upstream.reply(body, "toolu_", "msg_")
            answer = anthropic_wire.message_json(reply)
            results.append({"custom_id": item["custom_id"], "body": answer})
    batch.results = results
    if batch.dialect == "openai":
        lines = [
            {
                "id": upstream.next_id("batch_req_"),
                "custom_id": result["custom_id"],
                "response": None
                if result.get("cancelled")
                else {
                    "status_code": 200,
                    "request_id": upstream.next_id("req_"),
                    "body": result["body"],
                },
                "error": {"code": "batch_cancelled", "message": "cancelled"}
                if result.get("cancelled")
                else None,
            }
            for result in results
        ]
        state = _batches(request)
        output = _File(
            upstream.next_id("file-"),
            f"{batch.id}_output.jsonl",
            "batch_output",
            b"".join(json.dumps(line).encode() + b"\n" for line in lines),
            int(time.time()),
        )
        state.files[output.id] = output
        batch.output_file_id = output.id


# -- OpenAI ------------------------------------------------------------------------------------


def _multipart(content_type: str, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    """A multipart/form-data body's fields: name -> (filename, bytes)."""
    head = f"Content-Type: {content_type}\r\n\r\n".encode()
    message = BytesParser(policy=HTTP).parsebytes(head + body)
    fields: dict[str, tuple[str | None, bytes]] = {}
    if not message.is_multipart():
        return fields
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name:
            payload = part.get_payload(decode=True)
            data = payload if isinstance(payload, bytes) else b""
            fields[str(name)] = (part.get_filename(), data)
    return fields


async def create_file(request: Request) -> Response:
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        return _openai_error(400, "Expected multipart/form-data with `file` and `purpose`.")
    fields = _multipart(content_type, await request.body())
    if "file" not in fields or "purpose" not in fields:
        return _openai_error(400, "Missing required parameters: `file` and `purpose`.")
    filename, content = fields["file"]
    upstream = _upstream(request)
    stored = _File(
        upstream.next_id("file-"),
        filename or "upload.jsonl",
        fields["purpose"][1].decode(),
        content,
        int(time.time()),
    )
    _batches(request).files[stored.id] = stored
    return JSONResponse(stored.to_json())


async def file_content(request: Request) -> Response:
    stored = _batches(request).files.get(request.path_params["file_id"])
    if stored is None:
        return _openai_error(404, "No such File object.")
    return Response(stored.content, media_type="application/octet-stream")


def _openai_batch_json(batch: _Batch) -> dict[str, Any]:
    total = len(batch.requests)
    done = batch.results is not None
    cancelled = batch.cancelled_at is not None
    status = "in_progress"
    if done:
        status = "cancelled" if cancelled else "completed"
    elif cancelled:
        status = "cancelling"
    completed = 0 if not done or cancelled else total
    return {
        "id": batch.id,
        "object": "batch",
        "endpoint": "/v1/chat/completions",
        "errors": None,
        "input_file_id": batch.input_file_id,
        "completion_window": "24h",
        "status": status,
        "output_file_id": batch.output_file_id,
        "error_file_id": None,
        "created_at": int(batch.created_at),
        "in_progress_at": int(batch.created_at),
        "expires_at": int(batch.created_at) + 86_400,
        "completed_at": int(batch.ready_at) if done and not cancelled else None,
        "cancelled_at": int(batch.cancelled_at)
        if batch.cancelled_at is not None and done
        else None,
        "request_counts": {
            "total": total,
            "completed": completed,
            "failed": 0,
        },
        "metadata": batch.metadata,
    }


def _openai_requests(content: bytes) -> list[dict[str, Any]] | str:
    requests = []
    for number, line in enumerate(content.decode("utf-8", "replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError:
            return f"line {number} is not JSON"
        if not isinstance(item, dict) or not item.get("custom_id"):
            return f"line {number}: custom_id is required"
        if item.get("method") != "POST" or item.get("url") not in _OPENAI_ENDPOINTS:
            return f"line {number}: method must be POST and url /v1/chat/completions"
        if not isinstance(item.get("body"), dict) or not item["body"].get("model"):
            return f"line {number}: body.model is required"
        requests.append({"custom_id": item["custom_id"], "body": item["body"]})
    return requests if requests else "the input file has no requests"


async def create_openai_batch(request: Request) -> Response:
    body = await _json_object(request)
    if body is None:
        return _openai_error(400, "The request body must be a JSON object.")
    state = _batches(request)
    stored = state.files.get(str(body.get("input_file_id")))
    if stored is None:
        return _openai_error(400, "input_file_id: no such file.")
    if body.get("endpoint") not in _OPENAI_ENDPOINTS:
        return _openai_error(400, "endpoint: only /v1/chat/completions is supported here.")
    if body.get("completion_window") != "24h":
        return _openai_error(400, "completion_window must be '24h'.")
    requests = _openai_requests(stored.content)
    if isinstance(requests, str):
        return _openai_error(400, requests)
    now = time.time()
    batch = _Batch(
        _upstream(request).next_id("batch_"),
        "openai",
        requests,
        now,
        now + state.delay_s,
        input_file_id=stored.id,
        metadata=body.get("metadata"),
    )
    state.batches[batch.id] = batch
    return JSONResponse(_openai_batch_json(batch))


def _find(request: Request, dialect: str) -> _Batch | None:
    batch = _batches(request).batches.get(request.path_params["batch_id"])
    if batch is None or batch.dialect != dialect:
        return None
    _settle(request, batch)
    return batch


async def get_openai_batch(request: Request) -> Response:
    batch = _find(request, "openai")
    if batch is None:
        return _openai_error(404, "No such Batch object.")
    return JSONResponse(_openai_batch_json(batch))


async def cancel_openai_batch(request: Request) -> Response:
    batch = _find(request, "openai")
    if batch is None:
        return _openai_error(404, "No such Batch object.")
    if batch.results is None and batch.cancelled_at is None:
        batch.cancelled_at = time.time()
    return JSONResponse(_openai_batch_json(batch))


# -- Anthropic ---------------------------------------------------------------------------------


def _anthropic_batch_json(batch: _Batch) -> dict[str, Any]:
    done = batch.results is not None
    cancelled = batch.cancelled_at is not None
    total = len(batch.requests)
    ended = done and not cancelled
    return {
        "id": batch.id,
        "type": "message_batch",
        "processing_status": "ended" if done else ("canceling" if cancelled else "in_progress"),
        "request_counts": {
            "processing": 0 if done else total,
            "succeeded": total if ended else 0,
            "errored": 0,
            "canceled": total if done and cancelled else 0,
            "expired": 0,
        },
        "ended_at": _iso(batch.ready_at) if done else None,
        "created_at": _iso(batch.created_at),
        "expires_at": _iso(batch.created_at + 86_400),
        "archived_at": None,
        "cancel_initiated_at": _iso(batch.cancelled_at) if cancelled else None,
        "results_url": f"/v1/messages/batches/{batch.id}/results" if done else None,
    }


def _iso(moment: float | None) -> str | None:
    if moment is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment))


async def create_anthropic_batch(request: Request) -> Response:
    if "anthropic-version" not in request.headers:
        return _anthropic_error(400, "anthropic-version: header is required")
    body = await _json_object(request)
    items = body.get("requests") if body is not None else None
    if not isinstance(items, list) or not items:
        return _anthropic_error(400, "requests: a non-empty list is required")
    requests = []
    for index, item in enumerate(items):
        params = item.get("params") if isinstance(item, dict) else None
        if not isinstance(params, dict) or not item.get("custom_id"):
            return _anthropic_error(400, f"requests.{index}: custom_id and params are required")
        if not params.get("model") or not isinstance(params.get("max_tokens"), int):
            return _anthropic_error(400, f"requests.{index}.params: model and max_tokens")
        if not isinstance(params.get("messages"), list):
            return _anthropic_error(400, f"requests.{index}.params.messages: Field required")
        requests.append({"custom_id": item["custom_id"], "body": params})
    now = time.time()
    state = _batches(request)
    batch = _Batch(_upstream(request).next_id("msgbatch_"), "anthropic", requests, now, now)
    batch.ready_at = now + state.delay_s
    state.batches[batch.id] = batch
    return JSONResponse(_anthropic_batch_json(batch))


async def get_anthropic_batch(request: Request) -> Response:
    batch = _find(request, "anthropic")
    if batch is None:
        return _anthropic_error(404, "message batch not found")
    return JSONResponse(_anthropic_batch_json(batch))


async def cancel_anthropic_batch(request: Request) -> Response:
    batch = _find(request, "anthropic")
    if batch is None:
        return _anthropic_error(404, "message batch not found")
    if batch.results is None and batch.cancelled_at is None:
        batch.cancelled_at = time.time()
    return JSONResponse(_anthropic_batch_json(batch))


async def anthropic_results(request: Request) -> Response:
    batch = _find(request, "anthropic")
    if batch is None:
        return _anthropic_error(404, "message batch not found")
    if batch.results is None:
        return _anthropic_error(400, "the batch has not ended; its results are not ready")
    lines = [
        {
            "custom_id": result["custom_id"],
            "result": {"type": "canceled"}
            if result.get("cancelled")
            else {"type": "succeeded", "message": result["body"]},
        }
        for result in batch.results
    ]
    content = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
    return Response(content, media_type="application/binary")


def routes() -> list[Route]:
    return [
        Route("/v1/files", create_file, methods=["POST"]),
        Route("/v1/files/{file_id}/content", file_content, methods=["GET"]),
        Route("/v1/batches", create_openai_batch, methods=["POST"]),
        Route("/v1/batches/{batch_id}", get_openai_batch, methods=["GET"]),
        Route("/v1/batches/{batch_id}/cancel", cancel_openai_batch, methods=["POST"]),
        Route("/v1/messages/batches", create_anthropic_batch, methods=["POST"]),
        Route("/v1/messages/batches/{batch_id}", get_anthropic_batch, methods=["GET"]),
        Route("/v1/messages/batches/{batch_id}/cancel", cancel_anthropic_batch, methods=["POST"]),
        Route("/v1/messages/batches/{batch_id}/results", anthropic_results, methods=["GET"]),
    ]
