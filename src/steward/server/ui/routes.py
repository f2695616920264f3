"""The dashboard at `/ui`: login, runs, run detail (waterfall, approvals), threads, costs and
health. Server-rendered HTML; `static/dashboard.js` only polls fragments to keep pages live.

Every query runs within the logged-in key's tenant, as the API's do; deciding an approval needs
a role that may write, as `POST /runs/{id}/approvals/{id}` does.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse

from steward.audit.failures import Failure
from steward.errors import ApiError
from steward.observe.trace_store import list_run_spans
from steward.runs.engine import RunEngine
from steward.security.keys import Principal
from steward.server.auth import UNATTRIBUTED_TENANT, WRITE_ROLES
from steward.server.schemas import ApprovalDecision
from steward.server.ui import cost_query, health_query
from steward.server.ui.pages import form_fields, render, signer, to_login, viewer
from steward.server.ui.run_query import RunFilters, list_runs, run_duration_s
from steward.server.ui.session import LOGIN_COOKIE, SESSION_COOKIE
from steward.server.ui.waterfall import build_waterfall
from steward.store.runs import is_open

router = APIRouter(prefix="/ui", include_in_schema=False)


def _cookie(response: Response, request: Request, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/ui",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def _missing(request: Request, who: tuple[Principal, str], what: str, id: str) -> Response:
    """Unknown, or another tenant's: the same 404 either way."""
    return render(request, "missing.html", who=who, what=what, id=id, status_code=404)


# -- login -------------------------------------------------------------------------------------


@router.get("", response_class=HTMLResponse)
@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request) -> Response:
    if await viewer(request) is not None:
        return RedirectResponse("/ui/runs", status_code=303)
    return _login(request, error=None, status_code=200)


def _login(request: Request, *, error: str | None, status_code: int) -> Response:
    nonce = secrets.token_urlsafe(16)
    response = render(
        request,
        "login.html",
        login_csrf=signer(request).csrf("login." + nonce),
        error=error,
        status_code=status_code,
    )
    _cookie(response, request, LOGIN_COOKIE, nonce, 3600)
    return response


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    fields = await form_fields(request)
    nonce = request.cookies.get(LOGIN_COOKIE)
    if not signer(request).csrf_ok(nonce and "login." + nonce, fields.get("csrf")):
        return _login(request, error="The form expired; try again.", status_code=403)
    key = fields.get("api_key", "").strip()
    keys = request.app.state.keys
    principal = await asyncio.to_thread(keys.authenticate, key) if key else None
    if principal is None:
        _record_failure(request, key)
        return _login(request, error="That API key is unknown or revoked.", status_code=401)
    cookie, _ = signer(request).issue(principal)
    response = RedirectResponse("/ui/runs", status_code=303)
    _cookie(response, request, SESSION_COOKIE, cookie, int(signer(request).ttl_s))
    response.delete_cookie(LOGIN_COOKIE, path="/ui")
    return response


def _record_failure(request: Request, key: str) -> None:
    client = request.client
    request.app.state.security.auth_failures.add(
        Failure(
            tenant_id=UNATTRIBUTED_TENANT,
            source=client.host if client else None,
            reason="dashboard login with an unknown or revoked key",
            method="POST",
            path="/ui/login",
            key_prefix=key[:17] if key.startswith("stw_") else None,
        )
    )


