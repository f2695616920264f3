"""The default backend: bubblewrap namespaces, seccomp and cgroup limits, one resident each.

Each sandbox gets its own unprivileged host uid, sized host-side tmpfs mounts as /work and /tmp
(resizable from the host, so a pooled sandbox takes its owner's sizes), cgroups created before
launch, and a resident process that forks every exec (no per-exec bwrap or cgroup join).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import hashlib
import json
import logging
import os
import shutil
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from steward.errors import SandboxStateError, SandboxUnavailable
from steward.sandbox import cgroups, launcher, resident, seccomp
from steward.sandbox.cgroups import CgroupGroup
from steward.sandbox.channel import LINE_LIMIT, ResidentChannel
from steward.sandbox.seccomp import build_filter
from steward.sandbox.types import (
    ExecEvent,
    ExecRequest,
    ExecResult,
    Instance,
    SandboxSpec,
    StandbyMode,
)

BWRAP = "/usr/bin/bwrap"
WAIT_FOR_EXIT_S = 5.0
log = logging.getLogger("steward.sandbox")
SANDBOX_UID = 65534  # "nobody" inside the user namespace
RESIDENT_PATH = "/run/steward/resident.py"
PYTHON = "/usr/bin/python3"
CGROUP_PREFIX = "sbx-"
MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND = 0x2, 0x4, 0x20, 0x1000
# Where sandboxes' work dirs are mounted: reachable by every sandbox uid, wherever `home` is.
RUNTIME_ROOT = Path("/run/steward-sandboxes")
MNT_DETACH = 0x2
ETC_FILES = ("/etc/alternatives", "/etc/ld.so.cache", "/etc/localtime", "/etc/ssl/certs")


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def mount_tmpfs(target: Path, size_mib: int, uid: int) -> None:
    options = f"size={size_mib}m,mode=0700,uid={uid},gid={uid}".encode()
    if _libc().mount(b"tmpfs", str(target).encode(), b"tmpfs", MS_NOSUID | MS_NODEV, options):
        raise OSError(ctypes.get_errno(), f"mount tmpfs on {target}")


def resize_tmpfs(target: Path, size_mib: int) -> None:
    """Change a mounted tmpfs's size; the sandbox's bind mount of it shares the superblock."""
    flags = MS_REMOUNT | MS_NOSUID | MS_NODEV
    if _libc().mount(b"tmpfs", str(target).encode(), b"tmpfs", flags, f"size={size_mib}m".encode()):
        raise OSError(ctypes.get_errno(), f"resize tmpfs on {target}")


def unmount(target: Path) -> None:
    _libc().umount2(str(target).encode(), MNT_DETACH)  # EINVAL when not mounted: fine


def traversable_dirs(work_dir: Path) -> None:
    """Create the sandbox's state dir under RUNTIME_ROOT, searchable (not listable) by others:
    bwrap runs as the sandbox's uid and must reach its mount sources."""
    for directory in (RUNTIME_ROOT, work_dir.parent, work_dir, tmp_dir(work_dir)):
        directory.mkdir(mode=0o711, exist_ok=True)
        os.chmod(directory, 0o711)


def tmp_dir(work_dir: Path) -> Path:
    """The host side of the sandbox's /tmp, beside its work dir."""
    return work_dir.parent / "tmp"


def public_resident() -> Path:
    """A world-readable copy of the resident script (the package may sit in a private dir),
    named by its content: Steward processes of different versions on one host share /run."""
    source = Path(resident.__file__).read_bytes()
    target = RUNTIME_ROOT / f"resident-{hashlib.sha256(source).hexdigest()[:16]}.py"
    if not target.exists() or target.read_bytes() != source:
        temporary = target.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_bytes(source)
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    return target


def mount_volumes(spec: SandboxSpec, uid: int) -> None:
    """Bind each volume (in a private dir) beside the work dir, owned by the sandbox's uid."""
    for name, host_dir in spec.volumes.items():
        target = spec.work_dir.parent / "volumes" / name
        target.mkdir(parents=True, mode=0o711, exist_ok=True)
        os.chmod(target.parent, 0o711)
        os.chown(host_dir, uid, uid)
        if _libc().mount(str(host_dir).encode(), str(target).encode(), None, MS_BIND, None):
            raise OSError(ctypes.get_errno(), f"bind-mount volume {name}")


def unmount_all(spec: SandboxSpec) -> None:
    for name in spec.volumes:
        unmount(spec.work_dir.parent / "volumes" / name)
    unmount(tmp_dir(spec.work_dir))
    unmount(spec.work_dir)


