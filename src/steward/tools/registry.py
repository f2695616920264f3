"""Tools an agent may call: typed Python functions whose JSON schema comes from their signature.

Tools are read-only unless declared `writes=True`; a write tool receives, through `ToolContext`,
an idempotency key derived from (run id, step number) so a replayed step cannot write twice.
A plain `def` tool runs in a worker thread, an `async def` one on the event loop.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, get_type_hints

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError, create_model

from steward.errors import ToolError, UserError
from steward.models.types import ToolDefinition
from steward.security.secrets import Secret
from steward.tools.resilience import ToolResilience


@dataclass(frozen=True)
class ToolContext:
    """What Steward hands a tool that asks for it (a parameter annotated `ToolContext`)."""

    run_id: str
    tenant_id: str
    step: int
    idempotency_key: str
    call_id: str
    # The run's sandbox manager (a `steward.sandbox.SandboxManager`), for sandbox tools.
    sandboxes: Any = None
    secrets: Callable[[str], Secret] | None = field(default=None, repr=False, compare=False)

    def secret(self, name: str) -> Secret:
        """A tenant secret by name, decrypted now; `.reveal()` it only where it is used."""
        if self.secrets is None:
            raise ToolError("no secret store is available to this tool call")
        return self.secrets(name)


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    fn: Callable[..., Any]
    arguments_model: type[BaseModel]
    context_param: str | None
    writes: bool
    needs_approval: bool = False
    resilience: ToolResilience = field(default_factory=ToolResilience)

    @property
    def read_only(self) -> bool:
        return not self.writes

    def definition(self) -> ToolDefinition:
        schema = self.arguments_model.model_json_schema()
        schema.pop("title", None)
        return ToolDefinition(self.name, self.description, schema)

    def validate(self, arguments: dict[str, Any]) -> dict[str, Any]:
        try:
            model = self.arguments_model.model_validate(arguments)
        except ValidationError as exc:
            raise ToolError(f"invalid arguments for tool {self.name!r}: {exc}") from exc
        return {name: getattr(model, name) for name in type(model).model_fields}

    async def invoke(
        self, arguments: dict[str, Any], context: ToolContext, *, threads: Executor | None = None
    ) -> Any:
        """Validate, call once and return a JSON-ready result (no timeout, retry or breaker:
        the run engine calls tools through `steward.tools.runner.ToolRunner`)."""
        kwargs = self.validate(arguments)
        try:
            return await self.call(kwargs, context, threads=threads)
        except ToolError:
            raise
        except Exception as exc:
            raise self.failed(exc) from exc

    async def call(
        self, kwargs: dict[str, Any], context: ToolContext, *, threads: Executor | None = None
    ) -> Any:
        """One call with validated arguments; the function's own exceptions propagate.

        A plain `def` runs in `threads` (the loop's default pool when None) with the caller's
        context variables, so a tool that blocks holds a worker thread, not the event loop.
        """
        if self.context_param:
            kwargs = {**kwargs, self.context_param: context}
        if inspect.iscoroutinefunction(self.fn):
            result = await self.fn(**kwargs)
        else:
            call = functools.partial(contextvars.copy_context().run, self.fn, **kwargs)
            result = await asyncio.get_running_loop().run_in_executor(threads, call)
            if inspect.isawaitable(result):  # e.g. a callable object with an async __call__
                result = await result
        return TypeAdapter(Any).dump_python(result, mode="json")

    def failed(self, exc: BaseException) -> ToolError:
        """The `ToolError` the model sees for an exception the function raised."""
        if isinstance(exc, ToolError):
            return exc
        return ToolError(f"tool {self.name!r} failed: {type(exc).__name__}: {exc}")


def make_tool(
    fn: Callable[..., Any],
    *,
    name: str | None = None,
    description: str | None = None,
    writes: bool = False,
    needs_approval: bool = False,
    resilience: ToolResilience | None = None,
) -> Tool:
    """Build a `Tool` from a typed function; every parameter but a `ToolContext` needs a type."""
    hints = get_type_hints(fn)
    fields: dict[str, Any] = {}
    context_param: str | None = None
    for param in inspect.signature(fn).parameters.values():
        annotation = hints.get(param.name)
        if annotation is ToolContext:
            context_param = param.name
            continue
        if annotation is None:
            raise UserError(f"tool {fn.__name__!r}: parameter {param.name!r} needs a type hint")
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[param.name] = (annotation, default)
    model = create_model(
        f"{fn.__name__}_arguments", __config__=ConfigDict(extra="forbid"), **fields
    )
    doc = inspect.getdoc(fn) or ""
    return Tool(
        name=name or fn.__name__,
        description=description or doc.split("\n\n")[0].replace("\n", " ") or fn.__name__,
        fn=fn,
        arguments_model=model,
        context_param=context_param,
        writes=writes,
        needs_approval=needs_approval,
        resilience=resilience or ToolResilience(),
    )
