"""`GET /info` and `GET /ok`: LangGraph Platform's server description and liveness check.

Both are public, as on LangGraph's server (and as `/healthz` here): they reveal no tenant data.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

from fastapi import APIRouter

router = APIRouter(tags=["health"])


def _version() -> str:
    try:
        return version("steward")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "0+unknown"


@router.get("/ok")
async def ok() -> dict[str, bool]:
    return {"ok": True}


@router.get("/info")
async def info() -> dict[str, Any]:
    """The server's version and which LangGraph Platform features it offers."""
    return {
        "version": _version(),
        "flags": {
            "assistants": True,
            "crons": True,
            "store": True,
            "langsmith": False,
            "strict_resume": False,
        },
        "metadata": {"server": "steward"},
    }
