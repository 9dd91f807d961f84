"""A run's events split by profile hash: read batch by batch, written out of core, used one partition at a time.

The first step of a run reads its events once, in batches of :data:`BATCH_ROWS` (a Parquet file or a
hive-partitioned folder through Arrow's dataset reader, a PostgreSQL table through a server-side cursor; a CSV file
is read whole, then split), makes each batch canonical and appends its rows to the Parquet file of their profile's
hash partition (:func:`write_split`, :func:`customer_ai.partitions.partition_of`) on disk.  No process ever holds
more than a batch and the rows of one partition: every profile's events are in exactly one partition, so what is
computed per profile (labels, features, scores, duplicates) is computed a partition at a time with the answer it
has over all the events.

A run folder keeps its partitions as ``events/part-NNNNN.parquet`` (each sorted by time then profile, as
:func:`customer_ai.events.sort_events` sorts); how many there are is decided once, when the events are split
(:func:`customer_ai.partitions.partition_count`), from ``scoring.partitions`` or from the number of events.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from customer_ai.events import (
    CANONICAL_COLUMNS,
    EventsError,
    _check_no_nul,
    _check_parquet_folder,
    _kind_of,
    _read_table_file,
    canonicalize,
    event_table_chunks,
    parquet_error,
    sort_events,
)
from customer_ai.files import read_frame
from customer_ai.partitions import partition_of

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "BATCH_ROWS",
    "EVENTS_DIR",
    "EventSource",
    "canonical_table",
    "empty_events",
    "file_source",
    "part_path",
    "read_all_parts",
    "read_part",
    "read_split_part",
    "read_split_rows",
    "remove_split_part",
    "table_source",
    "write_split",
]

EVENTS_DIR = "events"  # the run folder's subfolder of the partitions' events
BATCH_ROWS = 1_000_000  # rows read, made canonical and written at a time


def part_path(folder: Path, partition: int) -> Path:
    """Return the file of one partition's events in a run folder."""
    return folder / EVENTS_DIR / f"part-{partition:05d}.parquet"


@dataclass
class EventSource:
    """Where a run's events come from, opened: its name, how many rows it holds, and its batches of rows.

    ``batches`` yields Arrow tables of raw rows (the source's own columns) with the number of the first row of
    each, in the source's order; ``rows`` may count rows outside the run's window (a file's), so it bounds the
    events read.
    """

    name: str
    rows: int
    batches: Callable[[], Iterator[tuple[int, pa.Table]]]


def file_source(path: Path, id_column: str = "profile_id", batch_rows: int = BATCH_ROWS) -> EventSource:
    """Open a Parquet file or folder (hive-partitioned or not) or a CSV file as a source of raw batches.

    A Parquet source is read a batch at a time (its row count comes from the files' footers); a CSV file is
    read whole (its column types are inferred from all of it), then handed on in batches.

    Raises
    ------
    customer_ai.events.EventsError
        When the path is not a readable Parquet or CSV source (see :func:`customer_ai.events.load_event_file`).
    """
    import pyarrow as pa  # noqa: PLC0415
    import pyarrow.dataset as ds  # noqa: PLC0415

    path = Path(path)
    kind = _kind_of(path)
    if path.suffix.lower() != ".parquet":
        frame = _read_table_file(path, id_column)  # a CSV file, or the error that says what the file is not
        table = pa.Table.from_pandas(frame, preserve_index=False)
        del frame
        return EventSource(str(path), table.num_rows, lambda: _slices(table, batch_rows))
    if kind == "folder":
        _check_parquet_folder(path)
    try:
        # Arrow's default pre-buffering keeps every range it read cached until the scan ends: the reader's memory
        # would grow with the file (1.9 GB for 148M events, 0.75 GB without)
        unbuffered = ds.ParquetFileFormat(default_fragment_scan_options=ds.ParquetFragmentScanOptions(pre_buffer=False))
        dataset = ds.dataset(str(path), format=unbuffered, partitioning="hive")
        rows = dataset.count_rows()
    except pa.ArrowMemoryError:
        raise  # the machine, not the file
    except (pa.ArrowException, OSError) as exc:
        raise parquet_error(path, kind, exc) from None

    def batches() -> Iterator[tuple[int, pa.Table]]:
        first = 0
        # Arrow reads ahead 16 batches of 4 files by default: gigabytes of rows waiting while one is made canonical
        scanned = iter(dataset.to_batches(batch_size=batch_rows, batch_readahead=1, fragment_readahead=1))
        while True:
            try:
                batch = next(scanned, None)
            except pa.ArrowMemoryError:
                raise
            except (pa.ArrowException, OSError) as exc:  # a page cut short, a file of the folder that is not Parquet
                raise parquet_error(path, kind, exc) from None
            if batch is None:
                return
            yield first, pa.Table.from_batches([batch])
            first += batch.num_rows

    return EventSource(str(path), rows, batches)


