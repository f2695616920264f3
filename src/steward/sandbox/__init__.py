"""Isolated execution of model-written code: backends, limits, standby and resume."""

from steward.sandbox.manager import Completed, CreateOptions, SandboxManager
from steward.sandbox.run_sandbox import RunSandbox, SandboxResult
from steward.sandbox.tool import run_code
from steward.sandbox.types import ExecRequest, ExecResult, Limits, Output, SandboxBackend

__all__ = [
    "Completed",
    "CreateOptions",
    "ExecRequest",
    "ExecResult",
    "Limits",
    "Output",
    "RunSandbox",
    "SandboxBackend",
    "SandboxManager",
    "SandboxResult",
    "run_code",
]
