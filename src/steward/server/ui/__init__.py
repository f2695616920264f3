"""The web dashboard at `/ui`: server-rendered pages over the same tenant-scoped stores as the
API, a signed session cookie instead of an API key header, and no asset from outside."""

from steward.server.ui.pages import STATIC_DIR
from steward.server.ui.routes import router

__all__ = ["STATIC_DIR", "router"]
