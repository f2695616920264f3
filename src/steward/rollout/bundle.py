"""The app file's own modules: siblings it imports (`from support import Answer`), stored with
the version so a worker that never saw the file's folder loads the same code.

While a version's source runs, its bundled modules are what those plain names import (a finder
of their stored sources, first on `sys.meta_path`); afterwards the process's own modules of
those names are back, so two versions with different siblings never see each other's.
"""

from __future__ import annotations

import ast
import importlib.abc
import importlib.util
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType


def imported_names(source: str) -> set[str]:
    """Top-level names of the absolute imports anywhere in `source`."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def local_modules(app_file: Path) -> dict[str, str]:
    """The modules beside `app_file` that it imports, directly or through each other."""
    found: dict[str, str] = {}
    pending = [app_file.read_text()]
    while pending:
        for name in imported_names(pending.pop()):
            sibling = app_file.parent / f"{name}.py"
            if name not in found and sibling.is_file() and sibling != app_file:
                found[name] = sibling.read_text()
                pending.append(found[name])
    return dict(sorted(found.items()))


class _StoredModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def __init__(self, modules: dict[str, str], label: str) -> None:
        self._modules = modules
        self._label = label

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname not in self._modules:
            return None
        return importlib.util.spec_from_loader(fullname, self, origin=self._origin(fullname))

    def _origin(self, name: str) -> str:
        return f"<steward {self._label} {name}.py>"

    def exec_module(self, module: ModuleType) -> None:
        source = self._modules[module.__name__]
        exec(compile(source, self._origin(module.__name__), "exec"), module.__dict__)


@contextmanager
def importable(modules: dict[str, str], label: str) -> Iterator[None]:
    """Within the block, `import name` of a bundled module runs its stored source."""
    if not modules:
        yield
        return
    saved = {name: sys.modules.pop(name) for name in modules if name in sys.modules}
    finder = _StoredModules(modules, label)
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)
        for name in modules:
            sys.modules.pop(name, None)
        sys.modules.update(saved)
