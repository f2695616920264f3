"""`/v1/sandboxes`: create, exec (JSON or SSE), files, standby, resume, delete, list.

Every sandbox belongs to the caller's tenant; another tenant's id answers 404. File paths are
query parameters (relative to /work) so no client or proxy normalises `..` away before we refuse it.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from steward.errors import (
    ApiError,
    NotFound,
    SandboxError,
)
from steward.sandbox.manager import Completed, CreateOptions, SandboxManager, argv_for
from steward.sandbox.types import ExecRequest, ExecResult, Limits, Output
from steward.server.auth import Reader, Writer

router = APIRouter(prefix="/v1/sandboxes", tags=["sandboxes"])
PathParam = Annotated[str, Query(min_length=0, max_length=4096)]


class LimitsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    memory_mib: int = Field(256, ge=16, le=16384)
    pids: int = Field(64, ge=8, le=4096)
    cpus: float = Field(1.0, gt=0.01, le=64)
    cpu_seconds: float | None = Field(None, gt=0)
    disk_mib: int = Field(256, ge=1, le=65536)
    tmp_mib: int = Field(64, ge=1, le=16384)
    open_files: int = Field(256, ge=16, le=65536)
    exec_timeout_s: float = Field(30.0, gt=0, le=3600)
    max_output_bytes: int = Field(1_048_576, ge=1024, le=64 * 1_048_576)


class SandboxCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    backend: Literal["bwrap", "gvisor", "process"] | None = None
    limits: LimitsBody = Field(default_factory=lambda: LimitsBody())
    env: dict[str, str] = Field(default_factory=dict, max_length=200)
    timeout_s: float | None = Field(None, gt=0, le=7 * 86400)
    idle_timeout_s: float = Field(15.0, gt=0, le=86400)
    volumes: list[str] = Field(default_factory=list, max_length=16)

    @field_validator("env")
    @classmethod
    def _env(cls, env: dict[str, str]) -> dict[str, str]:
        for key, value in env.items():
            if not key or "=" in key or "\0" in key or "\0" in value:
                raise ValueError(f"invalid environment variable {key!r}")
        return env


class ExecBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    command: str | list[str] | None = None
    code: str | None = Field(None, max_length=512_000)
    language: Literal["python", "sh", "bash"] = "python"
    stdin: str = Field("", max_length=65536)
    env: dict[str, str] = Field(default_factory=dict, max_length=200)
    cwd: str = Field("/work", max_length=4096)
    timeout_s: float | None = Field(None, gt=0, le=3600)
    stream: bool = False


class FileBody(BaseModel):
    """A file's content as JSON (the API speaks JSON only): UTF-8 text or base64 bytes.

    Decoded while validating, so bad base64 of any kind (non-ASCII included, which the decoder
    reports as `ValueError`, not `binascii.Error`) is a 422 before any sandbox is looked up."""

    model_config = ConfigDict(extra="forbid")

    content: str
    encoding: Literal["utf-8", "base64"] = "utf-8"
    _data: bytes = PrivateAttr(b"")

    @model_validator(mode="after")
    def _decode(self) -> FileBody:
        if self.encoding == "utf-8":
            self._data = self.content.encode()
            return self
        try:
            self._data = base64.b64decode(self.content.encode("ascii"), validate=True)
        except (UnicodeEncodeError, binascii.Error) as exc:
            raise ValueError("content is not base64 (A-Z, a-z, 0-9, +, /, = padding)") from exc
        return self

    @property
    def data(self) -> bytes:
        return self._data


class StandbyBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: Literal["warm", "cold"] | None = None


def _manager(request: Request) -> SandboxManager:
    manager: SandboxManager = request.app.state.sandboxes
    return manager


@contextmanager
def _translated() -> Iterator[None]:
    """A missing file as a 404; SandboxError's family maps in steward.server.problems."""
    try:
        yield
    except FileNotFoundError as exc:
        raise ApiError(404, "not-found", "Not found", str(exc)) from exc


@router.post("", status_code=201)
async def create_sandbox(body: SandboxCreate, principal: Writer, request: Request) -> Any:
    options = CreateOptions(
        backend=body.backend,
        limits=Limits(**body.limits.model_dump()),
        env=body.env,
        timeout_s=body.timeout_s,
        idle_timeout_s=body.idle_timeout_s,
        volumes=body.volumes,
    )
    with _translated():
        info = await _manager(request).create(principal.tenant_id, options)
    return info.to_json()


