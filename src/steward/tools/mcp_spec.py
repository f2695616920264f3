"""How an app declares a remote MCP server (`app.add_mcp_server`): plain data, so declaring one
loads nothing of the MCP SDK; the SDK is imported when the runtime first connects."""

from __future__ import annotations

from dataclasses import dataclass, field

from steward.errors import UserError
from steward.tools.oauth import ClientCredentials


@dataclass(frozen=True)
class MCPServerSpec:
    """A remote MCP server whose tools an app's agents may call.

    Exactly one of `url` (streamable HTTP) or `command` (stdio: a local process Steward starts).
    `token_secret` names a secret in the calling tenant's secret store sent as `Authorization:
    Bearer`; `oauth` instead has Steward fetch the token with OAuth 2.1 client credentials
    (`steward.tools.oauth`); `tenant`, when set, limits the server to that tenant's runs (and
    names whose secret is used to import its tools at start; otherwise the `default` tenant's).
    """

    name: str
    url: str | None = None
    command: str | None = None
    hosted: str | None = None
    """A deployment of this Steward (`steward mcp deploy`), reached through its socket."""
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    token_secret: str | None = None
    oauth: ClientCredentials | None = None
    tenant: str | None = None
    timeout_s: float = 30.0
    connect_timeout_s: float = 15.0
    max_response_bytes: int = 4_000_000
    max_result_bytes: int = 200_000
    """A tool result larger than this (as JSON) is refused: it would flood the model's context."""
    approve_destructive: bool = False
    """Calls of tools the server marks `destructiveHint` always wait for a person's approval."""
    breaker_failures: int = 5

    def __post_init__(self) -> None:
        if [self.url, self.command, self.hosted].count(None) != 2:
            raise UserError(f"MCP server {self.name!r}: give exactly one of url, command, hosted")
        if not self.name.replace("_", "").replace("-", "").isalnum() or len(self.name) > 32:
            raise UserError(f"MCP server name {self.name!r}: letters, digits, '_' or '-', <= 32")
        if self.timeout_s <= 0 or self.max_response_bytes <= 0 or self.max_result_bytes <= 0:
            raise UserError(f"MCP server {self.name!r}: timeouts and limits must be positive")
        if self.oauth is not None and (self.url is None or self.token_secret is not None):
            raise UserError(f"MCP server {self.name!r}: oauth needs a url and no token_secret")

    @property
    def transport(self) -> str:
        return "stdio" if self.command is not None else "streamable_http"
