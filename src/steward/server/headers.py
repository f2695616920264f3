"""Reading a few request headers straight from the ASGI scope, without decoding the rest."""

from __future__ import annotations

from starlette.types import Scope

__all__ = ["pick_headers"]


def pick_headers(scope: Scope, names: frozenset[bytes]) -> dict[str, str]:
    """The headers among `names` (lower-case bytes), by lower-case name; middleware on the hot
    path reads two or three headers, and decoding every one of them per request showed in the
    gateway's profile."""
    found: dict[str, str] = {}
    for name, value in scope["headers"]:
        lowered = name.lower()
        if lowered in names:
            found[lowered.decode("latin-1")] = value.decode("latin-1")
    return found