@router.get("")
async def list_sandboxes(principal: Reader, request: Request, all: bool = False) -> Any:
    infos = await _manager(request).describe_all(principal.tenant_id, include_ended=all)
    return {"sandboxes": [info.to_json() for info in infos]}


@router.get("/{sandbox_id}")
async def get_sandbox(sandbox_id: str, principal: Reader, request: Request) -> Any:
    return (await _manager(request).describe(principal.tenant_id, sandbox_id)).to_json()


@router.delete("/{sandbox_id}", status_code=204)
async def delete_sandbox(sandbox_id: str, principal: Writer, request: Request) -> Response:
    with _translated():
        await _manager(request).delete(principal.tenant_id, sandbox_id)
    return Response(status_code=204)


@router.post("/{sandbox_id}/standby")
async def standby_sandbox(
    sandbox_id: str, body: StandbyBody, principal: Writer, request: Request
) -> Any:
    manager = _manager(request)
    with _translated():
        await manager.standby(principal.tenant_id, sandbox_id, body.mode)
    return (await manager.describe(principal.tenant_id, sandbox_id)).to_json()


@router.post("/{sandbox_id}/resume")
async def resume_sandbox(sandbox_id: str, principal: Writer, request: Request) -> Any:
    manager = _manager(request)
    with _translated():
        await manager.resume(principal.tenant_id, sandbox_id)
    return (await manager.describe(principal.tenant_id, sandbox_id)).to_json()


@router.post("/{sandbox_id}/exec")
async def exec_in_sandbox(
    sandbox_id: str, body: ExecBody, principal: Writer, request: Request
) -> Any:
    manager = _manager(request)
    info = await manager.describe(principal.tenant_id, sandbox_id)
    if "\0" in body.cwd or not body.cwd.startswith("/"):
        raise ApiError(422, "validation-error", "Invalid input", "cwd must be an absolute path")
    with _translated():
        argv = argv_for(body.command, body.code, body.language)
    timeout = body.timeout_s or float(info.limits["exec_timeout_s"])
    exec_request = ExecRequest(argv, body.env, body.cwd, body.stdin.encode(), timeout)
    if body.stream:
        events = manager.exec(principal.tenant_id, sandbox_id, exec_request)
        return StreamingResponse(_sse(events), media_type="text/event-stream")
    with _translated():
        completed = await manager.run(principal.tenant_id, sandbox_id, exec_request)
    return completed_json(completed)


def completed_json(completed: Completed) -> dict[str, Any]:
    return {
        **result_json(completed.result),
        "stdout": completed.stdout.decode(errors="replace"),
        "stderr": completed.stderr.decode(errors="replace"),
    }


def result_json(result: ExecResult) -> dict[str, Any]:
    return dict(result.__dict__)


async def _sse(events: AsyncIterator[Output | ExecResult]) -> AsyncIterator[bytes]:
    try:
        async for event in events:
            if isinstance(event, Output):
                data = {"data": event.data.decode(errors="replace")}
                yield f"event: {event.stream}\ndata: {json.dumps(data)}\n\n".encode()
            else:
                yield f"event: result\ndata: {json.dumps(result_json(event))}\n\n".encode()
    except (SandboxError, NotFound) as exc:  # headers are sent: report in the stream
        yield f"event: error\ndata: {json.dumps({'detail': str(exc)})}\n\n".encode()


@router.get("/{sandbox_id}/files")
async def list_sandbox_files(
    sandbox_id: str, principal: Reader, request: Request, path: PathParam = ""
) -> Any:
    with _translated():
        entries = await _manager(request).list_files(principal.tenant_id, sandbox_id, path)
    return {"files": [entry.__dict__ for entry in entries]}


@router.get("/{sandbox_id}/files/content")
async def read_sandbox_file(
    sandbox_id: str, principal: Reader, request: Request, path: PathParam
) -> Response:
    with _translated():
        data = await _manager(request).read_file(principal.tenant_id, sandbox_id, path)
    return Response(data, media_type="application/octet-stream")


@router.put("/{sandbox_id}/files/content", status_code=204)
async def write_sandbox_file(
    sandbox_id: str, body: FileBody, principal: Writer, request: Request, path: PathParam
) -> Response:
    with _translated():
        await _manager(request).write_file(principal.tenant_id, sandbox_id, path, body.data)
    return Response(status_code=204)
