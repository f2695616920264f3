"""Steward's exception hierarchy: signals, developer mistakes and run failures kept apart.

```
StewardError
├── UserError                 a developer's or a caller's mistake (bad decorator use, bad input)
│   ├── InvalidInput          run input that fails the agent's input model
│   └── ConfigError           invalid settings or missing credentials: the server's fault
│       └── UnknownModel      a model string that names nothing this server can serve
├── RunSignal                 control flow in a run; the engine turns each into a terminal status
│   ├── StepLimitExceeded     max_steps reached          -> status limit_exceeded
│   ├── CostLimitExceeded     max_cost_usd reached       -> status limit_exceeded
│   ├── SpendCapExceeded      a spend cap would be passed -> status limit_exceeded (spend_cap)
│   ├── WallTimeExceeded      timeout_s reached          -> status timeout
│   ├── RunCancelled          cancelled through the API  -> status interrupted
│   └── PolicyStopped         a policy rule ended the run (loop, goal rule, rejected input)
├── RunError                  a failure during a run
│   ├── ToolError             a tool raised or got bad arguments
│   │   ├── PolicyBlocked     policy refused the call or holds it for a human's approval
│   │   └── Retryable         a tool's transient failure: retried within its `retries`
│   ├── SandboxError          a sandbox refused or failed an operation
│   │   ├── SandboxUnavailable  the backend cannot run here or is not enabled
│   │   │   └── SandboxBackendRefused  ...the one the caller asked for
│   │   ├── SandboxPathRefused  a file path leaves the sandbox's work directory
│   │   └── SandboxStateError   the sandbox is gone, failed, or cannot do that in its state
│   └── ModelError            a provider call failed (after the gateway's retries)
│       ├── ModelHTTPError    the provider answered with an error status
│       └── ModelStreamError  the stream broke or was malformed
└── ApiError                  an HTTP-facing failure carrying its problem type and status
```

Every third-party exception is translated at the boundary (`raise ... from exc`), and every
family maps to one HTTP status class in `steward.server.problems`: a caller's mistake is a 4xx,
the server's (a `ConfigError`, a sandbox backend this host lacks, any other exception) a 5xx.
"""

from __future__ import annotations

from typing import Any


class StewardError(Exception):
    """Base of every exception Steward raises on purpose."""


class UserError(StewardError):
    """A developer's mistake: fix the code or the configuration."""


class InvalidInput(UserError):
    """Input that fails validation against the model that describes it (a run's input).

    `errors` are pydantic's error dicts (`loc`, `msg`, `type`).
    """

    def __init__(self, message: str, errors: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.errors = errors


class ConfigError(UserError):
    """Invalid settings or missing provider credentials: over HTTP, a server fault."""


class UnknownModel(ConfigError):
    """A model string names no model this server can serve (no accepted form, or a provider
    without credentials): the caller's mistake when a request carried it, the configuration's
    when an agent or a setting did."""


class RunSignal(StewardError):
    """Control flow inside a run; never escapes the engine."""

    status: str = "error"
    reason: str = "signal"


class StepLimitExceeded(RunSignal):
    status = "limit_exceeded"
    reason = "max_steps"


class CostLimitExceeded(RunSignal):
    status = "limit_exceeded"
    reason = "max_cost"


class SpendCapExceeded(RunSignal):
    """A model call was refused because its reservation would pass a spend cap.

    `cap` names the cap (`run`, `user_daily`, `key_daily`, `key_monthly`, `tenant_monthly`),
    `limit_usd` its size and `resets_at` (ISO 8601, None for a run's cap) when it starts over.
    """

    status = "limit_exceeded"
    reason = "spend_cap"

    def __init__(
        self,
        message: str,
        *,
        cap: str = "",
        limit_usd: float | None = None,
        resets_at: str | None = None,
    ) -> None:
        super().__init__(message)
        self.cap = cap
        self.limit_usd = limit_usd
        self.resets_at = resets_at


class WallTimeExceeded(RunSignal):
    status = "timeout"
    reason = "wall_time"


class RunCancelled(RunSignal):
    status = "interrupted"
    reason = "cancelled"


class PolicyStopped(RunSignal):
    """A policy rule ended the run; `reason` names the rule (e.g. `loop`, `goal_refused`)."""

    def __init__(self, message: str, *, reason: str, status: str = "error") -> None:
        super().__init__(message)
        self.reason = reason
        self.status = status


class RunError(StewardError):
    """A failure during a run."""


class ToolError(RunError):
    """A tool raised, was unknown, or received arguments that failed validation."""


class PolicyBlocked(ToolError):
    """Policy refused a tool call, or holds it for approval; the tool did not run."""

    def __init__(self, message: str, decision: Any = None) -> None:
        super().__init__(message)
        self.decision = decision


class Retryable(ToolError):
    """Raised by a tool for a transient failure (a busy service, a dropped connection).

    The call is tried again, with backoff, up to the tool's `retries`; a write tool is retried
    with the same `ToolContext.idempotency_key`. Once retries run out the model sees the error.
    """


class SandboxError(RunError):
    """A sandbox refused or failed an operation."""


class SandboxUnavailable(SandboxError):
    """The sandbox backend cannot run on this machine, or is not enabled."""


class SandboxBackendRefused(SandboxUnavailable):
    """The backend a caller asked for cannot run here or is not enabled; it may pick another
    (where no backend at all is the server's fault)."""


class SandboxPathRefused(SandboxError):
    """A file path is absolute, climbs with `..`, holds NUL, or crosses a symlink."""


class SandboxStateError(SandboxError):
    """The sandbox is deleted or failed, or its backend cannot do that (e.g. cold standby)."""


class ModelError(RunError):
    """A model provider call failed."""

    def __init__(self, message: str, *, provider: str = "", retryable: bool = False) -> None:
        super().__init__(message)
        self.provider = provider
        self.retryable = retryable


class ModelHTTPError(ModelError):
    """The provider answered with an HTTP error status."""

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        status_code: int,
        retryable: bool,
        retry_after_s: float | None = None,
        error_type: str | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(message, provider=provider, retryable=retryable)
        self.status_code = status_code
        self.retry_after_s = retry_after_s
        self.error_type = error_type
        self.body = body


class ModelStreamError(ModelError):
    """The provider's stream ended early or carried an error event."""


class ApiError(StewardError):
    """An error answered over HTTP as `application/problem+json`.

    `kind` is the last segment of the stable problem `type` URI.
    """

    def __init__(
        self,
        status: int,
        kind: str,
        title: str,
        detail: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.kind = kind
        self.title = title
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra or {}


class NotFound(ApiError):
    def __init__(self, what: str, ident: str) -> None:
        super().__init__(404, "not-found", "Not found", f"{what} {ident!r} does not exist")


class Unauthenticated(ApiError):
    def __init__(self, detail: str) -> None:
        super().__init__(
            401,
            "unauthenticated",
            "Authentication required",
            detail,
            headers={"WWW-Authenticate": 'Bearer realm="steward"'},
        )


class Forbidden(ApiError):
    def __init__(self, detail: str) -> None:
        super().__init__(403, "forbidden", "Forbidden", detail)


class Conflict(ApiError):
    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(409, kind, "Conflict", detail)
