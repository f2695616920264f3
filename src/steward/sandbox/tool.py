"""`run_code`: the built-in tool that gives an agent a sandbox in one line.

`app.add_tool(run_code)`; each run gets one sandbox (created on first use, reused by later
calls so files and processes persist within the run, ended with the run's lifetime).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from steward.errors import SandboxUnavailable
from steward.sandbox.manager import CreateOptions, SandboxManager, argv_for
from steward.sandbox.run_sandbox import SandboxResult
from steward.sandbox.types import ExecRequest, Limits
from steward.tools.registry import ToolContext, make_tool

RUN_SANDBOX_LIFETIME_S = 3600.0


async def _run_code(
    code: str, ctx: ToolContext, language: Literal["python", "sh", "bash"] = "python"
) -> dict[str, Any]:
    """Run code in an isolated sandbox (no network) and return its exit code, stdout and stderr."""
    manager: SandboxManager | None = ctx.sandboxes
    if manager is None:
        raise SandboxUnavailable("this Steward process offers no sandboxes")
    sandbox_id = await manager.sandbox_for_run(
        ctx.tenant_id,
        ctx.run_id,
        CreateOptions(limits=Limits(), timeout_s=RUN_SANDBOX_LIFETIME_S, run_id=ctx.run_id),
    )
    limits = Limits()
    request = ExecRequest(argv_for(None, code, language), {}, "/work", b"", limits.exec_timeout_s)
    completed = await manager.run(ctx.tenant_id, sandbox_id, request)
    return dataclasses.asdict(SandboxResult.from_completed(completed))


run_code = make_tool(_run_code, name="run_code")
