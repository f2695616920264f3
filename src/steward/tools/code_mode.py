"""Code execution with tools: the model writes one Python program that calls the agent's tools;
it runs in the run's sandbox, and only what it prints comes back to the model.

```python
@app.agent(tools=["search_invoice", "create_refund"])
async def billing(ctx: Context, input: Ask) -> str:
    return (await ctx.code_mode().loop(input.message)).text
```

The model is offered one tool, `run_code_with_tools(code)`, whose description is a typed Python
module `tools` with one function per agent tool. Inside the sandbox each call crosses the
boundary through a narrow channel: the program stops at a call it has no answer for, printing
one marked line (`tool`, `arguments`) and exiting with status 77; Steward makes that call with
`ctx.tool` (the same validation, policy decision, approval, idempotency key, caps, span and
journaled step as a direct call; the policy treats it as the model's choice), then runs the
program again with the answers so far on its stdin, until it ends. The program must therefore
be deterministic up to each call (what it does between calls is re-done, inside the sandbox
only); intermediate results stay in the sandbox unless printed. On a resumed run the tool calls
replay from the journal in the same order.
"""

from __future__ import annotations

import json
import keyword
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from steward.errors import ToolError, UserError
from steward.models.types import Message, ModelResponse, ToolCall, ToolDefinition
from steward.sandbox.manager import CreateOptions
from steward.sandbox.options import argv_for
from steward.sandbox.types import ExecRequest, Limits
from steward.tools.registry import Tool

CODE_TOOL = "run_code_with_tools"
CALL_MARK = "\x1esteward-tool-call "
CALL_EXIT = 77
MAX_CALLS = 50
MAX_OUTPUT_CHARS = 20_000
SANDBOX_LIFETIME_S = 3600.0
_TYPES = {"integer": "int", "number": "float", "string": "str", "boolean": "bool"}
_TYPES.update({"array": "list[Any]", "object": "dict[str, Any]"})

PRELUDE = f'''
import json as _json, os as _os, sys as _sys, types as _types
from typing import Any
_answers = _json.loads(_sys.stdin.read() or "[]")
_next = 0

class ToolError(Exception):
    """A tool refused or failed; the message says why."""

def _call(name, arguments):
    global _next
    if _next < len(_answers):
        answer = _answers[_next]
        _next += 1
        if "error" in answer:
            raise ToolError(answer["error"])
        return answer["result"]
    _sys.stdout.flush()
    _sys.stdout.write({CALL_MARK!r} + _json.dumps({{"tool": name, "arguments": arguments}}) + "\\n")
    _sys.stdout.flush()
    _os._exit({CALL_EXIT})
'''


def _identifier(name: str) -> str:
    safe = "".join(c if c.isalnum() or c == "_" else "_" for c in name)
    return safe + "_" if keyword.iskeyword(safe) or not safe[:1].isalpha() else safe


def _signature(name: str, tool: Tool) -> tuple[str, list[str], dict[str, Any]]:
    schema = tool.definition().parameters
    properties: dict[str, Any] = schema.get("properties") or {}
    required = set(schema.get("required") or ())
    params = []
    for pname, spec in sorted(properties.items(), key=lambda p: p[0] not in required):
        declared = spec.get("type") if isinstance(spec, dict) else None
        kind = _TYPES.get(str(declared), "Any")
        suffix = "" if pname in required else " | None = None"
        params.append(f"{_identifier(pname)}: {kind}{suffix}")
    head = f"def {_identifier(name)}({', '.join(['*', *params]) if params else ''}) -> Any:"
    return head, params, properties


def stubs(tools: Mapping[str, Tool]) -> str:
    """The typed `tools` module the sandboxed program imports."""
    lines = ["tools = _types.SimpleNamespace()"] if tools else []
    for name, tool in tools.items():
        head, _, properties = _signature(name, tool)
        mapping = ", ".join(f"{p!r}: {_identifier(p)}" for p in properties)
        lines += [
            head,
            f"    arguments = {{{mapping}}}",
            f"    return _call({name!r}, {{k: v for k, v in arguments.items() if v is not None}})",
            f"tools.{_identifier(name)} = {_identifier(name)}",
        ]
    return "\n".join(lines)


def signatures(tools: Mapping[str, Tool]) -> str:
    """What the model is shown of the module: one typed line and a comment per tool."""
    lines = []
    for name, tool in tools.items():
        head, _, _ = _signature(name, tool)
        lines.append(f"{head[:-1]}  # {tool.description[:200]}")
    return "\n".join(lines)


class RunHost(Protocol):
    """What code mode needs of its run (a `steward.Context` is one)."""

    @property
    def run_id(self) -> str: ...

    @property
    def tenant_id(self) -> str: ...

    @property
    def sandboxes(self) -> Any: ...

    async def tool(
        self, name: str, arguments: dict[str, Any] | None = None, *, call_id: str | None = None
    ) -> Any: ...

    async def model(
        self,
        messages: str | list[Message],
        *,
        tools: bool = ...,
        max_tokens: int | None = ...,
        extra_tools: list[ToolDefinition] = ...,
    ) -> ModelResponse: ...


