"""What a deployed version stores and how it is loaded: the sibling modules an app file imports
travel with it, prompts and caps are in its manifest, any change makes a new code hash, and two
versions of one agent load side by side in one process, each with its own sibling modules."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

from steward.rollout.bundle import imported_names, local_modules
from steward.rollout.deploy import deployable
from steward.rollout.loader import CodeCache
from steward.rollout.manifest import prompts_in
from steward.rollout.versions import AgentVersion

HELPER = 'GREETING = "{greeting}"\n'
APP = """
from __future__ import annotations

from pydantic import BaseModel

from greetings import GREETING
from steward import Context, Steward

SYSTEM_PROMPT = "Greet the user."
limit = "not a prompt"


class In(BaseModel):
    name: str


app = Steward()


@app.agent(name="greeter", max_steps={steps})
async def greeter(ctx: Context, input: In) -> str:
    return f"{{GREETING}}, {{input.name}}"
"""


def write(folder: Path, greeting: str, steps: int = 3) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "greetings.py").write_text(HELPER.format(greeting=greeting))
    (folder / "unrelated.py").write_text("raise SystemExit('never imported')\n")
    path = folder / "greeter.py"
    path.write_text(APP.format(steps=steps))
    return path


def stored(path: Path, version: int) -> AgentVersion:
    code = deployable(str(path))
    return AgentVersion(
        agent=code.agent,
        version=version,
        code_hash=code.code_hash,
        filename=code.filename,
        app_attr=code.app_attr,
        manifest=code.manifest,
        evaluation=None,
        created_by=None,
        created_at=datetime.now(UTC),
        source=code.source,
        modules=code.modules,
    )


def test_imported_names_are_the_top_level_modules_of_absolute_imports() -> None:
    source = "import a.b\nfrom c.d import e\nfrom . import f\ndef g():\n    import h\n"
    assert imported_names(source) == {"a", "c", "h"}


def test_only_the_sibling_modules_the_app_imports_are_bundled(tmp_path: Path) -> None:
    path = write(tmp_path, "Hello")
    assert local_modules(path) == {"greetings": 'GREETING = "Hello"\n'}


def test_prompts_are_upper_case_string_constants_named_prompt() -> None:
    source = 'SYSTEM_PROMPT = "a"\nPROMPT_B: str = "b"\nprompt = "c"\nMAX_PROMPT = 3\n'
    assert prompts_in(source) == {"SYSTEM_PROMPT": "a", "PROMPT_B": "b"}


def test_the_manifest_records_caps_tools_and_prompts_and_any_change_is_a_new_hash(
    tmp_path: Path,
) -> None:
    first = deployable(str(write(tmp_path / "a", "Hello")))
    assert first.agent == "greeter"
    assert first.manifest["limits"]["max_steps"] == 3
    assert first.manifest["prompts"] == {"SYSTEM_PROMPT": "Greet the user."}
    assert first.manifest["tools"] == []
    same = deployable(str(write(tmp_path / "b", "Hello")))
    assert same.code_hash == first.code_hash
    other_cap = deployable(str(write(tmp_path / "c", "Hello", steps=4)))
    other_module = deployable(str(write(tmp_path / "d", "Bonjour")))
    assert len({first.code_hash, other_cap.code_hash, other_module.code_hash}) == 3


def test_two_versions_load_side_by_side_each_with_its_own_sibling_module(tmp_path: Path) -> None:
    hello = stored(write(tmp_path / "one", "Hello"), 1)
    bonjour = stored(write(tmp_path / "two", "Bonjour"), 2)
    cache = CodeCache()
    first, second = cache.load(hello), cache.load(bonjour)
    assert first.module is not second.module
    assert first.module.GREETING == "Hello" and second.module.GREETING == "Bonjour"
    assert cache.load(hello) is first  # compiled once per process
    assert "greetings" not in sys.modules  # the bundled name does not leak into the process


def test_concurrent_deploys_of_different_code_get_consecutive_versions(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from steward.rollout.versions import VersionStore
    from steward.store import migrate
    from steward.store.database import Database

    url = f"sqlite:///{tmp_path / 'steward.db'}"
    migrate.upgrade(url)
    store = VersionStore(Database(url))
    codes = [deployable(str(write(tmp_path / f"c{i}", f"Hi {i}"))) for i in range(4)]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda code: store.deploy(code, created_by=None), codes))
    assert sorted(version.version for version, created in results if created) == [1, 2, 3, 4]
    newest = store.list("greeter")[0]
    older = next(code for code in codes if code.code_hash != newest.code_hash)
    assert store.deploy(older, created_by=None)[1] is True  # not the newest: a new version
    assert store.deploy(older, created_by=None) == (store.list("greeter")[0], False)
