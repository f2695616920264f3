#!/usr/bin/env python3
"""Run the Dockerfile's steps outside Docker, then serve the example agents from the result.

Where no container engine runs, this is how the image's recipe is proven. It reads the
Dockerfile, and for every stage in order:

- `ENV`/`ARG`/`WORKDIR` are applied; `COPY` copies from the repository (or from an earlier
  stage) into a scratch root `R` that stands for the image's file system;
- every `RUN` runs verbatim under `bash -euo pipefail -c`, with the image's absolute paths
  (`/opt/steward`, `/src`, `/app`, `/var/lib/steward`, ...) moved under `R`, a clean
  environment (no pip configuration of this machine: wheels come from the index and must
  match requirements.lock's hashes) and Debian's `python3.11` as `python`;
- a step that installs Debian packages is not run here (it would change this machine): each
  package it names must be installed on this machine and known to apt instead;
- a step that creates users runs in a private mount namespace over a copy of `/etc`, so the
  user exists for that step (and its `chown`s) and this machine's `/etc` is left alone.

Then the image's `ENTRYPOINT` + `CMD` (`steward serve`, its host and port moved to loopback
and a free port) and `steward worker` run from `R` as the image's `USER`, each with an empty
`/run` of its own as in a container; the `HEALTHCHECK`
command must fail before the server listens and pass after; an API key is created and the
`support` example answers a run through `/runs/wait` with a real tool call.

Needs root (the user step and the switch to the image's uid). Exits non-zero on any failure;
the last line prints `key=value` figures. Used by tests/deploy/test_dockerfile.py.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASE_PYTHON = "/usr/bin/python3.11"  # Debian's 3.11: the image's base is CPython 3.11 too
READY_TIMEOUT_S = 120.0
# The base image's PATH (python:3.11-slim, like every Debian image)
IMAGE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class StepFailed(RuntimeError):
    pass


@dataclass
class Instruction:
    keyword: str
    args: str
    line: int


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[Instruction] = field(default_factory=list)


def parse(dockerfile: Path) -> tuple[dict[str, str], list[Stage]]:
    """Global ARGs and the stages, with continuation lines joined and comments dropped."""
    logical: list[tuple[int, str]] = []
    buffer, start = "", 0
    for number, raw in enumerate(dockerfile.read_text().splitlines(), 1):
        stripped = raw.strip()
        if not buffer and (not stripped or stripped.startswith("#")):
            continue
        if buffer and stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if not buffer:
            start = number
        if stripped.endswith("\\"):
            buffer += stripped[:-1] + " "
            continue
        logical.append((start, buffer + stripped))
        buffer = ""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for number, text in logical:
        keyword, _, args = text.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            parts = args.split()
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else str(len(stages))
            stages.append(Stage(name=name, base=parts[0]))
        elif not stages:
            if keyword != "ARG":
                raise StepFailed(f"line {number}: only ARG may come before the first FROM")
            key, _, value = args.partition("=")
            global_args[key.strip()] = value.strip()
        else:
            stages[-1].instructions.append(Instruction(keyword, args.strip(), number))
    return global_args, stages


def env_pairs(args: str) -> dict[str, str]:
    return dict(token.split("=", 1) for token in shlex.split(args))


def expand(value: str, env: dict[str, str]) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda m: env.get(m.group(1), m.group(0)), value)


class Runner:
    def __init__(self, root: Path, dockerfile: Path) -> None:
        self.root = root
        self.dockerfile = dockerfile
        self.bin = root / ".check-bin"  # `python` for the RUN steps, outside the image paths
        self.bin.mkdir(parents=True)
        (self.bin / "python").symlink_to(BASE_PYTHON)
        self.image_paths: set[str] = set()
        self.env: dict[str, str] = {}
        self.workdir = "/"
        self.user = "0:0"
        self.final: Stage | None = None
        self.system_packages: list[str] = []

    # Paths --------------------------------------------------------------------------------

    def host(self, image_path: str) -> Path:
        return self.root / image_path.lstrip("/")

    def remember(self, image_path: str) -> None:
        parts = Path(image_path).parts
        if len(parts) > 1:
            self.image_paths.add("/".join(parts[: min(len(parts), 4)]).replace("//", "/"))

    def move_paths(self, text: str) -> str:
        """The image's absolute paths in `text`, moved under the scratch root."""
        for path in sorted(self.image_paths, key=len, reverse=True):
            text = re.sub(
                rf"(?<![\w./-]){re.escape(path)}(?=[/\s\"';:]|$)", str(self.host(path)), text
            )
        return text

    def prescan(self, stages: list[Stage], global_args: dict[str, str]) -> None:
        """Every image path any stage names, so a step never touches this machine's copy
        (a RUN may use a path that a later ENV names)."""
        for stage in stages:
            self.env = dict(global_args)
            for instruction in stage.instructions:
                if instruction.keyword in ("ENV", "WORKDIR", "COPY"):
                    getattr(self, f"do_{instruction.keyword.lower()}")(instruction, dry=True)

    # Stages -------------------------------------------------------------------------------

    def run_stage(self, stage: Stage, global_args: dict[str, str]) -> None:
        self.env = {"PATH": f"{self.bin}:{IMAGE_PATH}", **global_args}
        self.workdir, self.user = "/", "0:0"
        print(f"== stage {stage.name} (FROM {expand(stage.base, global_args)})", flush=True)
        for instruction in stage.instructions:
            handler = getattr(self, f"do_{instruction.keyword.lower()}", None)
            if handler is None:
                raise StepFailed(f"line {instruction.line}: {instruction.keyword} is not known")
            handler(instruction)
        self.final = stage

    def do_arg(self, instruction: Instruction) -> None:
        key, _, value = instruction.args.partition("=")
        self.env.setdefault(key.strip(), value.strip())

    def do_env(self, instruction: Instruction, dry: bool = False) -> None:
        for key, value in env_pairs(instruction.args).items():
            value = expand(value, self.env)
            for part in value.split(":"):
                if part.startswith("/") and part.split("/")[1] in ("opt", "app", "src", "var"):
                    self.remember(part)
            self.env[key] = value

    def do_workdir(self, instruction: Instruction, dry: bool = False) -> None:
        self.workdir = expand(instruction.args, self.env)
        self.remember(self.workdir)
        if not dry:
            self.host(self.workdir).mkdir(parents=True, exist_ok=True)

    def do_copy(self, instruction: Instruction, dry: bool = False) -> None:
        tokens = shlex.split(instruction.args)
        options = [t for t in tokens if t.startswith("--")]
        sources, dest = tokens[len(options) : -1], tokens[-1]
        target = dest if dest.startswith("/") else f"{self.workdir.rstrip('/')}/{dest}"
        self.remember(target)
        if dry:
            return
        from_stage = next((o.split("=", 1)[1] for o in options if o.startswith("--from=")), None)
        for source in sources:
            if from_stage is not None:
                origin = self.host(source)  # one scratch root for every stage: same path
                if not origin.exists():
                    raise StepFailed(f"line {instruction.line}: {source} not in {from_stage}")
                if Path(source) != Path(target):
                    copy(origin, self.host(target))
                continue
            origin = ROOT / source
            if not origin.exists():
                raise StepFailed(f"line {instruction.line}: {source} is not in the repository")
            destination = self.host(target)
            if target.endswith("/") and origin.is_file():
                destination = destination / origin.name
            copy(origin, destination)

    def do_run(self, instruction: Instruction) -> None:
        command = expand(instruction.args, {k: v for k, v in self.env.items() if k != "PATH"})
        if "apt-get install" in command:
            self.check_packages(instruction, command)
            return
        creates_users = bool(re.search(r"\b(useradd|groupadd)\b", command))
        command = self.move_paths(command)
        env = {k: self.move_paths(v) for k, v in self.env.items()}
        env["HOME"] = str(self.root / "root")
        print(f"-- RUN (line {instruction.line}): {command[:300]}", flush=True)
        argv = ["bash", "-euo", "pipefail", "-c", command]
        if creates_users:
            argv = self.with_private_etc(argv)
        cwd = self.host(self.workdir)
        done = subprocess.run(argv, cwd=cwd, env=env, check=False)
        if done.returncode != 0:
            raise StepFailed(f"line {instruction.line} exited {done.returncode}")

    def check_packages(self, instruction: Instruction, command: str) -> None:
        packages: list[str] = []
        for match in re.finditer(r"apt-get install((?:\s+[^\s;&|]+)+)", command):
            packages += [p for p in match.group(1).split() if not p.startswith("-")]
        if not packages:
            raise StepFailed(f"line {instruction.line}: no package named")
        for package in packages:
            status = subprocess.run(
                ["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True
            )
            known = subprocess.run(["apt-cache", "show", package], capture_output=True)
            if "install ok installed" not in status.stdout or known.returncode != 0:
                raise StepFailed(
                    f"line {instruction.line}: Debian package {package} is not installed here "
                    "(scripts/ensure-services installs it)"
                )
        self.system_packages += packages
        print(f"-- RUN (line {instruction.line}): Debian packages {packages}: known, installed")

    def with_private_etc(self, argv: list[str]) -> list[str]:
        etc = self.root / ".check-etc"
        if not etc.exists():
            shutil.copytree("/etc", etc, symlinks=True, ignore_dangling_symlinks=True)
        script = f"mount --make-rprivate / && mount --bind {shlex.quote(str(etc))} /etc && "
        return ["unshare", "--mount", "bash", "-c", script + shlex.join(argv)]

    def do_user(self, instruction: Instruction) -> None:
        self.user = instruction.args
        if not re.fullmatch(r"\d+(:\d+)?", self.user) or self.user.split(":")[0] == "0":
            raise StepFailed(f"line {instruction.line}: USER must be a numeric non-root uid")

    def do_expose(self, instruction: Instruction) -> None:
        pass

    def do_healthcheck(self, instruction: Instruction) -> None:
        pass

    def do_entrypoint(self, instruction: Instruction) -> None:
        pass

    def do_cmd(self, instruction: Instruction) -> None:
        pass


def copy(origin: Path, destination: Path) -> None:
    destination.parent.mkdir(parents=True, exist_ok=True)
    if origin.is_dir():
        shutil.copytree(
            origin,
            destination,
            dirs_exist_ok=True,
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"),
        )
    else:
        shutil.copy2(origin, destination)


def exec_form(stage: Stage, keyword: str) -> list[str]:
    for instruction in reversed(stage.instructions):
        if instruction.keyword == keyword:
            args = instruction.args
            if keyword == "HEALTHCHECK":
                args = args[args.index("CMD") + 3 :].strip()
            return list(json.loads(args))
    raise StepFailed(f"the final stage has no {keyword}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http(method: str, url: str, body: dict[str, object] | None, key: str) -> dict[str, object]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("x-api-key", key)
    request.add_header("content-type", "application/json")
    with urllib.request.urlopen(request, timeout=120) as response:
        return dict(json.loads(response.read()))


def wait_healthy(healthy: Callable[[], bool], processes: list[subprocess.Popen[bytes]]) -> float:
    """Seconds until the HEALTHCHECK passes; a process that exits first is a failure."""
    started = time.monotonic()
    while not healthy():
        for process in processes:
            if process.poll() is not None:
                raise StepFailed(f"{process.args!r} exited {process.returncode}")
        if time.monotonic() - started > READY_TIMEOUT_S:
            raise StepFailed("HEALTHCHECK never passed")
        time.sleep(0.5)
    return time.monotonic() - started


def stop_all(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def serve_and_run(runner: Runner, stage: Stage, log_dir: Path) -> dict[str, str]:
    entrypoint, command = exec_form(stage, "ENTRYPOINT"), exec_form(stage, "CMD")
    health = exec_form(stage, "HEALTHCHECK")
    port = free_port()
    argv = [*entrypoint, *command]
    argv[argv.index("--host") + 1] = "127.0.0.1"
    argv[argv.index("--port") + 1] = str(port)
    uid, _, gid = runner.user.partition(":")
    # As the image's user, with a /run of its own like a container's (this machine's /run may
    # hold state of root Steward processes that the image would never see).
    own_run = 'mount -t tmpfs -o mode=755 tmpfs /run && exec "$@"'
    as_user = ["unshare", "--mount", "--propagation", "private", "sh", "-c", own_run, "sh"]
    as_user += ["setpriv", f"--reuid={uid}", f"--regid={gid or uid}", "--clear-groups"]
    env = {k: runner.move_paths(v) for k, v in runner.env.items()}
    env["PATH"] = env["PATH"].replace(str(runner.bin) + ":", "")
    env["HOME"] = env["STEWARD_HOME"]
    env["STEWARD_HEALTH_URL"] = f"http://127.0.0.1:{port}/readyz"
    cwd = runner.host(runner.workdir)
    print(f"== image command: {shlex.join(argv)} (uid {uid}, cwd {runner.workdir})", flush=True)

    def run(args: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*as_user, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
        )

    down = run(health)
    if down.returncode == 0:
        raise StepFailed("HEALTHCHECK passed with nothing listening")
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for name, args in (("serve", argv), ("worker", [*entrypoint, "worker"])):
            with (log_dir / f"{name}.log").open("wb") as log:
                processes.append(
                    subprocess.Popen([*as_user, *args], cwd=cwd, env=env, stdout=log, stderr=log)
                )
        ready_s = wait_healthy(lambda: run(health).returncode == 0, processes)
        created = run([*entrypoint, "keys", "create", "--name", "image-check"])
        if created.returncode != 0:
            raise StepFailed(f"keys create failed: {created.stderr[-2000:]}")
        key = created.stdout.strip().splitlines()[-1]
        base = f"http://127.0.0.1:{port}"
        started = time.monotonic()
        answer = http(
            "POST",
            f"{base}/runs/wait",
            {"assistant_id": "support", "input": {"message": "Where is my order 42?"}},
            key,
        )
        run_s = time.monotonic() - started
        if "lookup_order" not in answer.get("tools_used", []):  # type: ignore[operator]
            raise StepFailed(f"the support agent did not call its tool: {answer}")
        print(f"support answered: {json.dumps(answer)[:300]}")
    finally:
        stop_all(processes)
    return {"ready_s": f"{ready_s:.1f}", "run_s": f"{run_s:.2f}"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dockerfile", type=Path, default=ROOT / "Dockerfile")
    parser.add_argument("--keep", action="store_true", help="leave the scratch root behind")
    options = parser.parse_args()
    if os.geteuid() != 0:
        print("dockerfile_steps_check: needs root (user step, switch to the image's uid)")
        return 2
    for tool in (BASE_PYTHON, shutil.which("setpriv"), shutil.which("unshare")):
        if tool is None or not Path(tool).exists():
            print(f"dockerfile_steps_check: missing {tool or 'setpriv/unshare'}")
            return 2
    root = Path(tempfile.mkdtemp(prefix="steward-image-"))
    root.chmod(0o755)  # the image's user must reach /opt/steward and /app under it
    started = time.monotonic()
    try:
        global_args, stages = parse(options.dockerfile)
        runner = Runner(root, options.dockerfile)
        runner.prescan(stages, global_args)
        for stage in stages:
            runner.run_stage(stage, global_args)
        build_s = time.monotonic() - started
        assert runner.final is not None
        figures = serve_and_run(runner, runner.final, root)
    except (StepFailed, subprocess.TimeoutExpired, urllib.error.URLError, OSError) as exc:
        print(f"dockerfile_steps_check: FAILED: {exc}")
        for log in sorted(root.glob("*.log")):
            print(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}")
        return 1
    finally:
        if not options.keep:
            shutil.rmtree(root, ignore_errors=True)
    packages = ",".join(runner.system_packages)
    print(
        f"stages={len(stages)} build_s={build_s:.0f} ready_s={figures['ready_s']} "
        f"run_s={figures['run_s']} debian_packages={packages} ok=1"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
