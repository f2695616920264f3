"""The gVisor backend: each sandbox is a `runsc` container from an OCI bundle Steward writes.

No network (`--network=none`), the same limits through the bundle's cgroups, warm standby by
`runsc pause` and cold standby by `runsc checkpoint`/`restore` (memory, processes, files kept).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from steward.errors import SandboxStateError, SandboxUnavailable
from steward.sandbox import cgroups, resident, seccomp, seccomp_exec
from steward.sandbox.bwrap import (
    ETC_FILES,
    PYTHON,
    RESIDENT_PATH,
    mount_tmpfs,
    traversable_dirs,
    unmount,
)
from steward.sandbox.cgroups import GROUP_PARENT, CgroupGroup
from steward.sandbox.channel import LINE_LIMIT, encode_request, read_events
from steward.sandbox.oci_seccomp import oci_seccomp
from steward.sandbox.types import (
    ExecEvent,
    ExecRequest,
    ExecResult,
    Instance,
    SandboxSpec,
    StandbyMode,
)

RUNSC = "/usr/bin/runsc"
SANDBOX_UID = 65534  # gVisor's gofer creates files as the in-sandbox uid
# The sentry's own host threads count against the pids cgroup; the app's share is enforced
# inside by RLIMIT_NPROC.
SENTRY_PIDS = 256
GROUP_PREFIX = "gv-"
# runsc's group sits inside one Steward owns: it outlives `runsc delete` (a cold standby, the
# end), so the sandbox's CPU seconds add up across restores and can be read after the kill.
CONTAINER_GROUP = "sandbox"
SECCOMP_EXEC_PATH = "/run/steward/seccomp_exec.py"
SECCOMP_FILTER_PATH = "/run/steward/seccomp.bpf"


def container_id(sandbox_id: str) -> str:
    return f"steward-{sandbox_id}"  # runsc's control socket name is host-global


def oci_config(spec: SandboxSpec, filter_file: Path) -> dict[str, Any]:
    limits = spec.limits
    rlimits = [
        {"type": "RLIMIT_NOFILE", "hard": limits.open_files, "soft": limits.open_files},
        {"type": "RLIMIT_NPROC", "hard": limits.pids, "soft": limits.pids},
        {"type": "RLIMIT_CORE", "hard": 0, "soft": 0},
    ]
    mounts: list[dict[str, Any]] = [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {
            "destination": "/tmp",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": [f"size={limits.tmp_mib}m", "nosuid", "nodev"],
        },
        _bind("/usr", "/usr", ro=True),
        _bind(resident.__file__, RESIDENT_PATH, ro=True),
        _bind(seccomp_exec.__file__, SECCOMP_EXEC_PATH, ro=True),
        _bind(str(filter_file), SECCOMP_FILTER_PATH, ro=True),
        _bind(str(spec.work_dir), "/work", ro=False),
    ]
    mounts += [_bind(path, path, ro=True) for path in ETC_FILES if Path(path).exists()]
    mounts += [_bind(str(d), f"/volumes/{n}", ro=False) for n, d in sorted(spec.volumes.items())]
    no_caps: dict[str, list[str]] = {
        k: [] for k in ("bounding", "effective", "permitted", "inheritable", "ambient")
    }
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": {"uid": SANDBOX_UID, "gid": SANDBOX_UID},
            "args": [PYTHON, "-I", "-S", RESIDENT_PATH, "idle"],
            "env": ["PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/work", "LANG=C.UTF-8"],
            "cwd": "/work",
            "capabilities": no_caps,
            "rlimits": rlimits,
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "sandbox",
        "mounts": mounts,
        "linux": {
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
            # The bwrap backend's syscall policy, enforced by the sentry (`--oci-seccomp`).
            "seccomp": oci_seccomp(),
            # Relative: runsc nests it under its caller's group in every hierarchy.
            "cgroupsPath": f"{GROUP_PARENT}/{GROUP_PREFIX}{spec.id}/{CONTAINER_GROUP}",
            "resources": {
                "memory": {"limit": limits.memory_mib * 1024 * 1024},
                "pids": {"limit": limits.pids + SENTRY_PIDS},
                "cpu": {"quota": int(limits.cpus * 100_000), "period": 100_000},
            },
        },
    }


def _bind(source: str, destination: str, *, ro: bool) -> dict[str, Any]:
    options = ["rbind", "ro" if ro else "rw", "nosuid", "nodev"]
    return {"destination": destination, "type": "bind", "source": source, "options": options}


def write_bundle(spec: SandboxSpec, bundle: Path) -> None:
    rootfs = bundle / "rootfs"
    for directory in ("usr", "proc", "tmp", "work", "etc", "run/steward", "volumes"):
        (rootfs / directory).mkdir(parents=True, exist_ok=True)
    for name in spec.volumes:
        (rootfs / "volumes" / name).mkdir(exist_ok=True)
    for path in ETC_FILES:
        target = rootfs / path.lstrip("/")
        if Path(path).is_dir():
            target.mkdir(parents=True, exist_ok=True)
        elif Path(path).exists():
            target.touch()
    for path in (RESIDENT_PATH, SECCOMP_EXEC_PATH, SECCOMP_FILTER_PATH):
        (rootfs / path.lstrip("/")).touch()
    filter_file = bundle / "seccomp.bpf"
    filter_file.write_bytes(seccomp.build_filter())
    for link, points_to in (("bin", "usr/bin"), ("lib", "usr/lib"), ("lib64", "usr/lib64")):
        if not (rootfs / link).is_symlink():
            (rootfs / link).symlink_to(points_to)
    (bundle / "config.json").write_text(json.dumps(oci_config(spec, filter_file)))


class GVisorBackend:
    name = "gvisor"
    isolated = True
    standby_modes: tuple[StandbyMode, ...] = ("cold", "warm")

    def unavailable_reason(self) -> str | None:
        if not Path(RUNSC).exists():
            return "gVisor is not installed (apt-get install runsc)"
        if os.geteuid() != 0:
            return "runsc needs root to create sandboxes here"
        return seccomp.unavailable_reason() or cgroups.unavailable_reason()

    async def start(self, spec: SandboxSpec) -> Instance:
        reason = self.unavailable_reason()
        if reason:
            raise SandboxUnavailable(reason)
        state = spec.work_dir.parent
        traversable_dirs(spec.work_dir)
        mount_tmpfs(spec.work_dir, spec.limits.disk_mib, SANDBOX_UID)
        instance = GVisorInstance(spec, state)
        try:
            for volume in spec.volumes.values():
                os.chown(volume, SANDBOX_UID, SANDBOX_UID)
            await asyncio.to_thread(cgroups.prepare, instance.outer_group)
            write_bundle(spec, instance.bundle)
            await instance.runsc("run", "--detach", "--bundle", str(instance.bundle), instance.cid)
        except BaseException:
            await instance.destroy()
            raise
        return instance


class GVisorInstance:
    def __init__(self, spec: SandboxSpec, state: Path) -> None:
        self.spec = spec
        self.bundle = state / "bundle"
        self.root = state / "runsc"
        self.image = state / "checkpoint"
        self.cid = container_id(spec.id)
        self.outer_group = f"{GROUP_PREFIX}{spec.id}"  # relative to steward-sandboxes
        self.standby_mode: StandbyMode | None = None
        self.final_cpu_s: float | None = None  # read after the kill, before the group goes
        self._lock = asyncio.Lock()
        self.dead: str | None = None

    async def runsc(self, *args: str, timeout_s: float = 60.0) -> str:
        """Run one runsc command; output goes to a file because a started container keeps
        runsc's stdout as its own (a pipe would never reach end-of-file)."""
        log = self.bundle.parent / "runsc.log"
        with log.open("wb") as output:
            process = await asyncio.create_subprocess_exec(
                RUNSC, f"--root={self.root}", "--network=none", "--oci-seccomp", *args,
                stdin=asyncio.subprocess.DEVNULL, stdout=output, stderr=output, env={},
            )  # fmt: skip
        try:
            await asyncio.wait_for(process.wait(), timeout_s)
        except TimeoutError as exc:
            process.kill()
            await process.wait()
            raise SandboxStateError(f"runsc {args[0]} did not finish in {timeout_s}s") from exc
        text = log.read_text(errors="replace").strip()
        if process.returncode != 0:
            raise SandboxStateError(f"runsc {args[0]} failed: {text[-500:]}")
        return text

    def _group(self) -> CgroupGroup:
        """runsc's group: the sandbox's processes, limits and OOM count."""
        return cgroups.open_group(f"{self.outer_group}/{CONTAINER_GROUP}")

    async def exec(self, request: ExecRequest) -> AsyncIterator[ExecEvent]:
        async with self._lock:
            if self.dead:
                raise SandboxStateError(self.dead)
            if self.standby_mode is not None:
                raise SandboxStateError("the sandbox is in standby; resume it first")
            ooms = self._group().oom_kills()
            process = await asyncio.create_subprocess_exec(
                RUNSC, f"--root={self.root}", "exec",
                "--user", f"{SANDBOX_UID}:{SANDBOX_UID}", "--cwd", request.cwd, self.cid,
                # runsc exec skips the OCI seccomp section: the process loads it itself.
                PYTHON, "-I", "-S", SECCOMP_EXEC_PATH, SECCOMP_FILTER_PATH, RESIDENT_PATH, "once",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env={},
                limit=LINE_LIMIT,
            )  # fmt: skip
            assert process.stdin is not None and process.stdout is not None
            try:
                process.stdin.write(encode_request(request, self.spec.limits))
                await process.stdin.drain()
                process.stdin.close()
                async for event in read_events(process.stdout, request, self.spec.limits):
                    if isinstance(event, ExecResult) and self._group().oom_kills() > ooms:
                        event = ExecResult(**{**event.__dict__, "oom_killed": True})
                    yield event
            except SandboxStateError as exc:
                if self._group().oom_kills() > ooms:  # the cgroup OOM killer took the sentry
                    yield ExecResult(exit_code=-9, wall_s=0.0, cpu_s=0.0, oom_killed=True)
                    self.dead = "the sandbox was OOM-killed as a whole"
                    return
                stderr = await _tail(process)
                raise SandboxStateError(f"{exc}: {stderr}" if stderr else str(exc)) from exc
            finally:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()

    async def standby(self, mode: StandbyMode) -> None:
        async with self._lock:
            if mode == "warm":
                await self.runsc("pause", self.cid)
            else:
                await asyncio.to_thread(shutil.rmtree, self.image, ignore_errors=True)
                self.image.mkdir(parents=True)
                await self.runsc("checkpoint", f"--image-path={self.image}", self.cid)
                await self.runsc("delete", "-force", self.cid)  # memory is freed here
            self.standby_mode = mode

    async def resume(self) -> None:
        async with self._lock:
            if self.standby_mode == "warm":
                await self.runsc("resume", self.cid)
            elif self.standby_mode == "cold":
                await self.runsc(
                    "restore", "--detach", f"--image-path={self.image}",
                    f"--bundle={self.bundle}", self.cid,
                )  # fmt: skip
                await asyncio.to_thread(shutil.rmtree, self.image, ignore_errors=True)
            self.standby_mode = None

    def cpu_seconds(self) -> float:
        """Host CPU (gVisor's own accounting overstates it), over every incarnation."""
        if self.final_cpu_s is not None:
            return self.final_cpu_s
        try:
            return cgroups.open_group(self.outer_group).cpu_seconds()
        except FileNotFoundError:
            return 0.0  # not started yet

    def pids(self) -> list[int]:
        return self._group().pids()

    async def destroy(self) -> None:
        # Kill through the cgroup first: `runsc delete -force` takes over a second under load,
        # which a spinning payload past its CPU budget would spend on more CPU.
        await asyncio.to_thread(self._kill)
        if self.root.exists():
            with contextlib.suppress(SandboxStateError):
                await self.runsc("delete", "-force", self.cid)
        await asyncio.to_thread(cgroups.remove_everywhere, f"{GROUP_PARENT}/{self.outer_group}")
        unmount(self.spec.work_dir)
        await asyncio.to_thread(self._remove_files)

    def _kill(self) -> None:
        self._group().kill_all()  # v1: freeze, SIGKILL, thaw; v2: cgroup.kill
        with contextlib.suppress(FileNotFoundError):
            self.final_cpu_s = cgroups.open_group(self.outer_group).cpu_seconds()

    def _remove_files(self) -> None:
        for path in (self.root, self.image, self.bundle, self.spec.work_dir):
            shutil.rmtree(path, ignore_errors=True)


async def _tail(process: asyncio.subprocess.Process) -> str:
    if process.stderr is None:
        return ""
    with contextlib.suppress(TimeoutError):
        data = await asyncio.wait_for(process.stderr.read(4096), 1)
        return data.decode(errors="replace").strip()
    return ""
