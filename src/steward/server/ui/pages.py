"""Rendering for the dashboard: the Jinja2 environment, filters, and the session-aware helpers
every page uses (who is logged in, the CSRF token, redirects)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.responses import HTMLResponse, RedirectResponse

from steward.security.keys import Principal
from steward.server.auth import WRITE_ROLES
from steward.server.ui.session import SESSION_COOKIE, SessionSigner, principal_of

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
_templates = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def _when(moment: datetime | None) -> str:
    if moment is None:
        return "—"
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.strftime("%Y-%m-%d %H:%M:%S")


def _usd(value: float | None) -> str:
    return f"${value or 0:.6f}"


def _seconds(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)


_templates.filters.update(when=_when, usd=_usd, seconds=_seconds, pretty=_pretty)


def signer(request: Request) -> SessionSigner:
    state = request.app.state
    found: SessionSigner | None = getattr(state, "ui_sessions", None)
    if found is None:
        found = state.ui_sessions = SessionSigner.from_settings(state.runtime.settings)
    return found


async def viewer(request: Request) -> tuple[Principal, str] | None:
    """The logged-in principal and its CSRF token, or None without a valid session."""
    session = signer(request).read(request.cookies.get(SESSION_COOKIE))
    if session is None:
        return None
    principal = await asyncio.to_thread(principal_of, request.app.state.db, session)
    if principal is None:
        return None
    return principal, signer(request).csrf(session.nonce)


def render(
    request: Request,
    template: str,
    *,
    who: tuple[Principal, str] | None = None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    principal, csrf = who if who is not None else (None, "")
    html = _templates.get_template(template).render(
        principal=principal,
        csrf=csrf,
        can_write=principal is not None and principal.role in WRITE_ROLES,
        path=request.url.path,
        **context,
    )
    return HTMLResponse(
        html,
        status_code=status_code,
        headers={
            "Cache-Control": "no-store",
            # Everything the pages need is served from /ui/static: nothing else may load.
            "Content-Security-Policy": "default-src 'self'; style-src 'self'; "
            "img-src 'self' data:; frame-ancestors 'none'; form-action 'self'",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin",
        },
    )


def to_login() -> RedirectResponse:
    return RedirectResponse("/ui/login", status_code=303)


async def form_fields(request: Request) -> dict[str, str]:
    """A urlencoded form body, without python-multipart: the dashboard's forms are small."""
    from urllib.parse import parse_qs

    body = (await request.body()).decode("utf-8", errors="replace")
    return {k: v[-1] for k, v in parse_qs(body, keep_blank_values=True).items()}
