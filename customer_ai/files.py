"""Files written atomically: beside their final name, then renamed into place, so a reader never sees half a file.

Folders too: :func:`reset_dir` starts one from nothing and :func:`copy_dir` makes one appear complete.  In a
bucket home (:mod:`customer_ai.home`) a file is written locally, then stored as one object, which appears whole.

Light on purpose (json, pandas): modules that must stay cheap to import, such as the validation, use it too.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import pandas as pd

from customer_ai.home import as_path, copy_tree, fetch, is_local, move, put, remove_tree

__all__ = [
    "FILE_MODE",
    "FOLDER_MODE",
    "FileContentError",
    "copy_dir",
    "read_frame",
    "read_json",
    "read_json_object",
    "read_row_groups",
    "release_memory",
    "reset_dir",
    "write_frame",
    "write_frames",
    "write_atomically",
    "write_json",
    "write_text",
]


class FileContentError(ValueError):
    """A file whose content cannot be used (not JSON, a required key missing, ...).

    Attributes
    ----------
    path : pathlib.Path
        The file.
    problem : str
        What is wrong with it, in words (the message is ``"<path>: <problem>"``).
    """

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = as_path(path)
        self.problem = problem


def _umask() -> int:
    """Return the process's umask (read once, when this module is imported, before any thread could change it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _umask()
FILE_MODE = 0o666 & ~_UMASK  # what open() gives a new file; mkstemp's files are 0600, readable by their owner only
FOLDER_MODE = 0o777 & ~_UMASK  # what mkdir gives a new folder; mkdtemp's are 0700


