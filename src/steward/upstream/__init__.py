"""A wire-compatible OpenAI and Anthropic model server for tests, demos and benchmarks: it
streams, delays, rate-limits and fails on command, and records what clients sent.

    from steward.upstream.testing import UpstreamControl, run_upstream_in_thread

    with run_upstream_in_thread() as base_url:
        control = UpstreamControl(base_url)
        control.script({"text": "Hello", "usage": {"input_tokens": 10, "output_tokens": 1}})
        control.faults(error_status=429, retry_after_s=2, times=1)
        # OpenAI clients use f"{base_url}/v1"; Anthropic clients use base_url.

Or from a shell: `python -m steward.upstream --port 8900`. See `steward.upstream.app` for the
control API and `steward.upstream.control` for the script and fault fields.
"""

from steward.upstream.app import create_upstream_app, serve_upstream
from steward.upstream.control import Faults, ScriptedResponse, ScriptedToolCall, ScriptedUsage

__all__ = [
    "Faults",
    "ScriptedResponse",
    "ScriptedToolCall",
    "ScriptedUsage",
    "create_upstream_app",
    "serve_upstream",
]
