"""Real faults of the machine for tests: a small disk that fills up, a read-only folder, a file size limit.

A full disk is a tmpfs of a few megabytes mounted for the test (root only: the test is skipped where mounting is
not permitted); a file size limit (``RLIMIT_FSIZE``, which any user may lower for a child process) is the fault
every user can cause.  A read-only folder is a read-only bind mount of it for root, whom permission bits do not
stop, and ``chmod -R a-w`` for everybody else.
"""

from __future__ import annotations

import errno
import os
import resource
import shutil
import stat
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = os.geteuid() == 0


def _mount(*args: str) -> None:
    result = subprocess.run(["mount", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        pytest.skip(f"mount {' '.join(args)} is not permitted here: {result.stderr.strip()}")


@contextmanager
def small_disk(path: Path, size_bytes: int) -> Iterator[Path]:
    """Mount an empty tmpfs of ``size_bytes`` (rounded up to whole pages) at ``path`` for the block."""
    if not ROOT:
        pytest.skip("only root may mount a tmpfs")
    path.mkdir(parents=True, exist_ok=True)
    _mount("-t", "tmpfs", "-o", f"size={size_bytes}", "tmpfs", str(path))
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def used_bytes(path: Path) -> int:
    """Return the bytes of the blocks a tmpfs (or any file system) has in use."""
    info = os.statvfs(path)
    return (info.f_blocks - info.f_bfree) * info.f_frsize


def file_size_limit(size_bytes: int) -> Callable[[], None]:
    """Return a ``preexec_fn`` that limits the files a child process writes to ``size_bytes`` (EFBIG beyond)."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (size_bytes, size_bytes))

    return limit


@contextmanager
def limited_file_size(size_bytes: int) -> Iterator[None]:
    """Limit the files this process writes to ``size_bytes`` for the block (Python ignores SIGXFSZ: EFBIG)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size_bytes, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


@contextmanager
def failing_writes(kind: str, folder: Path, size_bytes: int) -> Iterator[tuple[int, str]]:
    """Make writes into ``folder`` fail beyond about ``size_bytes``: ``kind`` "full disk" or "file size limit".

    Yields the errno and its text the writes meet: (ENOSPC, "No space left on device") on a tmpfs of that size,
    (EFBIG, "File too large") under a limit of that size on each file this process writes.
    """
    if kind == "full disk":
        with small_disk(folder, size_bytes):
            yield errno.ENOSPC, "No space left on device"
    else:
        folder.mkdir(parents=True, exist_ok=True)
        with limited_file_size(size_bytes):
            yield errno.EFBIG, "File too large"


@contextmanager
def read_only(path: Path) -> Iterator[tuple[str, str]]:
    """Make the folder ``path`` read-only for the block; yield the error its writes meet: (text, errno name).

    Root: a read-only bind mount of the folder on itself ("Read-only file system", EROFS).  Another user: every
    write permission bit removed ("Permission denied", EACCES), and given back afterwards.
    """
    if ROOT:
        _mount("--bind", str(path), str(path))
        try:
            _mount("-o", "remount,bind,ro", str(path))
            yield "Read-only file system", "EROFS"
        finally:
            subprocess.run(["umount", "-l", str(path)], check=False)
        return
    modes = {p: p.stat().st_mode for p in [path, *path.rglob("*")]}
    for item, mode in modes.items():
        item.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    try:
        yield "Permission denied", "EACCES"
    finally:
        for item, mode in modes.items():
            item.chmod(mode)


def copy_tree(source: Path, target: Path) -> Path:
    """Copy the folder ``source`` into the existing folder ``target`` (a mount point, say); return ``target``."""
    shutil.copytree(source, target, dirs_exist_ok=True)
    return target
