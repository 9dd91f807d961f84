"""A run's profile attributes kept per partition of its profiles: read for the profiles a step needs, never all.

The first step of a run (:func:`customer_ai.steps.validate_events`) splits the profile file by profile hash out of
core, as the events (:func:`keep_attributes`: read a batch at a time, checked as
:func:`customer_ai.events.load_profiles` checks a whole file), and writes, beside each partition's events,
``attributes/part-NNNNN.parquet``: the attribute rows of the profiles hashed to that partition
(:func:`customer_ai.partitions.partition_of`), and ``attributes/categories.json``: every column's categories
over all the profiles (:func:`customer_ai.features.attribute_categories`, what the feature plan needs).  Later
steps read only the partitions that hold the profiles they work on (:meth:`RunAttributes.of`), so no step's
memory follows the profile file.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from customer_ai import files
from customer_ai.event_split import BATCH_ROWS, file_source, read_split_rows, remove_split_part, write_split
from customer_ai.events import EventsError, canonical_profiles
from customer_ai.features import attribute_categories
from customer_ai.partitions import partition_of

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "ATTRIBUTES_DIR",
    "RunAttributes",
    "attributes_path",
    "keep_attributes",
    "read_run_attributes",
    "write_categories",
    "write_run_attributes",
]

ATTRIBUTES_DIR = "attributes"  # the run folder's subfolder of the partitions' attributes
_CATEGORIES = "categories.json"
_ROW = "__customer_ai_row__"  # each attribute row's number in the profile file, for the messages


def attributes_path(folder: Path, partition: int) -> Path:
    """Return the file of one partition's attributes in a run folder."""
    return folder / ATTRIBUTES_DIR / f"part-{partition:05d}.parquet"


@dataclass
class RunAttributes:
    """Profile attributes in partitions of their profiles, read a partition at a time.

    Attributes
    ----------
    count : int
        How many partitions (the run's events' count).
    categories : dict
        Each attribute column's categories over every profile (:func:`customer_ai.features.attribute_categories`).
    read : callable
        ``read(k)`` returns partition ``k``'s attribute rows, indexed by ``profile_id``.
    """

    count: int
    categories: dict[str, list[str]]
    read: Callable[[int], pd.DataFrame]

    def of(self, profiles: pd.Index) -> pd.DataFrame:
        """Return the attribute rows of ``profiles`` (those that have one), reading only their partitions."""
        profiles = pd.Index(profiles)
        hashed = partition_of(profiles, self.count) if len(profiles) else np.zeros(0, dtype="int64")
        frames = []
        for partition in np.unique(hashed).tolist():
            own = self.read(partition)
            frames.append(own.loc[own.index.isin(profiles[hashed == partition])])
        if not frames:
            return self.read(0).iloc[:0]
        return frames[0] if len(frames) == 1 else pd.concat(frames)


def write_run_attributes(folder: Path, partition: int, attributes: pd.DataFrame) -> None:
    """Write one partition's attribute rows (indexed by ``profile_id``) into a run folder."""
    files.write_frame(attributes_path(folder, partition), attributes.reset_index())


def write_categories(folder: Path, categories: dict[str, list[str]]) -> None:
    """Write the attribute columns' categories over every profile into a run folder."""
    files.write_json(folder / ATTRIBUTES_DIR / _CATEGORIES, categories)


def read_run_attributes(folder: Path, count: int) -> RunAttributes:
    """Return a run folder's attributes (see :func:`write_run_attributes`), read when asked for.

    Raises
    ------
    FileNotFoundError
        When the run folder has no attributes (written by an earlier version): its first step must run again.
    """
    where = folder / ATTRIBUTES_DIR / _CATEGORIES
    if not where.exists():
        raise FileNotFoundError(f"{where} is missing: run the validate_events step again")

    def read(partition: int) -> pd.DataFrame:
        return files.read_frame(attributes_path(folder, partition)).set_index("profile_id")

    return RunAttributes(count=count, categories=files.read_json(where), read=read)


def keep_attributes(
    path: Path, columns: list[str], id_column: str, folder: Path, count: int, *, batch_rows: int = BATCH_ROWS
) -> tuple[RunAttributes, object | None]:
    """Split a profile file into ``count`` partitions of its profiles and keep them in a run folder.

    The file is read a batch at a time (:func:`customer_ai.event_split.file_source`), each batch checked as
    :func:`customer_ai.events.load_profiles` checks a file (its columns, ids and text; a message counts the rows of
    the batch it names), split by profile hash out of core (:func:`customer_ai.event_split.write_split`), then
    each partition is written to the run folder (:func:`write_run_attributes`) with the columns' categories
    (:func:`write_categories`).  A profile's rows are all in its partition, so rows sharing a profile id are found
    a partition at a time.

    Returns
    -------
    tuple
        The run's attributes (:func:`read_run_attributes`) and the file's first profile id (None: no rows).

    Raises
    ------
    customer_ai.events.EventsError
        As :func:`customer_ai.events.load_profiles`: the file is not readable, misses a column, has empty, padded
        or NUL ids or NUL text, or rows sharing a profile id (counted over the whole file, the first in its
        order named).
    """
    source = file_source(Path(path), id_column, batch_rows)
    first_id: list[object] = []

    def tables() -> Iterator[pa.Table]:
        import pyarrow as pa  # noqa: PLC0415

        for first, table in source.batches():
            frame = _checked_rows(table, first, columns, id_column, path)
            if not first_id and len(frame):
                first_id.append(frame["profile_id"].iloc[0])
            yield pa.Table.from_pandas(frame, preserve_index=False)

    categories: dict[str, set[str]] = {}
    repeated, example = 0, (np.inf, None)
    with tempfile.TemporaryDirectory(prefix="customer-ai-attributes-") as scratch:
        _, schema = write_split(tables(), Path(scratch), count)
        for partition in range(count):
            own = read_split_rows(Path(scratch), partition, schema)
            twice = own["profile_id"].duplicated(keep=False).to_numpy()
            if twice.any():
                repeated += int(twice.sum())
                rows = own[_ROW].to_numpy()[twice]
                at = int(np.argmin(rows))
                example = min(example, (rows[at], own["profile_id"].to_numpy()[twice][at]))
            own = own.drop(columns=_ROW).set_index("profile_id")
            write_run_attributes(folder, partition, own)
            for column, values in attribute_categories(own).items():
                categories.setdefault(column, set()).update(values)
            remove_split_part(Path(scratch), partition)
    if repeated:
        raise EventsError(
            f"{path}: {repeated} rows share a profile_id (e.g. {example[1]!r}); the profile file needs one row per "
            "profile"
        )
    write_categories(folder, {column: sorted(values) for column, values in categories.items()})
    return read_run_attributes(folder, count), (first_id[0] if first_id else None)


def _checked_rows(table: pa.Table, first: int, columns: list[str], id_column: str, path: Path) -> pd.DataFrame:
    """Return a batch of a profile file's rows checked and made canonical, with their row numbers."""
    names = table.column_names
    present = [c for c in dict.fromkeys([id_column, *columns]) if c in names]
    frame = table.select(present).to_pandas().set_axis(pd.RangeIndex(first, first + table.num_rows))
    frame = canonical_profiles(frame, columns, id_column, str(path), names=names)
    frame[_ROW] = np.arange(first, first + len(frame), dtype="int64")
    return frame