@dataclass
class CodeLoop:
    """What `CodeMode.loop` ends with (the shape of `Context.tool_loop`'s result)."""

    text: str
    messages: list[Message]
    tool_results: list[dict[str, Any]]


@dataclass(frozen=True)
class CodeRun:
    exit_code: int
    stdout: str
    stderr: str
    tool_calls: int

    def to_json(self) -> dict[str, Any]:
        return {
            "exit_code": self.exit_code,
            "stdout": self.stdout,
            "stderr": self.stderr,
            "tool_calls": self.tool_calls,
        }


class CodeMode:
    """Made by `ctx.code_mode()`; runs model-written programs against the agent's tools."""

    def __init__(
        self,
        ctx: RunHost,
        tools: Mapping[str, Tool],
        choose: Callable[[str, dict[str, Any]], None] | None,
    ) -> None:
        self.ctx = ctx
        self.tools = dict(tools)
        self._choose = choose  # tells the run's policy a call is the model's choice
        self._module = PRELUDE + "\n" + stubs(self.tools) + "\n"

    def definition(self) -> ToolDefinition:
        return ToolDefinition(
            CODE_TOOL,
            "Run a Python 3 program in a sandbox. It can call these functions (module `tools` is "
            "already imported; a refused or failed call raises ToolError). Only what the program "
            "prints is returned to you: print just what you need. Call them as "
            "tools.<name>(arg=value).\n\n" + signatures(self.tools),
            {
                "type": "object",
                "properties": {"code": {"type": "string", "minLength": 1, "maxLength": 50_000}},
                "required": ["code"],
                "additionalProperties": False,
            },
        )

    async def run(self, code: str) -> CodeRun:
        """Run `code` to its end, making each tool call it asks for along the way."""
        manager = self.ctx.sandboxes  # SandboxUnavailable when this process offers none
        sandbox_id = await manager.sandbox_for_run(
            self.ctx.tenant_id,
            self.ctx.run_id,
            CreateOptions(limits=Limits(), timeout_s=SANDBOX_LIFETIME_S, run_id=self.ctx.run_id),
        )
        program = self._module + code
        answers: list[dict[str, Any]] = []
        while True:
            request = ExecRequest(
                argv_for(None, program, "python"),
                {},
                "/work",
                json.dumps(answers).encode(),
                Limits().exec_timeout_s,
            )
            done = await manager.run(self.ctx.tenant_id, sandbox_id, request)
            stdout = done.stdout.decode(errors="replace")
            _, mark, call = stdout.rpartition(CALL_MARK)
            if done.result.exit_code != CALL_EXIT or not mark:
                return CodeRun(
                    done.result.exit_code,
                    stdout[-MAX_OUTPUT_CHARS:],
                    done.stderr.decode(errors="replace")[-MAX_OUTPUT_CHARS:],
                    len(answers),
                )
            if len(answers) >= MAX_CALLS:
                raise ToolError(f"the program made more than {MAX_CALLS} tool calls")
            answers.append(await self._call(call))

    async def _call(self, line: str) -> dict[str, Any]:
        try:
            request = json.loads(line)
            name, arguments = str(request["tool"]), dict(request["arguments"])
        except (ValueError, KeyError, TypeError) as exc:
            return {"error": f"malformed tool call from the program: {exc}"}
        if name not in self.tools:
            return {"error": f"no tool named {name!r}"}
        if self._choose is not None:
            self._choose(name, arguments)
        try:
            return {"result": await self.ctx.tool(name, arguments)}
        except ToolError as exc:  # a policy refusal too: the program sees it, as the model would
            return {"error": str(exc)}

    async def loop(
        self, prompt: str, *, system: str | None = None, max_tokens: int | None = None
    ) -> CodeLoop:
        """`ctx.tool_loop`, with `run_code_with_tools` as the model's one tool."""
        messages: list[Message] = [Message(role="user", content=prompt)]
        if system:
            messages.insert(0, Message(role="system", content=system))
        results: list[dict[str, Any]] = []
        while True:
            response = await self.ctx.model(
                messages, tools=False, extra_tools=[self.definition()], max_tokens=max_tokens
            )
            messages.append(response.message())
            if not response.tool_calls:
                return CodeLoop(response.content, messages, results)
            for call in response.tool_calls:
                content = await self._answer(call, results)
                messages.append(
                    Message(role="tool", content=content, tool_call_id=call.id, name=call.name)
                )

    async def _answer(self, call: ToolCall, results: list[dict[str, Any]]) -> str:
        if call.name != CODE_TOOL or not isinstance(call.arguments.get("code"), str):
            error = f"only {CODE_TOOL}(code) is available"
            results.append({"tool": call.name, "error": error})
            return json.dumps({"error": error})
        try:
            ran = (await self.run(call.arguments["code"])).to_json()
        except (ToolError, UserError) as exc:
            results.append({"tool": CODE_TOOL, "error": str(exc)})
            return json.dumps({"error": str(exc)})
        results.append({"tool": CODE_TOOL, "result": ran})
        return json.dumps(ran)
