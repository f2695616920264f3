"""Tools declared by a JSON Schema instead of a typed function signature.

```python
async def refund(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]: ...

app.add_tool(
    name="refund",
    description="Refund an order.",
    input_schema={"type": "object", "properties": {"order_id": {"type": "integer"}},
                  "required": ["order_id"], "additionalProperties": False},
    handler=refund,
    writes=True,
)
```

Arguments are validated against the schema (JSON Schema 2020-12, the `jsonschema` package)
before the handler runs; a mismatch is a `ToolError` naming every failing path, which the model
sees as the tool's answer (the equivalent of a 422) and is neither retried nor counted against
the tool's breaker. MCP tools, remote HTTP tools and generated tools are all `SchemaTool`s.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import BaseModel, ConfigDict, TypeAdapter

from steward.errors import ToolError, UserError
from steward.models.types import ToolDefinition
from steward.tools.registry import Tool, ToolContext
from steward.tools.resilience import ToolResilience

Handler = Callable[[dict[str, Any], ToolContext], Awaitable[Any]]
MAX_REPORTED_ERRORS = 8
"""Validation errors listed in one message: enough to fix the call, bounded for the context."""


class _AnyArguments(BaseModel):
    """Placeholder for `Tool.arguments_model`: a schema tool validates with its own schema."""

    model_config = ConfigDict(extra="allow")


@dataclass(frozen=True)
class SchemaTool(Tool):
    """A tool whose arguments are described, and checked, by a JSON Schema object."""

    input_schema: dict[str, Any] = field(default_factory=dict)
    validator: Draft202012Validator | None = field(default=None, repr=False, compare=False)
    source: str | None = None
    """Where the tool comes from when it is not this app's code (e.g. `mcp:<server>`)."""
    tenant: str | None = None
    """The only tenant whose runs see and may call it (None: every tenant)."""

    def definition(self) -> ToolDefinition:
        return ToolDefinition(self.name, self.description, self.input_schema)

    def validate(self, arguments: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(arguments, dict):
            raise ToolError(f"invalid arguments for tool {self.name!r}: expected a JSON object")
        assert self.validator is not None  # set by make_schema_tool
        errors = sorted(self.validator.iter_errors(arguments), key=lambda e: list(e.path))
        if errors:
            raise ToolError(_describe(self.name, errors))
        return dict(arguments)

    async def call(
        self, kwargs: dict[str, Any], context: ToolContext, *, threads: Executor | None = None
    ) -> Any:
        """Call the handler with the validated arguments and the call's context."""
        result = self.fn(dict(kwargs), context)
        if inspect.isawaitable(result):
            result = await result
        return TypeAdapter(Any).dump_python(result, mode="json")


def _describe(name: str, errors: list[Any]) -> str:
    lines = []
    for error in errors[:MAX_REPORTED_ERRORS]:
        path = "/".join(str(p) for p in error.absolute_path) or "(root)"
        lines.append(f"{path}: {error.message[:300]}")
    more = len(errors) - MAX_REPORTED_ERRORS
    if more > 0:
        lines.append(f"... and {more} more")
    return f"invalid arguments for tool {name!r} (fix them and call again): " + "; ".join(lines)


def check_input_schema(name: str, schema: Any) -> dict[str, Any]:
    """The schema, if it is a valid JSON Schema (2020-12) for an object; `UserError` if not."""
    if not isinstance(schema, Mapping):
        raise UserError(f"tool {name!r}: input_schema must be a JSON object")
    checked: dict[str, Any] = {str(key): value for key, value in schema.items()}
    try:
        Draft202012Validator.check_schema(checked)
    except SchemaError as exc:
        raise UserError(
            f"tool {name!r}: input_schema is not valid JSON Schema: {exc.message}"
        ) from exc
    declared = checked.get("type", "object")
    if declared != "object":
        raise UserError(f"tool {name!r}: input_schema must describe an object, not {declared!r}")
    return checked


def make_schema_tool(
    *,
    name: str,
    description: str,
    input_schema: Mapping[str, Any],
    handler: Handler,
    writes: bool = False,
    needs_approval: bool = False,
    resilience: ToolResilience | None = None,
    source: str | None = None,
    tenant: str | None = None,
) -> SchemaTool:
    """Build a `SchemaTool`; the handler is `async def handler(args, ctx) -> JSON-ready`.

    Read-only unless `writes=True`, as with `@app.tool`; tools imported from elsewhere (MCP)
    decide `writes` from what their server declares, and treat silence as writing.
    """
    if not name or not callable(handler):
        raise UserError("add_tool needs a name and a callable handler(args, ctx)")
    schema = check_input_schema(name, input_schema)
    return SchemaTool(
        name=name,
        description=description or name,
        fn=handler,
        arguments_model=_AnyArguments,
        # The handler always receives the context: write tools get their idempotency key.
        context_param="ctx",
        writes=writes,
        needs_approval=needs_approval,
        resilience=resilience or ToolResilience(),
        input_schema=schema,
        validator=Draft202012Validator(schema),
        source=source,
        tenant=tenant,
    )