def write_atomically(path: Path, write: Callable[[Path], object]) -> Path:
    """Write ``path`` whole or not at all: ``write`` fills a file beside it, which then takes its name.

    The file gets the permissions an ordinary new file gets (the umask's), so that other users of a shared home
    (an Airflow API server running as another user, say) can read it.  A write the machine refuses raises
    ``OSError`` naming ``path`` and the system's words for its errno (a full disk: "No space left on device").

    Parameters
    ----------
    path : pathlib.Path
        The file to write; its folder is created if needed.
    write : callable
        Called with the path of the file to fill.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    return _replace_atomically(path, write)


def write_text(path: Path, text: str) -> Path:
    """Write UTF-8 text atomically (see :func:`write_atomically`); return the path."""
    return _replace_atomically(path, lambda staging: staging.write_text(text, encoding="utf-8"))


def _replace_atomically(path: Path, write: Callable[[Path], object]) -> Path:
    path = as_path(path)
    if not is_local(path):
        return _put_whole(path, write)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        handle, staging = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    except OSError as exc:
        if exc.errno is None:
            raise
        raise _naming(exc, path) from exc
    os.fchmod(handle, FILE_MODE)
    os.close(handle)
    try:
        write(Path(staging))
        os.replace(staging, path)
    except OSError as exc:
        Path(staging).unlink(missing_ok=True)
        if exc.errno is None or exc.filename not in (None, staging):
            raise  # no errno to name, or about another file (one that ``write`` reads, say)
        raise _naming(exc, path) from exc
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise
    return path


def _put_whole(path: Path, write: Callable[[Path], object]) -> Path:
    """Fill a local file with ``write``, then store it as the bucket object ``path`` in one step."""
    with tempfile.TemporaryDirectory(prefix="customer-ai-put-") as folder:
        local = Path(folder) / path.name
        write(local)
        put(local, path)
    return path


def _naming(exc: OSError, path: Path) -> OSError:
    """Return the error ``exc`` naming the file being written, with the system's words for its errno.

    A full disk shows as ``OSError(28)`` without a file name from Python's writes, and as "Error writing bytes to
    file. Detail: ..." from Arrow's; either way the user needs the file and "No space left on device".
    """
    return OSError(exc.errno, os.strerror(exc.errno), str(path))  # of the errno's subclass: PermissionError, ...


def write_json(path: Path, data: object, *, strict: bool = False) -> Path:
    """Write JSON (sorted keys, indented) atomically; return the path.

    With ``strict``, values JSON cannot hold (NaN, infinities, objects) raise instead of being written as
    ``NaN`` or their ``str()``.
    """
    text = json.dumps(data, indent=2, sort_keys=True, allow_nan=not strict, default=None if strict else str) + "\n"
    return write_text(path, text)


def read_json(path: Path) -> dict:
    """Read a JSON file written by :func:`write_json`."""
    return json.loads(as_path(path).read_text(encoding="utf-8"))


def read_json_object(path: Path, required: Sequence[str] = ()) -> dict:
    """Read a JSON object written by :func:`write_json`; check that it holds the ``required`` keys.

    Parameters
    ----------
    path : pathlib.Path
        The file.
    required : sequence of str
        Keys the object must hold; a dotted key (``calibration.slope``) names a key of a nested object.

    Returns
    -------
    dict

    Raises
    ------
    FileContentError
        When the file is missing, empty, not UTF-8, not JSON, not a JSON object, or lacks a required key; the
        message names the file and what is wrong.  Other errors of the machine (``PermissionError``, ...) pass.
    """
    path = as_path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise FileContentError(path, "is missing") from None
    if not data.strip():
        raise FileContentError(path, f"is empty ({len(data)} bytes)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        problem = f"is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})"
        raise FileContentError(path, problem) from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FileContentError(
            path, f"is not valid JSON ({exc.msg}: line {exc.lineno} column {exc.colno}; {len(data):,} bytes)"
        ) from None
    if not isinstance(value, dict):
        raise FileContentError(path, f"holds a JSON {_JSON_KINDS.get(type(value), 'value')}, not an object")
    for key in required:
        _require(path, value, key)
    return value


_JSON_KINDS = {list: "array", str: "string", int: "number", float: "number", bool: "boolean", type(None): "null"}


def _require(path: Path, value: dict, key: str) -> None:
    inside: object = value
    parts = key.split(".")
    for depth, part in enumerate(parts):
        if not isinstance(inside, dict):
            raise FileContentError(path, f"lacks the key {key!r} ({'.'.join(parts[:depth])!r} is not an object)")
        if part not in inside:
            raise FileContentError(path, f"lacks the key {key!r}")
        inside = inside[part]


def read_frame(path: Path) -> pd.DataFrame:
    """Read a Parquet file as ``pandas.read_parquet`` does, freeing each Arrow column once it is converted.

    Millions of events are then never held twice (as Arrow and as pandas) while they load.
    """
    import pyarrow.parquet as pq  # noqa: PLC0415 (imported where a frame is read: this module stays light)

    frame = pq.read_table(fetch(as_path(path))).to_pandas(self_destruct=True, split_blocks=True)
    release_memory(collect=False)  # the Parquet pages and the converted columns: about half the frame at 49M events
    return frame


def release_memory(*, collect: bool = True) -> None:
    """Give freed memory back to the system (after a garbage collection, unless ``collect`` is False).

    Allocators (Arrow's pool, the C library's heap) keep freed memory for reuse; the next large allocation
    would then stack on what the last one left behind.
    """
    import pyarrow as pa  # noqa: PLC0415 (imported where memory is handed back: this module stays light)

    if collect:
        gc.collect()
    pa.default_memory_pool().release_unused()
    with contextlib.suppress(OSError, AttributeError):  # glibc only
        ctypes.CDLL("libc.so.6").malloc_trim(0)


FACTOR_COLUMNS = ("factors", "value_factors")  # a scores frame's columns of factor lists, kept as JSON text


def write_frame(path: Path, frame: pd.DataFrame, index: bool = False) -> Path:
    """Write a frame as Parquet atomically; columns of factor lists (:data:`FACTOR_COLUMNS`) are kept as JSON."""
    stored = frame
    for column in FACTOR_COLUMNS:
        if column in frame.columns and len(frame) and not isinstance(frame[column].iloc[0], str):
            stored = stored.copy() if stored is frame else stored
            stored[column] = [json.dumps(f, ensure_ascii=False) for f in frame[column]]
    return _replace_atomically(path, lambda staging: stored.to_parquet(staging, index=index))


def write_frames(path: Path, frames: Iterable[pd.DataFrame]) -> Path:
    """Write frames of the same columns one after the other as one Parquet file, atomically (no index).

    Only one frame is converted at a time: a file of millions of rows is written in bounded memory.  Each frame is
    one row group (an empty frame an empty one), so :func:`read_row_groups` gives the frames back one at a time.
    An empty ``frames`` writes nothing and raises ``ValueError``.
    """
    import pyarrow as pa  # noqa: PLC0415 (imported where a frame is written: this module stays light)
    import pyarrow.parquet as pq  # noqa: PLC0415

    def write(staging: Path) -> None:
        writer = None
        try:
            for frame in frames:
                if writer is None:
                    schema = pa.Schema.from_pandas(frame, preserve_index=False)
                    writer = pq.ParquetWriter(staging, schema)
                table = pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
                writer.write_table(table, row_group_size=max(table.num_rows, 1))
            if writer is None:
                raise ValueError(f"{path}: no frames to write")
        finally:
            if writer is not None:
                writer.close()

    return _replace_atomically(path, write)


def read_row_groups(path: Path, columns: Sequence[str] | None = None) -> Iterator[pd.DataFrame]:
    """Yield a Parquet file's row groups one at a time as frames (only ``columns``, if given).

    A file written by :func:`write_frames` gives back its frames; at most one row group is held at a time.
    """
    import pyarrow.parquet as pq  # noqa: PLC0415 (imported where a frame is read: this module stays light)

    with pq.ParquetFile(fetch(as_path(path))) as parquet:
        for group in range(parquet.num_row_groups):
            yield parquet.read_row_group(group, columns=columns).to_pandas()


def reset_dir(folder: Path) -> Path:
    """Empty ``folder`` (creating it if needed) so that a run starts from nothing; return it."""
    folder = as_path(folder)
    if folder.exists():
        retired = folder.with_name(f".{folder.name}-old-{os.getpid()}")
        move(folder, retired)
        remove_tree(retired)
    folder.mkdir(parents=True, exist_ok=not is_local(folder))  # a bucket has no folders, only names
    return folder


def copy_dir(source: Path, target: Path) -> Path:
    """Copy the folder ``source`` to ``target`` (which must not exist) so that ``target`` appears complete."""
    source, target = as_path(source), as_path(target)
    if not is_local(source):  # nothing points at the copy until it is complete: no need of a rename
        copy_tree(source, target)
        return target
    partial = target.with_name(f".{target.name}-copy-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        shutil.copytree(source, partial)
        partial.rename(target)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return target