@router.post("/logout")
async def logout(request: Request) -> Response:
    who = await viewer(request)
    fields = await form_fields(request)
    if who is not None and fields.get("csrf") != who[1]:
        return HTMLResponse("CSRF token missing or wrong", status_code=403)
    response = RedirectResponse("/ui", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/ui")
    return response


# -- runs --------------------------------------------------------------------------------------


@router.get("/runs", response_class=HTMLResponse)
@router.get("/runs/rows", response_class=HTMLResponse)
async def runs_page(request: Request) -> Response:
    who = await viewer(request)
    if who is None:
        return to_login()
    fragment = request.url.path.endswith("/rows")
    try:
        filters = RunFilters.parse(dict(request.query_params))
    except ValidationError as exc:
        problems = _problems(exc)
        return render(
            request,
            "runs.html",
            who=who,
            filters=RunFilters(),
            runs=[],
            more=False,
            error=problems,
            status_code=400,
        )
    runs, more = await asyncio.to_thread(list_runs, request.app.state.db, who[0].tenant_id, filters)
    return render(
        request,
        "run_rows.html" if fragment else "runs.html",
        who=who,
        filters=filters,
        runs=[(run, run_duration_s(run)) for run in runs],
        more=more,
        error=None,
    )


@router.get("/runs/{run_id}", response_class=HTMLResponse)
@router.get("/runs/{run_id}/live", response_class=HTMLResponse)
async def run_page(run_id: str, request: Request) -> Response:
    who = await viewer(request)
    if who is None:
        return to_login()
    engine: RunEngine = request.app.state.engine
    try:
        run = await engine.get(who[0].tenant_id, run_id)
    except ApiError:  # unknown, or another tenant's: the same answer
        return _missing(request, who, "run", run_id)
    if not is_open(run):
        await asyncio.to_thread(request.app.state.tracing.force_flush, 5_000)
    spans = await asyncio.to_thread(list_run_spans, request.app.state.db, who[0].tenant_id, run_id)
    approvals = await asyncio.to_thread(engine.approvals.for_run, who[0].tenant_id, run_id)
    return render(
        request,
        "run_live.html" if request.url.path.endswith("/live") else "run.html",
        who=who,
        run=run,
        open=is_open(run),
        duration=run_duration_s(run),
        waterfall=build_waterfall(spans),
        approvals=approvals,
        error=request.query_params.get("error"),
    )


@router.get("/runs/{run_id}/events")
async def run_events(run_id: str, request: Request) -> Response:
    """The run's live events as Server-Sent Events, each `data: {"event", "data"}`, closed
    by `{"event": "end"}` when the run ends or pauses for approval. Messages only: the
    browser's EventSource reserves the `error` event name for its own connection errors."""
    who = await viewer(request)
    if who is None:
        return to_login()
    engine: RunEngine = request.app.state.engine
    try:
        await engine.get(who[0].tenant_id, run_id)
    except ApiError:
        return _missing(request, who, "run", run_id)

    async def stream() -> AsyncIterator[bytes]:
        async for _, event in engine.events(who[0].tenant_id, run_id):
            yield _sse({"event": event["event"], "data": event["data"]})
        yield _sse({"event": "end"})

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def _sse(message: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(message, default=str)}\n\n".encode()


@router.post("/runs/{run_id}/approvals/{approval_id}")
async def decide(run_id: str, approval_id: str, request: Request) -> Response:
    who = await viewer(request)
    if who is None:
        return to_login()
    principal, csrf = who
    fields = await form_fields(request)
    if fields.get("csrf") != csrf:
        return render(request, "denied.html", who=who, reason="CSRF token", status_code=403)
    if principal.role not in WRITE_ROLES:
        reason = f"role {principal.role!r} may not decide approvals"
        return render(request, "denied.html", who=who, reason=reason, status_code=403)
    engine: RunEngine = request.app.state.engine
    approval = await asyncio.to_thread(engine.approvals.get, principal.tenant_id, approval_id)
    if approval is None or approval.run_id != run_id:
        return _missing(request, who, "approval", approval_id)
    try:
        body = _decision(fields)
        await engine.decide(
            principal.tenant_id,
            approval_id,
            approve=body.decision == "approve",
            arguments=body.arguments,
            comment=body.comment,
            decided_by=principal.key_id,
        )
    except (ValueError, RecursionError, ApiError) as exc:
        return RedirectResponse(f"/ui/runs/{run_id}?error={quote(_reason(exc))}", status_code=303)
    return RedirectResponse(f"/ui/runs/{run_id}", status_code=303)


def _decision(fields: dict[str, str]) -> ApprovalDecision:
    """The form as the API's own decision body, checked by the same model."""
    raw = fields.get("arguments", "").strip()
    decision = fields.get("decision")
    arguments = json.loads(raw) if raw and decision == "approve" else None
    return ApprovalDecision.model_validate(
        {"decision": decision, "arguments": arguments, "comment": fields.get("comment") or None}
    )


def _problems(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'form'}: {e['msg']}" for e in exc.errors())


def _reason(exc: Exception) -> str:
    if isinstance(exc, ApiError):
        return exc.detail or exc.title
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'form'}: {e['msg']}" for e in exc.errors()
        )
    if isinstance(exc, RecursionError):
        return "the arguments are nested too deeply"
    return f"the arguments are not JSON: {exc}"


