"""The file API confines every path to the work directory, whatever the sandbox put there."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from steward.errors import SandboxPathRefused
from steward.sandbox.files import list_files, read_file, write_file

TRAVERSALS = [
    "../secret",
    "a/../../secret",
    "/etc/passwd",
    "\\etc\\passwd",
    "..",
    "a/..",
    "nul\0byte",
    "",
    "x" * 5000,
]


@pytest.fixture
def work(tmp_path: Path) -> Path:
    (tmp_path / "secret").write_text("host secret")
    root = tmp_path / "work"
    root.mkdir()
    (root / "ok.txt").write_text("fine")
    (root / "link_out").symlink_to(tmp_path / "secret")
    (root / "dir_out").symlink_to(tmp_path)
    (root / "sub").mkdir()
    (root / "sub" / "inner").symlink_to("/etc")
    os.mkfifo(root / "fifo")
    return root


@pytest.mark.parametrize("path", TRAVERSALS)
def test_traversal_paths_are_refused_for_read_write_and_list(work: Path, path: str) -> None:
    with pytest.raises(SandboxPathRefused):
        read_file(work, path, max_bytes=1024)
    with pytest.raises(SandboxPathRefused):
        write_file(work, path, b"x", owner=None)
    if path:  # an empty path lists the work directory itself
        with pytest.raises(SandboxPathRefused):
            list_files(work, path)
    assert (work.parent / "secret").read_text() == "host secret"


@pytest.mark.parametrize("path", ["link_out", "dir_out/secret", "sub/inner/passwd"])
def test_symlink_escapes_are_refused_not_followed(work: Path, path: str) -> None:
    with pytest.raises(SandboxPathRefused):
        read_file(work, path, max_bytes=1024)
    with pytest.raises(SandboxPathRefused):
        write_file(work, path, b"overwritten", owner=None)
    assert (work.parent / "secret").read_text() == "host secret"


def test_a_fifo_is_refused_instead_of_blocking_the_server(work: Path) -> None:
    with pytest.raises(SandboxPathRefused, match="not a regular file"):
        read_file(work, "fifo", max_bytes=1024)


def test_files_inside_are_read_written_and_listed(work: Path) -> None:
    write_file(work, "new/deep/file.txt", b"hello", owner=None)
    assert read_file(work, "new/deep/file.txt", max_bytes=1024) == b"hello"
    assert read_file(work, "./ok.txt", max_bytes=1024) == b"fine"
    kinds = {entry.path: entry.kind for entry in list_files(work, "")}
    assert kinds["link_out"] == "symlink"
    assert kinds["new"] == "dir"
    assert kinds["ok.txt"] == "file"
    assert [e.path for e in list_files(work, "new/deep")] == ["new/deep/file.txt"]


def test_a_file_over_the_size_limit_is_refused(work: Path) -> None:
    write_file(work, "big", b"x" * 2048, owner=None)
    with pytest.raises(SandboxPathRefused, match="larger"):
        read_file(work, "big", max_bytes=1024)


def test_a_missing_file_is_not_found(work: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_file(work, "missing/file", max_bytes=1024)