def bwrap_arguments(spec: SandboxSpec, seccomp_fd: int, sources: dict[str, Path]) -> list[str]:
    """`sources`: in-sandbox path -> host path, each reachable by the sandbox's host uid."""
    args = [
        "--unshare-all",
        "--unshare-user",
        "--uid", str(SANDBOX_UID),
        "--gid", str(SANDBOX_UID),
        "--disable-userns",
        "--cap-drop", "ALL",
        "--die-with-parent",
        "--new-session",
        "--hostname", "sandbox",
        "--ro-bind", "/usr", "/usr",
        "--symlink", "usr/lib", "/lib",
        "--symlink", "usr/lib64", "/lib64",
        "--symlink", "usr/bin", "/bin",
        "--symlink", "usr/sbin", "/sbin",
    ]  # fmt: skip
    for path in ETC_FILES:
        args += ["--ro-bind-try", path, path]
    args += ["--proc", "/proc", "--dev", "/dev"]
    args += ["--bind", str(sources["/tmp"]), "/tmp"]
    args += ["--bind", str(sources["/work"]), "/work"]
    for name in sorted(spec.volumes):
        args += ["--bind", str(sources[f"/volumes/{name}"]), f"/volumes/{name}"]
    args += ["--ro-bind", str(sources[RESIDENT_PATH]), RESIDENT_PATH]
    args += ["--remount-ro", "/dev", "--remount-ro", "/"]
    args += ["--seccomp", str(seccomp_fd), "--clearenv"]
    args += ["--setenv", "PATH", "/usr/local/bin:/usr/bin:/bin", "--setenv", "HOME", "/work"]
    args += ["--setenv", "LANG", "C.UTF-8", "--chdir", "/work"]
    return args


RESIDENT_COMMAND = [PYTHON, "-I", "-S", RESIDENT_PATH, "serve"]


