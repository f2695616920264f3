"""The roles an API key or token can hold, in a module of their own: the command line names them
in its help without loading the key store."""

from __future__ import annotations

ROLES = ("admin", "developer", "runner", "viewer")
