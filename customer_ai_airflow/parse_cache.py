"""A cache of what the DAG file reads from each instance file, so that parsing it again skips YAML and validation.

Airflow parses the DAG file every ``min_file_process_interval`` seconds and again when a task starts; the instance
files rarely change in between.  An entry is kept per file, valid while the file's modification time (ns) and
size are those it was read with; the whole cache is valid for one *stamp*, a digest of the code that produced it
(the caller passes the package version and the modules whose change must drop it).  A file changed less than
:data:`SETTLE_NS` ago is not cached: a second edit within the file system's clock resolution could keep its
time and size.

The cache is JSON (nothing in it is ever executed) in a folder that only its owner can write:
``$AIRFLOW_HOME/customer_ai_parse_cache`` under Airflow, else the user's cache folder
(``$XDG_CACHE_HOME/customer-ai/parse-cache``, by default ``~/.cache/customer-ai/parse-cache``), or the folder named
by ``CUSTOMER_AI_PARSE_CACHE`` (``off`` turns the cache off).  Several processes may parse at once: each writes a
whole new file and renames it over the old one, so a reader sees one or the other.  Any problem with it (a
corrupt or foreign file, a folder owned by someone else, a full disk) makes every look-up a miss, never an error.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["FORMAT", "SETTLE_NS", "ParseCache", "cache_folder", "code_stamp"]

FORMAT = 1  # the layout of the cache file; a file of another format is ignored
SETTLE_NS = 2_000_000_000  # a file modified more recently than this is read but not cached


def code_stamp(version: str, files: Iterable[Path]) -> str:
    """Return a digest of ``version`` and the path, modification time and size of each of ``files``.

    Parameters
    ----------
    version : str
        Versions of what produced the cached values (the package's, its parsers').
    files : iterable of pathlib.Path
        Source files whose change must invalidate the cache; a missing file counts as a change.
    """
    parts = [str(FORMAT), version]
    for file in files:
        try:
            info = file.stat()
        except OSError:
            parts.append(f"{file}:missing")
        else:
            parts.append(f"{file}:{info.st_mtime_ns}:{info.st_size}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def cache_folder() -> Path | None:
    """Return the folder of the cache files, creating it private to this user; None when it is off or unsafe."""
    setting = os.environ.get("CUSTOMER_AI_PARSE_CACHE", "")
    if setting.strip().lower() == "off":
        return None
    uid = os.getuid() if hasattr(os, "getuid") else 0
    folder = Path(setting) if setting else _default_folder()
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = folder.lstat()
    except OSError:
        return None
    # another user's folder, or one others may write to, could hold forged entries
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != uid or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return None
    return folder


def _default_folder() -> Path:
    """Return Airflow's home's ``customer_ai_parse_cache`` under Airflow, else the user's cache folder's."""
    airflow_home = os.environ.get("AIRFLOW_HOME")
    if airflow_home:
        return Path(airflow_home) / "customer_ai_parse_cache"
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "customer-ai" / "parse-cache"


def _file_key(path: Path) -> list[int] | None:
    """Return ``[mtime_ns, size]`` of ``path``, or None when it cannot be cached (unreadable, just changed)."""
    try:
        info = path.stat()
    except OSError:
        return None
    if time.time_ns() - info.st_mtime_ns < SETTLE_NS:
        return None
    return [info.st_mtime_ns, info.st_size]


class ParseCache:
    """The cached values of the files of one folder, for one code stamp.

    Parameters
    ----------
    file : pathlib.Path or None
        The cache file; None keeps nothing (every look-up misses and :meth:`save` does nothing).
    stamp : str
        The digest of the code that produces the values (see :func:`code_stamp`); a cache file written under
        another stamp is ignored.
    """

    def __init__(self, file: Path | None, stamp: str) -> None:
        self.file = file
        self.stamp = stamp
        self._stored = self._read()
        self._kept: dict[str, dict[str, Any]] = {}  # the entries of this parse: what save() writes
        self._changed = False

    @classmethod
    def for_folder(cls, folder: Path, stamp: str) -> ParseCache:
        """Return the cache of the files in ``folder`` (one cache file per folder) in :func:`cache_folder`."""
        where = cache_folder()
        name = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:16]
        return cls(where / f"{name}.json" if where else None, stamp)

    def _read(self) -> dict[str, dict[str, Any]]:
        if self.file is None:
            return {}
        try:
            data = json.loads(self.file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict) or data.get("stamp") != self.stamp or not isinstance(data.get("files"), dict):
            return {}
        return data["files"]

    @staticmethod
    def key(path: Path) -> list[int] | None:
        """Return ``[mtime_ns, size]`` of ``path`` now, or None when it is not to be cached (unreadable, just changed).

        Take it *before* reading the file: a change after that gives another key, so the next look-up misses.
        """
        return _file_key(path)

    def get(self, path: Path, key: list[int] | None) -> Any:  # noqa: ANN401 - whatever was put
        """Return the value stored for ``path`` when it was read with the same ``key``, else None."""
        entry = self._stored.get(str(path))
        if key is None or not isinstance(entry, dict) or entry.get("key") != key or "value" not in entry:
            return None
        self._kept[str(path)] = entry
        return entry["value"]

    def put(self, path: Path, key: list[int] | None, value: Any) -> None:  # noqa: ANN401 - any JSON value
        """Keep ``value`` for ``path`` read with ``key`` (see :meth:`key`); a None key keeps nothing."""
        if key is not None:
            self._kept[str(path)] = {"key": key, "value": value}
            self._changed = True

    def save(self) -> None:
        """Write the entries of this parse (files gone since are dropped) when any changed; errors are ignored."""
        if self.file is None or not (self._changed or self._kept.keys() != self._stored.keys()):
            return
        payload = json.dumps({"stamp": self.stamp, "files": self._kept}, sort_keys=True)
        temporary = None
        try:
            with tempfile.NamedTemporaryFile(
                "w", encoding="utf-8", dir=self.file.parent, prefix=".", suffix=".tmp", delete=False
            ) as out:
                temporary = Path(out.name)
                out.write(payload)
            os.replace(temporary, self.file)  # readers see the old file or the new one, never half of one
        except OSError:
            if temporary is not None:
                with contextlib.suppress(OSError):
                    temporary.unlink()
