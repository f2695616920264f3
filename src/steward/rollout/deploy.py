"""Turn an app file into a deployable agent version: its source, and what it declares.

The file is loaded the way a worker will load the stored version (a module of its own, from
the source text), so a file that would not load on a worker is refused at deploy time.
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

from steward.errors import UserError
from steward.rollout.bundle import importable, local_modules
from steward.rollout.loader import find_app, load_source
from steward.rollout.manifest import Deployable, manifest_of


def app_file(target: str) -> tuple[Path, str | None]:
    """`path/app.py[:attr]` or `package.module[:attr]` -> (the file, attr)."""
    location, _, attr = target.partition(":")
    if location.endswith(".py") or "/" in location:
        path = Path(location)
    else:
        spec = importlib.util.find_spec(location)
        if spec is None or spec.origin is None:
            raise UserError(f"cannot find module {location!r}")
        path = Path(spec.origin)
    if not path.is_file():
        raise UserError(f"app file {location!r} does not exist")
    return path.resolve(), attr or None


def deployable(target: str, agent: str | None = None) -> Deployable:
    path, attr = app_file(target)
    source = path.read_text()
    digest = hashlib.sha256(source.encode()).hexdigest()[:24]
    modules = local_modules(path)
    with importable(modules, f"deploy {path.name}"):
        module = load_source(source, f"steward_deploy_{digest}", str(path), f"app {target!r}")
    app = find_app(module, attr, f"app {target!r}")
    if agent is None:
        if len(app.agents) != 1:
            names = ", ".join(sorted(app.agents)) or "none"
            raise UserError(f"{target!r} defines several agents ({names}): pass --agent")
        agent = next(iter(app.agents))
    declared = app.agents.get(agent)
    if declared is None:
        raise UserError(f"{target!r} defines no agent {agent!r}")
    return Deployable(
        agent=agent,
        source=source,
        modules=modules,
        filename=path.name,
        app_attr=attr,
        manifest=manifest_of(app, declared, source),
    )
