"""Admin-only endpoints of a tenant: API keys, webhook hooks, audit export and verification,
tenant settings. Every other role gets 403; every change is recorded in the audit log.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from steward import audit
from steward.audit.signing import public_key_raw
from steward.audit.verify import verify_export
from steward.errors import NotFound
from steward.security.roles import ROLES
from steward.security.services import Security
from steward.server.auth import Admin
from steward.server.openapi import answers

router = APIRouter(prefix="/admin", tags=["admin"])

# Bodies forbid unknown fields: `tenant_id`, `role` where not offered, `approved`… are refused
# with 422 instead of being silently assigned or dropped.
_STRICT = ConfigDict(extra="forbid")


class KeyCreate(BaseModel):
    model_config = _STRICT
    name: str = Field(min_length=1, max_length=200)
    role: Literal["admin", "developer", "runner", "viewer"] = "runner"


class HookCreate(BaseModel):
    model_config = _STRICT
    agent: str = Field(min_length=1, max_length=200)
    scheme: Literal["standard", "stripe"] = "standard"


class SettingsPatch(BaseModel):
    model_config = _STRICT
    name: str | None = Field(default=None, min_length=1, max_length=200)
    webhook_tolerance_s: int | None = Field(default=None, ge=1, le=3600)


def _security(request: Request) -> Security:
    security: Security = request.app.state.security
    return security


# -- keys --------------------------------------------------------------------------------------


@router.post("/keys", status_code=201)
async def create_key(body: KeyCreate, principal: Admin, request: Request) -> dict[str, Any]:
    assert body.role in ROLES
    created = await asyncio.to_thread(
        _security(request).keys.create, body.name, tenant_id=principal.tenant_id, role=body.role
    )
    return {
        "id": created.id,
        "name": created.name,
        "role": created.role,
        "tenant_id": created.tenant_id,
        "secret": created.secret,  # shown once
    }


@router.get("/keys")
async def list_keys(principal: Admin, request: Request) -> list[dict[str, Any]]:
    keys = await asyncio.to_thread(_security(request).keys.list, principal.tenant_id)
    return [
        {
            "id": k.id,
            "name": k.name,
            "role": k.role,
            "created_at": k.created_at.isoformat(),
            "revoked_at": k.revoked_at.isoformat() if k.revoked_at else None,
        }
        for k in keys
    ]


@router.delete("/keys/{key_id}", status_code=204)
async def revoke_key(key_id: str, principal: Admin, request: Request) -> Response:
    revoked = await asyncio.to_thread(_security(request).keys.revoke, key_id, principal.tenant_id)
    if not revoked:
        raise NotFound("key", key_id)
    return Response(status_code=204)


# -- webhook hooks -----------------------------------------------------------------------------


@router.post("/hooks", status_code=201, responses=answers(404))
async def create_hook(body: HookCreate, principal: Admin, request: Request) -> dict[str, Any]:
    request.app.state.engine.agent(body.agent)  # 404 for an agent this server does not serve
    security = _security(request)
    tolerance = await asyncio.to_thread(_tolerance, security, principal.tenant_id)
    hook_id, secret = await asyncio.to_thread(
        security.hooks.create, principal.tenant_id, body.agent, body.scheme, tolerance
    )
    await audit.record_async(
        principal.tenant_id,
        "hook.created",
        {"hook_id": hook_id, "agent": body.agent, "scheme": body.scheme, "by": principal.key_id},
    )
    return {
        "id": hook_id,
        "agent": body.agent,
        "scheme": body.scheme,
        "url": f"/hooks/{hook_id}",
        "secret": secret,
    }


@router.get("/hooks")
async def list_hooks(principal: Admin, request: Request) -> list[dict[str, Any]]:
    hooks = await asyncio.to_thread(_security(request).hooks.list, principal.tenant_id)
    return [
        {
            "id": h.id,
            "agent": h.agent,
            "scheme": h.scheme,
            "url": f"/hooks/{h.id}",
            "secrets": len(h.secret_names),
            "tolerance_s": h.tolerance_s,
        }
        for h in hooks
    ]


@router.post("/hooks/{hook_id}/rotate")
async def rotate_hook(hook_id: str, principal: Admin, request: Request) -> dict[str, Any]:
    secret = await asyncio.to_thread(_security(request).hooks.rotate, principal.tenant_id, hook_id)
    if secret is None:
        raise NotFound("hook", hook_id)
    await audit.record_async(principal.tenant_id, "hook.rotated", {"hook_id": hook_id})
    return {"id": hook_id, "secret": secret}


@router.delete("/hooks/{hook_id}", status_code=204)
async def revoke_hook(hook_id: str, principal: Admin, request: Request) -> Response:
    if not await asyncio.to_thread(_security(request).hooks.revoke, principal.tenant_id, hook_id):
        raise NotFound("hook", hook_id)
    await audit.record_async(principal.tenant_id, "hook.revoked", {"hook_id": hook_id})
    return Response(status_code=204)


# -- audit -------------------------------------------------------------------------------------


@router.get("/audit/export")
async def export_audit(principal: Admin, request: Request) -> JSONResponse:
    security = _security(request)
    await security.flush_auth_failures()  # the open failure windows belong in the export
    export = await asyncio.to_thread(security.audit.export, principal.tenant_id)
    export["public_keys"] = {
        key_id: base64.b64encode(public_key_raw(key)).decode()
        for key_id, key in security.audit.signer.public_keys().items()
    }
    return JSONResponse(export)


@router.get("/audit/verify")
async def verify_audit(principal: Admin, request: Request) -> dict[str, Any]:
    security = _security(request)
    await security.flush_auth_failures()
    await asyncio.to_thread(security.audit.checkpoint, principal.tenant_id)
    export = await asyncio.to_thread(security.audit.export, principal.tenant_id)
    report = verify_export(export, security.audit.signer.public_keys())
    first = report.first_bad
    return {
        "ok": report.ok,
        "records": report.records,
        "checkpoints": report.checkpoints,
        "signed_records": report.signed_records,
        "first_bad": {"seq": first.seq, "problem": first.problem} if first else None,
    }


# -- tenant settings ---------------------------------------------------------------------------


def _tolerance(security: Security, tenant_id: str) -> int:
    stored = security.tenant_settings.load(tenant_id)
    return int(stored.get("webhook_tolerance_s") or security.webhook_tolerance_s)


@router.get("/settings")
async def get_settings(principal: Admin, request: Request) -> dict[str, Any]:
    security = _security(request)
    values = await asyncio.to_thread(security.tenant_settings.load, principal.tenant_id)
    values.setdefault("webhook_tolerance_s", security.webhook_tolerance_s)
    return {"tenant_id": principal.tenant_id, **values}


@router.patch("/settings")
async def patch_settings(body: SettingsPatch, principal: Admin, request: Request) -> dict[str, Any]:
    security = _security(request)
    changes = body.model_dump(exclude_none=True)
    values = await asyncio.to_thread(security.tenant_settings.update, principal.tenant_id, changes)
    await audit.record_async(
        principal.tenant_id, "config.changed", {"changes": changes, "by": principal.key_id}
    )
    values.setdefault("webhook_tolerance_s", security.webhook_tolerance_s)
    return {"tenant_id": principal.tenant_id, **values}