def table_source(
    dsn: str,
    table: str,
    columns: dict[str, str] | None,
    *,
    start: pd.Timestamp,
    end: pd.Timestamp,
    rows: int,
    batch_rows: int = 100_000,
) -> EventSource:
    """Open the rows of a PostgreSQL event table in ``[start, end)`` as a source of raw batches.

    ``rows`` is how many the server counted (see :func:`customer_ai.events.event_table_start`).  Columns of a
    type without a fixed pandas type (json, arrays, inet, ...) are kept as their text, so that every batch has the
    same column types whatever values it holds.
    """
    import pyarrow as pa  # noqa: PLC0415

    def batches() -> Iterator[tuple[int, pa.Table]]:
        for chunk in event_table_chunks(dsn, table, columns, start=start, end=end, chunk_rows=batch_rows):
            for name in chunk.columns:  # json, arrays, inet...: as text, one type throughout
                if pd.api.types.is_object_dtype(chunk[name].dtype):
                    chunk[name] = pd.array([None if v is None else str(v) for v in chunk[name]], dtype="str")
            yield int(chunk.index[0]) if len(chunk) else 0, pa.Table.from_pandas(chunk, preserve_index=False)

    return EventSource(f"postgresql table {table}", rows, batches)


def _slices(table: pa.Table, rows: int) -> Iterator[tuple[int, pa.Table]]:
    for first in range(0, max(table.num_rows, 1), rows):
        yield first, table.slice(first, rows)


def _canonical_schema() -> pa.Schema:
    import pyarrow as pa  # noqa: PLC0415

    return pa.schema(
        [
            ("profile_id", pa.large_string()),
            ("timestamp", pa.timestamp("us", tz="UTC")),
            ("event_type", pa.large_string()),
            ("value", pa.float64()),
        ]
    )


def canonical_table(table: pa.Table, first_row: int, columns: dict[str, str] | None, source: str) -> pa.Table:
    """Return a batch of raw rows made canonical (:func:`customer_ai.events.canonicalize`), in their order.

    The canonical columns are checked and converted through pandas; every other column stays as the source's
    Arrow column (its type is the source's in every batch), checked for NUL characters.  Messages name rows by
    their number in the source (``first_row`` is the batch's first).

    Raises
    ------
    customer_ai.events.EventsError
        As :func:`customer_ai.events.canonicalize` does.
    """
    import pyarrow as pa  # noqa: PLC0415
    import pyarrow.compute as pc  # noqa: PLC0415

    columns = columns or {}
    names = table.column_names
    mapped = {canon: columns.get(canon, canon) for canon in CANONICAL_COLUMNS}
    wanted = [mapped[canon] for canon in CANONICAL_COLUMNS if mapped[canon] in names]
    if any(name not in names for name in columns.values()) or any(
        mapped[c] not in names for c in CANONICAL_COLUMNS[:3]
    ):
        canonicalize(table.schema.empty_table().to_pandas(), columns, source)  # raises: says which column is missing
    frame = table.select(wanted).to_pandas()
    frame.index = pd.RangeIndex(first_row, first_row + len(frame))
    canonical = canonicalize(frame, columns, source, sort=False)
    del frame
    schema = _canonical_schema()
    arrays = [pa.Array.from_pandas(canonical[f.name]).cast(f.type) for f in schema]
    extras = [n for n in names if n not in wanted and n not in CANONICAL_COLUMNS]
    for name in extras:
        column = table.column(name)
        text = column.type
        if pa.types.is_dictionary(text):
            column, text = column.cast(text.value_type), text.value_type
        if (pa.types.is_string(text) or pa.types.is_large_string(text)) and pc.any(
            pc.match_substring(column, "\x00")
        ).as_py():
            rows = pd.RangeIndex(first_row, first_row + len(column))
            named = pd.DataFrame({name: column.to_pandas().set_axis(rows)})
            _check_no_nul(named, [name], source)
    return pa.Table.from_arrays(arrays + [table.column(n) for n in extras], names=[f.name for f in schema] + extras)


def _split_file(folder: Path, partition: int) -> Path:
    """Return the file of one partition in a split (:func:`write_split`)."""
    return Path(folder) / f"split-{partition:05d}.parquet"