def _memfd(name: str, data: bytes) -> int:
    fd = os.memfd_create(name, 0)  # no CLOEXEC: the launcher hands it on to bwrap
    os.write(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


class BwrapBackend:
    name = "bwrap"
    isolated = True
    standby_modes: tuple[StandbyMode, ...] = ("warm",)

    def unavailable_reason(self) -> str | None:
        if not Path(BWRAP).exists():
            return "bubblewrap is not installed (apt-get install bubblewrap)"
        if not Path(PYTHON).exists():
            return f"{PYTHON} is needed inside the sandbox"
        if os.geteuid() != 0:
            return "the bwrap backend starts sandboxes as per-sandbox host uids: run as root"
        return seccomp.unavailable_reason() or cgroups.unavailable_reason()

    async def start(self, spec: SandboxSpec) -> Instance:
        reason = self.unavailable_reason()
        if reason:
            raise SandboxUnavailable(reason)
        traversable_dirs(spec.work_dir)
        mount_tmpfs(spec.work_dir, spec.limits.disk_mib, spec.host_uid)
        group: CgroupGroup | None = None
        try:
            mount_tmpfs(tmp_dir(spec.work_dir), spec.limits.tmp_mib, spec.host_uid)
            mount_volumes(spec, spec.host_uid)
            group = await asyncio.to_thread(cgroups.create, CGROUP_PREFIX + spec.id, spec.limits)
            instance = await BwrapInstance.launch(spec, group)
        except BaseException:
            if group is not None:
                await asyncio.to_thread(group.remove)
            unmount_all(spec)
            raise
        return instance


class BwrapInstance:
    def __init__(
        self,
        spec: SandboxSpec,
        group: CgroupGroup,
        process: asyncio.subprocess.Process,
        channel: ResidentChannel,
    ) -> None:
        self.spec = spec
        self.group = group
        self.process = process
        self.channel = channel
        self._stderr_tail = b""
        self._stderr_task = asyncio.create_task(self._collect_stderr())
        self._cpu_before_owner = 0.0  # a pooled sandbox's launch CPU is not its owner's

    @classmethod
    async def launch(cls, spec: SandboxSpec, group: CgroupGroup) -> BwrapInstance:
        seccomp_fd = _memfd("steward-seccomp", build_filter())
        sources = {
            "/work": spec.work_dir,
            "/tmp": tmp_dir(spec.work_dir),
            RESIDENT_PATH: public_resident(),
        }
        sources |= {
            f"/volumes/{name}": spec.work_dir.parent / "volumes" / name for name in spec.volumes
        }
        args = bwrap_arguments(spec, seccomp_fd, sources)
        args_fd = _memfd("steward-bwrap-args", b"".join(a.encode() + b"\0" for a in args))
        passed = (seccomp_fd, args_fd)
        config = {
            "cgroup_procs": [str(p) for p in group.procs_files()],
            "uid": spec.host_uid,
            "gid": spec.host_uid,
            "open_files": spec.limits.open_files,
            "keep_fds": list(passed),
            # Arguments by descriptor: /proc/1/cmdline inside shows no host paths.
            "exec": [BWRAP, "--args", str(args_fd), *RESIDENT_COMMAND],
        }
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-I", "-S", launcher.__file__, json.dumps(config),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                pass_fds=passed,
                env={},
                limit=LINE_LIMIT,
            )  # fmt: skip
        finally:
            for fd in passed:
                os.close(fd)
        assert process.stdin is not None and process.stdout is not None
        instance = cls(spec, group, process, ResidentChannel(process.stdout, process.stdin))
        try:
            await instance.channel.ping()
        except SandboxStateError as exc:
            await instance.destroy()
            detail = instance._stderr_tail.decode(errors="replace").strip()
            raise SandboxStateError(f"the sandbox did not start: {detail or exc}") from exc
        except BaseException:  # cancelled mid-launch (a pool closing): leave nothing running
            await asyncio.shield(instance.destroy())
            raise
        return instance

    def hand_over(self, spec: SandboxSpec) -> None:
        """Give a pooled sandbox its owner's limits and environment (same id, uid and dirs).

        Memory, pids and CPU rate go to its cgroups and the sizes of /work and /tmp to their
        host-side tmpfs mounts (the kernel enforces them from the next write or fork on); open
        files and the environment are applied by the resident to every command, and the CPU
        budget counts from now. Volumes are mounted at launch only (see `pool.fits`).
        """
        if (spec.id, spec.work_dir, spec.host_uid) != (
            self.spec.id,
            self.spec.work_dir,
            self.spec.host_uid,
        ) or spec.volumes:
            raise SandboxStateError("a pooled sandbox keeps its id, uid, directories and mounts")
        if self.process.returncode is not None:
            raise SandboxStateError("the pooled sandbox's processes have exited")
        old, new = self.spec.limits, spec.limits
        if (old.memory_mib, old.pids, old.cpus) != (new.memory_mib, new.pids, new.cpus):
            self.group.apply(new)
        if new.disk_mib != old.disk_mib:
            resize_tmpfs(spec.work_dir, new.disk_mib)
        if new.tmp_mib != old.tmp_mib:
            resize_tmpfs(tmp_dir(spec.work_dir), new.tmp_mib)
        self._cpu_before_owner = self.group.cpu_seconds()
        self.spec = spec

    async def _collect_stderr(self) -> None:
        assert self.process.stderr is not None
        while chunk := await self.process.stderr.read(4096):
            self._stderr_tail = (self._stderr_tail + chunk)[-4096:]

    async def exec(self, request: ExecRequest) -> AsyncIterator[ExecEvent]:
        if self.process.returncode is not None:
            raise SandboxStateError("the sandbox's processes have exited")
        ooms = self.group.oom_kills()
        async for event in self.channel.exec(request, self.spec.limits):
            if isinstance(event, ExecResult) and self.group.oom_kills() > ooms:
                event = ExecResult(**{**event.__dict__, "oom_killed": True})
            yield event

    async def standby(self, mode: StandbyMode) -> None:
        if mode != "warm":
            raise SandboxStateError("bwrap sandboxes support warm standby (freezer) only")
        await self.group.freeze()

    async def resume(self) -> None:
        await self.group.thaw()

    def cpu_seconds(self) -> float:
        return self.group.cpu_seconds() - self._cpu_before_owner

    def pids(self) -> list[int]:
        return self.group.pids()

    async def destroy(self) -> None:
        await asyncio.to_thread(self.group.remove)  # kills every process first
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()
        try:
            await asyncio.wait_for(self.process.wait(), WAIT_FOR_EXIT_S)
        except TimeoutError:  # reaped elsewhere or stuck: the cgroups are already gone
            log.warning("sandbox %s launcher did not report its exit", self.spec.id)
        self._stderr_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._stderr_task
        unmount_all(self.spec)
        await asyncio.to_thread(shutil.rmtree, self.spec.work_dir.parent, ignore_errors=True)
