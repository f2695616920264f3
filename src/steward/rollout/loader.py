"""Load a deployed version's code from its stored source, each in a module of its own.

A version's module is named after its code hash, so two versions of one agent live side by side
in one process and a version is compiled at most once per process however many runs it serves.
"""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass
from types import ModuleType

from steward.app import Steward
from steward.errors import UserError
from steward.rollout.bundle import importable
from steward.rollout.versions import AgentVersion
from steward.runs.agent import Agent


class VersionLoadFailed(UserError):
    """The stored source of a version could not be loaded here (an import it needs is missing,
    say); the run ends in error with this message."""


@dataclass(frozen=True)
class LoadedVersion:
    app: Steward
    agent: Agent
    module: ModuleType


MODULE_PREFIX = "steward_version_"


def module_name(code_hash: str) -> str:
    return f"{MODULE_PREFIX}{code_hash[:24]}"


def find_app(module: ModuleType, attr: str | None, where: str) -> Steward:
    if attr:
        app = getattr(module, attr, None)
        if not isinstance(app, Steward):
            raise VersionLoadFailed(f"{where}: {attr!r} is not a Steward app")
        return app
    apps = [value for value in vars(module).values() if isinstance(value, Steward)]
    if len(apps) != 1:
        raise VersionLoadFailed(f"{where} defines {len(apps)} Steward apps; name one")
    return apps[0]


class CodeCache:
    """Compiled versions of this process, by code hash."""

    def __init__(self) -> None:
        self._loaded: dict[str, LoadedVersion] = {}
        self._lock = threading.Lock()

    def __contains__(self, code_hash: str) -> bool:
        return code_hash in self._loaded

    def load(self, version: AgentVersion) -> LoadedVersion:
        """The version's app and agent; `version.source` is needed only the first time."""
        loaded = self._loaded.get(version.code_hash)
        if loaded is not None:
            return loaded
        with self._lock:  # two runs starting together compile a version once
            loaded = self._loaded.get(version.code_hash)
            if loaded is None:
                loaded = self._compile(version)
                self._loaded[version.code_hash] = loaded
            return loaded

    def _compile(self, version: AgentVersion) -> LoadedVersion:
        where = f"version {version.version} of agent {version.agent!r}"
        if not version.source:
            raise VersionLoadFailed(f"{where}: no source to load")
        label = f"{version.agent} v{version.version}"
        with importable(version.modules, label):
            module = load_source(
                version.source,
                module_name(version.code_hash),
                f"<steward {label} {version.filename}>",
                where,
            )
        app = find_app(module, version.app_attr, where)
        agent = app.agents.get(version.agent)
        if agent is None:
            raise VersionLoadFailed(f"{where}: its app does not define the agent")
        return LoadedVersion(app=app, agent=agent, module=module)


def load_source(source: str, name: str, filename: str, where: str) -> ModuleType:
    """Run `source` as a new module `name` (replacing any module of that name)."""
    module = ModuleType(name)
    module.__file__ = filename
    # Registered before it runs, as an import would: Pydantic resolves the module's
    # annotations through sys.modules.
    sys.modules[name] = module
    try:
        exec(compile(source, filename, "exec"), module.__dict__)
    except Exception as exc:
        sys.modules.pop(name, None)
        raise VersionLoadFailed(f"{where} does not load: {type(exc).__name__}: {exc}") from exc
    return module
