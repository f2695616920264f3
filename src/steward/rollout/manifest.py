"""What a deployed version declares: read off the app file's source and the agent it defines.

The code hash covers the source, its bundled modules and the manifest, so two deploys of the
same code and settings are the same version, and any change (a prompt, a cap, a tool) is a new
one.
"""

from __future__ import annotations

import ast
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from steward.app import Steward
from steward.runs.agent import Agent


@dataclass(frozen=True)
class Deployable:
    """An agent's code as it will be stored: the app file's source and what it declares."""

    agent: str
    source: str
    modules: dict[str, str]  # the app file's sibling modules it imports
    filename: str
    app_attr: str | None
    manifest: dict[str, Any]

    @property
    def code_hash(self) -> str:
        body = json.dumps(
            [self.source, self.modules, self.manifest], sort_keys=True, separators=(",", ":")
        )
        return hashlib.sha256(body.encode()).hexdigest()


def prompts_in(source: str) -> dict[str, str]:
    """Module-level string constants whose upper-case name contains PROMPT (the convention for
    an agent's prompts), so a changed prompt is visible in the version's manifest."""
    found: dict[str, str] = {}
    for node in ast.parse(source).body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        if isinstance(node, ast.AnnAssign):
            targets = [node.target]
        value = getattr(node, "value", None)
        if not (isinstance(value, ast.Constant) and isinstance(value.value, str)):
            continue
        for target in targets:
            if isinstance(target, ast.Name) and target.id.isupper() and "PROMPT" in target.id:
                found[target.id] = value.value
    return found


def manifest_of(app: Steward, agent: Agent, source: str) -> dict[str, Any]:
    described = agent.describe()
    return {
        "description": agent.description,
        "model": agent.model,
        "tools": sorted(app.tools_for(agent)),
        "limits": described["limits"],
        "policy": described["policy"],
        "input_schema": described["input_schema"],
        "output_schema": described["output_schema"],
        "prompts": prompts_in(source),
    }