def remove_split_part(folder: Path, partition: int) -> None:
    """Remove one partition of a split (:func:`write_split`) once it is read: the disk holds the rest only."""
    _split_file(folder, partition).unlink(missing_ok=True)


def _partitions_of(table: pa.Table, count: int) -> np.ndarray:
    """Return the hash partition of each row's profile (each distinct id hashed once)."""
    codes, ids = pd.factorize(table.column("profile_id").to_pandas())
    return partition_of(np.asarray(ids, dtype=object), count)[codes]


def write_split(tables: Iterable[pa.Table], folder: Path, count: int) -> tuple[int, pa.Schema]:
    """Write canonical tables into ``count`` hash partitions of their profiles under ``folder``.

    Returns the rows written and their schema (:func:`read_split_part` needs it for a partition no profile
    hashed to).

    Each table's rows are grouped by partition (in their order) and appended, as a row group, to their
    partition's Parquet file (:class:`pyarrow.parquet.ParquetWriter`, one open per partition, each written to as
    the batches come): nothing but a batch and the writers' page buffers is held in memory, whatever the number
    of events.  (Arrow's dataset writer was measured first: its memory grew with the rows written, 2.8-3.3 GB
    for 148 million events in 100 partitions, against 1.4 GB flat for these writers.)  :func:`read_split_part`
    reads a partition back.  Every table must have the first one's columns and types.
    """
    import pyarrow.parquet as pq  # noqa: PLC0415

    iterator = iter(tables)
    first = next(iterator)
    schema = first.schema
    Path(folder).mkdir(parents=True, exist_ok=True)
    written = 0
    with contextlib.ExitStack() as closing:
        writers: dict[int, pq.ParquetWriter] = {}
        for table in itertools.chain([first], iterator):
            conformed = table if table.schema == schema else _conformed(table, schema)
            parts = _partitions_of(conformed, count)
            order = np.argsort(parts, kind="stable")  # a profile's rows keep their order, as a whole sort would
            bounds = np.searchsorted(parts[order], np.arange(count + 1))
            grouped = conformed.take(order)
            for partition in np.flatnonzero(np.diff(bounds)).tolist():
                if partition not in writers:
                    path = _split_file(folder, partition)
                    writers[partition] = closing.enter_context(pq.ParquetWriter(path, schema))
                rows = bounds[partition + 1] - bounds[partition]
                writers[partition].write_table(grouped.slice(bounds[partition], rows))
            written += conformed.num_rows
            del grouped
    return written, schema


def _conformed(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Return a batch cast to the first batch's schema, or say which column changed its type."""
    import pyarrow as pa  # noqa: PLC0415

    if table.column_names != schema.names:
        before, after = schema.names, table.column_names
        raise EventsError(f"the events' columns changed between batches: {before} then {after}")
    try:
        return table.cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        changed = [(f.name, str(f.type), str(g.type)) for f, g in zip(schema, table.schema, strict=True) if f != g]
        said = "; ".join(f"{name!r} is {before} in the first rows, then {after}" for name, before, after in changed)
        raise EventsError(
            f"the events' columns change type between batches: {said}; give each column one type"
        ) from None


def read_split_part(folder: Path, partition: int, schema: pa.Schema) -> pd.DataFrame:
    """Return the events of one partition of a split (:func:`write_split`), sorted by time then profile."""
    return sort_events(read_split_rows(folder, partition, schema))


def read_split_rows(folder: Path, partition: int, schema: pa.Schema) -> pd.DataFrame:
    """Return the rows of one partition of a split (:func:`write_split`) in the order they were written."""
    import pyarrow.parquet as pq  # noqa: PLC0415

    path = _split_file(folder, partition)
    if not path.exists():  # no profile hashed to it
        return empty_events(schema)
    return pq.read_table(path).to_pandas(self_destruct=True, split_blocks=True)


def empty_events(schema: pa.Schema) -> pd.DataFrame:
    """Return no events, with the columns and types of a split's (:func:`write_split`'s schema)."""
    return schema.empty_table().to_pandas()


def read_part(folder: Path, partition: int) -> pd.DataFrame:
    """Return the events of one partition of a run folder (sorted by time then profile)."""
    path = part_path(folder, partition)
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run the validate_events step again")
    return read_frame(path)


def read_all_parts(folder: Path, count: int) -> pd.DataFrame:
    """Return every partition's events of a run folder as one frame, sorted by time then profile.

    For the steps that still read all of a run's events at once: their memory follows the run's size.
    """
    if count == 1:
        return read_part(folder, 0)
    frames = [read_part(folder, partition) for partition in range(count)]
    return sort_events(pd.concat(frames, ignore_index=True))
