"""The home: a local folder or a bucket (``s3://bucket/prefix``, ``gs://...``), behind one small interface.

Everything customer-ai keeps between steps (run folders, models) lives under the home.  A local home is a
:class:`pathlib.Path`; a bucket is a :class:`upath.UPath` over fsspec (the ``[s3]`` and ``[gcs]`` extras bring the
file systems), which has the same path API (``/``, ``exists``, ``iterdir``, ``glob``, ``mkdir``, ``open``,
``read_text``).  What the two do differently goes through the functions here:

- :func:`fetch`: a local file to read a home file with (the file itself when local, a downloaded copy otherwise),
  so that pandas, PyArrow and LightGBM read local files only;
- :func:`put`: a local file into the home, whole: an object store creates an object in one step, so a reader
  never sees half a file there either;
- :func:`move` and :func:`remove_tree`: a folder renamed (a copy and a removal in a bucket, where nothing
  points at the folder before the store's commit) or removed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import weakref
from pathlib import Path
from typing import Any

__all__ = [
    "EXTRAS",
    "HomeError",
    "as_path",
    "clear_downloads",
    "copy_tree",
    "fetch",
    "fetch_tree",
    "is_local",
    "move",
    "put",
    "remove_tree",
]

# the extra that brings each protocol's file system
EXTRAS = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs"}


class HomeError(ValueError):
    """A home address that cannot be used (an unknown protocol, or its file system is not installed)."""


def as_path(value: str | os.PathLike | Any) -> Any:  # noqa: ANN401 - a pathlib.Path or a upath.UPath
    """Return the path of ``value``: a :class:`pathlib.Path` for a local path or a ``file://`` URL, a ``UPath`` else.

    Raises
    ------
    HomeError
        For a URL whose file system is not installed (the message names the extra to install).
    """
    if isinstance(value, Path):
        return value
    if type(value).__module__.startswith("upath"):
        return value if not is_local(value) else Path(value.path)
    text = os.fspath(value) if isinstance(value, os.PathLike) else str(value)
    protocol, separator, rest = text.partition("://")
    if not separator:
        return Path(text).expanduser()
    if protocol == "file":
        return Path(rest)
    try:
        from upath import UPath  # noqa: PLC0415 - only a bucket needs it

        path = UPath(text)
        path.fs  # noqa: B018 - the file system is made here, so a missing one is said now
    except ImportError as exc:
        extra = EXTRAS.get(protocol)
        hint = f'pip install "customer-ai[{extra}]"' if extra else "install the fsspec file system of that protocol"
        raise HomeError(f"{text}: the file system of {protocol}:// is not installed ({exc}): {hint}") from None
    except ValueError as exc:
        raise HomeError(f"{text}: {exc}") from None
    return path


def is_local(path: Any) -> bool:  # noqa: ANN401 - a pathlib.Path or a upath.UPath
    """Whether ``path`` is on this machine's file system."""
    protocol = getattr(path, "protocol", "")
    return isinstance(path, Path) and protocol in ("", "file", "local")


_DOWNLOADS: list[tempfile.TemporaryDirectory] = []  # made on the first download, removed when the process ends


def _downloads() -> str:
    if not _DOWNLOADS:
        _DOWNLOADS.append(tempfile.TemporaryDirectory(prefix="customer-ai-fetched-"))
        weakref.finalize(_DOWNLOADS[0], _DOWNLOADS[0].cleanup)
    return _DOWNLOADS[0].name


def clear_downloads() -> None:
    """Remove the local copies :func:`fetch` made in this process (a task's, once it ends).

    They are removed when the process ends too, but a task process that Airflow ends with ``os._exit`` never runs
    that clean-up: a worker's local folder would fill with every task's downloads.
    """
    while _DOWNLOADS:
        _DOWNLOADS.pop().cleanup()


def fetch(path: Any) -> Path:  # noqa: ANN401
    """Return a local file holding the home file ``path``: itself when local, a fresh download of it otherwise.

    Raises
    ------
    FileNotFoundError
        When there is no such file.
    """
    if is_local(path):
        if not Path(path).exists():
            raise FileNotFoundError(f"{path} is missing")
        return Path(path)  # a file, or a local folder of Parquet files
    target = Path(tempfile.mkdtemp(dir=_downloads())) / path.name
    try:
        path.fs.get_file(path.path, str(target))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} is missing") from None
    return target


def fetch_tree(folder: Any) -> Path:  # noqa: ANN401
    """Return a local folder holding the files of the home folder ``folder`` (itself when local)."""
    if is_local(folder):
        return Path(folder)
    target = Path(tempfile.mkdtemp(dir=_downloads())) / folder.name
    target.mkdir()
    folder.fs.invalidate_cache()  # listed afresh, as copy_tree does
    for path in folder.iterdir():
        if path.is_file():
            path.fs.get_file(path.path, str(target / path.name))
    return target


def put(local: Path, path: Any) -> None:  # noqa: ANN401
    """Write the local file ``local`` to the home file ``path`` whole (a copy, when the home is local)."""
    if is_local(path):
        shutil.copyfile(local, path)
        return
    path.fs.put_file(str(local), path.path)


def copy_tree(source: Any, target: Any) -> list[str]:  # noqa: ANN401
    """Copy every file of the bucket folder ``source`` under ``target``; return the copied files' keys.

    Listed afresh (fsspec keeps listings, and another process may have written or removed files since).

    Raises
    ------
    FileNotFoundError
        When ``source`` holds no file.
    """
    fs = source.fs
    fs.invalidate_cache()
    prefix = source.path.rstrip("/") + "/"
    files = [name for name in fs.find(source.path) if name.startswith(prefix)]
    if not files:
        raise FileNotFoundError(f"{source} is missing")
    for name in files:
        fs.copy(name, target.path.rstrip("/") + "/" + name.removeprefix(prefix))
    fs.invalidate_cache()
    return files


def move(source: Any, target: Any) -> None:  # noqa: ANN401
    """Rename the folder ``source`` to ``target`` (one rename when local; copy, then remove, in a bucket)."""
    if is_local(source):
        Path(source).rename(target)
        return
    source.fs.rm(copy_tree(source, target))
    source.fs.invalidate_cache()


def remove_tree(path: Any) -> None:  # noqa: ANN401
    """Remove the folder ``path`` and everything in it; nothing when it is not there."""
    if is_local(path):
        shutil.rmtree(path, ignore_errors=True)
        return
    path.fs.invalidate_cache()
    if path.exists():
        path.fs.rm(path.path, recursive=True)
        path.fs.invalidate_cache()