# -- threads, costs, health --------------------------------------------------------------------


@router.get("/threads", response_class=HTMLResponse)
async def threads_page(request: Request) -> Response:
    who = await viewer(request)
    if who is None:
        return to_login()
    engine: RunEngine = request.app.state.engine
    threads = await asyncio.to_thread(engine.threads.search, who[0].tenant_id, limit=100)
    return render(request, "threads.html", who=who, threads=threads)


@router.get("/threads/{thread_id}", response_class=HTMLResponse)
async def thread_page(thread_id: str, request: Request) -> Response:
    who = await viewer(request)
    if who is None:
        return to_login()
    engine: RunEngine = request.app.state.engine
    thread = await asyncio.to_thread(engine.store.get_thread, who[0].tenant_id, thread_id)
    if thread is None:
        return _missing(request, who, "thread", thread_id)
    history = await asyncio.to_thread(engine.threads.history, who[0].tenant_id, thread_id, 50)
    runs = await asyncio.to_thread(
        engine.store.list_runs, who[0].tenant_id, thread_id=thread_id, limit=50
    )
    return render(request, "thread.html", who=who, thread=thread, history=history, runs=runs)


@router.get("/costs", response_class=HTMLResponse)
async def costs_page(request: Request) -> Response:
    who = await viewer(request)
    if who is None:
        return to_login()
    by = request.query_params.get("by", "agent")
    days_raw = request.query_params.get("days", "14")
    if by not in cost_query.DIMENSIONS or not days_raw.isdigit() or not 1 <= int(days_raw) <= 366:
        return render(
            request,
            "denied.html",
            who=who,
            reason="by must be one of agent, user, key, tenant, model; days 1 to 366",
            status_code=400,
        )
    days = int(days_raw)
    gateway = request.app.state.gateway
    if gateway.ledger is not None:
        await gateway.ledger.flush()
    rows = await asyncio.to_thread(
        cost_query.spend_by_day,
        request.app.state.db,
        who[0].tenant_id,
        by,
        days,
    )
    daily = cost_query.daily_totals(rows, days)
    groups: dict[str, list[float]] = {}
    for row in rows:
        totals = groups.setdefault(row.group, [0, 0, 0, 0.0])
        totals[0] += row.calls
        totals[1] += row.input_tokens
        totals[2] += row.output_tokens
        totals[3] += row.cost_usd
    caps = await cost_query.cap_use(gateway, who[0].tenant_id, who[0].key_id)
    peak = max((usd for _, usd in daily), default=0.0)
    return render(
        request,
        "costs.html",
        who=who,
        by=by,
        days=days,
        dimensions=cost_query.DIMENSIONS,
        daily=daily,
        peak=peak,
        groups=sorted(groups.items(), key=lambda item: -item[1][3]),
        rows=rows,
        caps=caps,
    )


@router.get("/health", response_class=HTMLResponse)
async def health_page(request: Request) -> Response:
    who = await viewer(request)
    if who is None:
        return to_login()
    runtime = request.app.state.runtime
    health = await asyncio.to_thread(
        health_query.read_health,
        runtime.db,
        who[0].tenant_id,
        runtime.gateway,
        runtime.engine.tool_runner.metrics,
        runtime.settings.worker_stale_after_s,
    )
    return render(request, "health.html", who=who, health=health)
