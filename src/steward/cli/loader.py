"""Find the `Steward` apps to serve: `path/to/file.py[:attr]` or `package.module[:attr]`."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from steward.app import Steward
from steward.errors import UserError


def _import(target: str) -> ModuleType:
    if target.endswith(".py") or "/" in target:
        path = Path(target).resolve()
        if not path.is_file():
            raise UserError(f"app file {target!r} does not exist")
        name = f"steward_app_{path.stem}_{abs(hash(path)) % 10**8}"
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise UserError(f"cannot import {target!r}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        # After the installed packages, so a file may share a package's name and import it
        # (`examples/pydantic_ai.py` imports `pydantic_ai`); its sibling modules still import.
        if str(path.parent) not in sys.path:
            sys.path.append(str(path.parent))
        spec.loader.exec_module(module)
        return module
    return importlib.import_module(target)


def load_app(target: str) -> Steward:
    path, _, attr = target.partition(":")
    module = _import(path)
    if attr:
        app = getattr(module, attr, None)
        if not isinstance(app, Steward):
            raise UserError(f"{target!r} is not a Steward app")
        return app
    apps = [value for value in vars(module).values() if isinstance(value, Steward)]
    if len(apps) != 1:
        raise UserError(f"{path!r} defines {len(apps)} Steward apps; name one as {path}:attr")
    return apps[0]


def load_apps(targets: list[str]) -> Steward:
    if not targets:
        raise UserError(
            "no app to serve: pass one (`steward dev examples/support.py`) "
            "or list them under `apps` in steward.toml"
        )
    apps = [load_app(target) for target in targets]
    return apps[0] if len(apps) == 1 else Steward.combine(apps)
