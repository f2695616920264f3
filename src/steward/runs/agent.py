"""An agent as Steward serves it: the user's async function plus its declared limits and tools."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, get_type_hints

from pydantic import BaseModel, ValidationError

from steward.errors import InvalidInput, UserError
from steward.policy.declaration import AgentPolicy

AgentFn = Callable[[Any, Any], Awaitable[Any]]


@dataclass(frozen=True)
class Limits:
    """Declared caps the engine enforces; visible through the API (DESIGN invariant 4)."""

    max_steps: int = 30
    timeout_s: float = 300.0
    max_cost_usd: float | None = None
    approval_timeout_s: float = 86_400.0  # a paused call not decided by then is rejected

    def to_json(self) -> dict[str, Any]:
        return {
            "max_steps": self.max_steps,
            "timeout_s": self.timeout_s,
            "max_cost_usd": self.max_cost_usd,
            "approval_timeout_s": self.approval_timeout_s,
        }


@dataclass(frozen=True)
class Agent:
    name: str
    fn: AgentFn
    input_model: type[BaseModel]
    output_model: type[BaseModel] | None  # None: the agent returns a plain string
    limits: Limits
    model: str | None
    tools: tuple[str, ...] | None  # allowlist; None means every tool of the app
    description: str
    policy: AgentPolicy = field(default_factory=AgentPolicy)
    tool_search: bool = False  # the model gets `search_tools` and loads the schemas it picks

    def parse_input(self, data: Any) -> BaseModel:
        """Validate run input; `InvalidInput` (the caller's mistake, a 422) when it fails."""
        try:
            return self.input_model.model_validate(data)
        except ValidationError as exc:
            raise InvalidInput(
                f"the input does not match agent {self.name!r}'s input model",
                [dict(error) for error in exc.errors()],
            ) from exc

    def dump_output(self, result: Any) -> dict[str, Any]:
        """The run's JSON output: the output model's fields, or `{"output": text}`."""
        if self.output_model is None:
            if not isinstance(result, str):
                raise UserError(f"agent {self.name!r} is declared to return str")
            return {"output": result}
        try:
            model = self.output_model.model_validate(result)
        except ValidationError as exc:
            raise UserError(f"agent {self.name!r} returned an invalid output: {exc}") from exc
        return model.model_dump(mode="json")

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "input_schema": self.input_model.model_json_schema(),
            "output_schema": (
                self.output_model.model_json_schema()
                if self.output_model
                else {"type": "object", "properties": {"output": {"type": "string"}}}
            ),
            "limits": self.limits.to_json(),
            "model": self.model,
            "tools": list(self.tools) if self.tools is not None else None,
            "policy": self.policy.to_json(),
            "tool_search": self.tool_search,
        }


def make_agent(
    fn: AgentFn,
    *,
    name: str,
    limits: Limits,
    model: str | None,
    tools: tuple[str, ...] | None,
    description: str | None,
    policy: AgentPolicy | None = None,
    tool_search: bool = False,
) -> Agent:
    """Read the input and output models off `async def f(ctx, input: Model) -> Model | str`."""
    if not inspect.iscoroutinefunction(fn):
        raise UserError(f"agent {name!r} must be an `async def`")
    params = list(inspect.signature(fn).parameters.values())
    if len(params) != 2:
        raise UserError(f"agent {name!r} must take exactly (ctx, input)")
    hints = get_type_hints(fn)
    input_model = hints.get(params[1].name)
    if not (inspect.isclass(input_model) and issubclass(input_model, BaseModel)):
        raise UserError(f"agent {name!r}: annotate its input with a Pydantic model")
    output = hints.get("return")
    if output is str:
        output_model = None
    elif inspect.isclass(output) and issubclass(output, BaseModel):
        output_model = output
    else:
        raise UserError(f"agent {name!r}: annotate its return as a Pydantic model or str")
    if limits.max_steps < 1 or limits.timeout_s <= 0:
        raise UserError(f"agent {name!r}: max_steps and timeout_s must be positive")
    return Agent(
        name=name,
        fn=fn,
        input_model=input_model,
        output_model=output_model,
        limits=limits,
        model=model,
        tools=tools,
        description=description or (inspect.getdoc(fn) or "").split("\n\n")[0],
        policy=policy or AgentPolicy(),
        tool_search=tool_search,
    )
