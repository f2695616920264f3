"""File access to a sandbox's work directory from the host, confined against hostile contents.

The sandbox controls what is inside its directory, so every path is walked one component at a
time with `O_NOFOLLOW` from a directory descriptor: a symlink anywhere is refused, never followed.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from steward.errors import SandboxPathRefused

MAX_PATH = 4096
MAX_DEPTH = 32
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass(frozen=True)
class FileEntry:
    path: str
    kind: str  # "file", "dir", "symlink" or "other"
    size: int


def parts_of(path: str) -> list[str]:
    """The path's components, or `SandboxPathRefused` for anything that could leave the dir."""
    if not path or len(path) > MAX_PATH:
        raise SandboxPathRefused("the path is empty or too long")
    if "\0" in path:
        raise SandboxPathRefused("the path contains a NUL byte")
    if path.startswith("/") or path.startswith("\\"):
        raise SandboxPathRefused("absolute paths are refused; paths are relative to /work")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise SandboxPathRefused("'..' is refused in sandbox paths")
    if not parts or len(parts) > MAX_DEPTH:
        raise SandboxPathRefused("the path names no file or is too deep")
    return parts


@contextlib.contextmanager
def _open_dir(root: Path, parts: list[str], *, create: bool = False) -> Iterator[int]:
    """A descriptor of root/parts[0]/…, refusing symlinks at every step."""
    fd = os.open(root, DIR_FLAGS)
    try:
        for part in parts:
            if create:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, 0o755, dir_fd=fd)
            try:
                child = os.open(part, DIR_FLAGS, dir_fd=fd)
            except (NotADirectoryError, OSError) as exc:
                raise _refusal(exc, part) from exc
            os.close(fd)
            fd = child
        yield fd
    finally:
        os.close(fd)


def _refusal(exc: OSError, part: str) -> Exception:
    if isinstance(exc, FileNotFoundError):
        return FileNotFoundError(f"{part!r} does not exist")
    return SandboxPathRefused(f"{part!r} is a symlink or not a directory")


def read_file(root: Path, path: str, *, max_bytes: int) -> bytes:
    *dirs, name = parts_of(path)
    with _open_dir(root, dirs) as dir_fd:
        try:
            flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
            fd = os.open(name, flags, dir_fd=dir_fd)
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise SandboxPathRefused(f"{path!r} is a symlink or cannot be opened") from exc
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):  # FIFOs and devices could block or leak
                raise SandboxPathRefused(f"{path!r} is not a regular file")
            if info.st_size > max_bytes:
                raise SandboxPathRefused(f"{path!r} is larger than {max_bytes} bytes")
            with os.fdopen(fd, "rb", closefd=False) as file:
                return file.read(max_bytes + 1)[:max_bytes]
        finally:
            os.close(fd)


def write_file(root: Path, path: str, data: bytes, *, owner: int | None) -> None:
    *dirs, name = parts_of(path)
    with _open_dir(root, dirs, create=True) as dir_fd:
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            fd = os.open(name, flags, 0o644, dir_fd=dir_fd)
        except OSError as exc:
            raise SandboxPathRefused(f"{path!r} is a symlink or cannot be written") from exc
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise SandboxPathRefused(f"{path!r} is not a regular file")
            if owner is not None:
                os.fchown(fd, owner, owner)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        if owner is not None:
            _chown_created_dirs(root, dirs, owner)


def _chown_created_dirs(root: Path, dirs: list[str], owner: int) -> None:
    for depth in range(1, len(dirs) + 1):
        with _open_dir(root, dirs[:depth]) as fd:
            info = os.fstat(fd)
            if info.st_uid != owner:
                os.fchown(fd, owner, owner)


def list_files(root: Path, path: str = "", *, limit: int = 1000) -> list[FileEntry]:
    """Entries of a directory (not recursive); symlinks are listed, not followed."""
    parts = parts_of(path) if path not in ("", ".") else []
    entries: list[FileEntry] = []
    with _open_dir(root, parts) as fd:
        for name in sorted(os.listdir(fd))[:limit]:
            info = os.stat(name, dir_fd=fd, follow_symlinks=False)
            kind = (
                "symlink"
                if stat.S_ISLNK(info.st_mode)
                else "dir"
                if stat.S_ISDIR(info.st_mode)
                else "file"
                if stat.S_ISREG(info.st_mode)
                else "other"
            )
            entries.append(FileEntry("/".join([*parts, name]), kind, info.st_size))
    return entries
