"""Canonical events: load a Parquet/CSV event log or a PostgreSQL table, rename columns, normalise types and time zone.

Canonical columns: ``profile_id`` (string), ``timestamp`` (UTC), ``event_type`` (string), ``value`` (float,
may be missing).  Any other column is kept and can be used in conditions and as a categorical feature.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from customer_ai.files import read_frame, release_memory
from customer_ai.history import DataStart, data_start, find_data_start
from customer_ai.progress import logger, step

if TYPE_CHECKING:
    from customer_ai.spec import InstanceSpec

__all__ = [
    "CANONICAL_COLUMNS",
    "EventsError",
    "EventsUnavailableError",
    "canonical_profiles",
    "canonicalize",
    "check_attribute_join",
    "checked_start",
    "count_attribute_join",
    "event_table_chunks",
    "event_table_start",
    "events_start",
    "load_attributes",
    "load_event_file",
    "load_event_table",
    "load_events",
    "load_profiles",
    "parquet_error",
    "refuse_unjoined",
    "sort_events",
]

CANONICAL_COLUMNS = ("profile_id", "timestamp", "event_type", "value")
_REQUIRED = ("profile_id", "timestamp", "event_type")


class EventsUnavailableError(ConnectionError):
    """The events database cannot be reached or dropped the connection: an infrastructure fault, worth a retry."""


class EventsError(ValueError):
    """Events that cannot be used; the message says which file, which column and which rows."""


def _examples(index: pd.Index, limit: int = 5) -> str:
    shown = ", ".join(str(i) for i in index[:limit])
    return f"rows {shown}{' ...' if len(index) > limit else ''}"


def _nul_rows(column: pd.Series) -> np.ndarray:
    """Return which rows of a column hold text with a NUL character (other values never do)."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        categories = column.cat.categories
        if not pd.api.types.is_string_dtype(categories.dtype):
            return np.zeros(len(column), dtype=bool)
        bad = np.flatnonzero(categories.astype("str").str.contains("\x00", regex=False))
        return np.isin(column.cat.codes.to_numpy(), bad)
    if column.dtype == "str" or isinstance(column.dtype, pd.StringDtype):
        return column.str.contains("\x00", regex=False).fillna(False).to_numpy(dtype=bool)
    if column.dtype == object:
        return np.fromiter((isinstance(v, str) and "\x00" in v for v in column), dtype=bool, count=len(column))
    return np.zeros(len(column), dtype=bool)


def _around_nul(text: str, width: int = 20) -> str:
    at = text.index("\x00")
    start, end = max(0, at - width), at + width
    return f"{'...' if start else ''}{text[start:end]!r}{'...' if end < len(text) else ''}"


def _check_no_nul(frame: pd.DataFrame, columns: list[str], source: str) -> None:
    """Refuse text with a NUL character: no PostgreSQL text or json value can hold one, nor a report's page."""
    for name in columns:
        nul = _nul_rows(frame[name])
        if nul.any():
            raise EventsError(
                f"{source}: column {name!r} has {int(nul.sum())} values with a NUL character "
                f"({_examples(frame.index[nul])}, e.g. {_around_nul(frame[name][nul].iloc[0])}); no database text "
                "column can hold one: remove the NUL characters, or those rows, first"
            )


def _as_utc(column: pd.Series, source: str) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(column.dtype):
        parsed = column
    elif pd.api.types.is_numeric_dtype(column.dtype) and column.notna().any():
        raise EventsError(
            f"{source}: column 'timestamp' holds numbers ({column.dtype}); convert epoch values to ISO 8601 dates "
            "or datetimes first (the unit, seconds or milliseconds, cannot be guessed safely)"
        )
    else:
        parsed = pd.to_datetime(column, utc=True, errors="coerce", format="ISO8601")
        bad = parsed.isna() & column.notna()
        if bad.any():
            raise EventsError(
                f"{source}: column 'timestamp' has {int(bad.sum())} values that are not ISO 8601 dates "
                f"({_examples(column.index[bad])}, e.g. {column[bad].iloc[0]!r})"
            )
    if getattr(parsed.dt, "tz", None) is None:
        parsed = parsed.dt.tz_localize("UTC")  # naive timestamps are taken as UTC, as documented
    return parsed.dt.tz_convert("UTC").astype("datetime64[us, UTC]")


def _as_id(column: pd.Series) -> pd.Series:
    if column.dtype == "str":
        return column  # already text: converting it would only copy millions of ids twice
    if pd.api.types.is_float_dtype(column.dtype):
        finite = column.dropna()
        if (finite == np.floor(finite)).all():
            column = column.astype("Int64")
    return column.astype("string").astype("str")


def _check_ids(ids: pd.Series, source: str, column: str = "profile_id", *, distinct: pd.Index | None = None) -> None:
    """Refuse empty ids and ids with white space around them: they would score as profiles of their own.

    With ``distinct`` (the distinct values of ``ids``), the distinct ids are checked, and the rows only to
    describe a problem found: millions of events hold far fewer profiles.
    """
    if distinct is not None:
        values = pd.Series(distinct, dtype=ids.dtype)
        clean = not ((values == "").any() or values.str.contains("\x00", regex=False).any())
        if clean and (values == values.str.strip()).all():
            return
    empty = (ids == "").to_numpy()
    if empty.any():
        raise EventsError(
            f"{source}: column {column!r} is empty text on {int(empty.sum())} of {len(ids)} rows "
            f"({_examples(ids.index[empty])}); drop or fill those rows first"
        )
    nul = ids.str.contains("\x00", regex=False).to_numpy()
    if nul.any():
        raise EventsError(
            f"{source}: column {column!r} has {int(nul.sum())} ids with a NUL character "
            f"({_examples(ids.index[nul])}); no database text column can hold one"
        )
    padded = (ids != ids.str.strip()).to_numpy()
    if padded.any():
        raise EventsError(
            f"{source}: column {column!r} has {int(padded.sum())} ids with white space around them "
            f"({_examples(ids.index[padded])}, e.g. {ids[padded].iloc[0]!r}); strip them first, or "
            f"{ids[padded].iloc[0].strip()!r} and {ids[padded].iloc[0]!r} would be two profiles"
        )


def check_attribute_join(events: pd.DataFrame, attributes: pd.DataFrame | None, source: str) -> dict | None:
    """Count the event profiles without a row of profile attributes; refuse when none has one.

    Ids are compared as text, exactly: ``12346.0`` (a float written to a CSV) is not ``12346``.

    Returns
    -------
    dict or None
        ``profiles``, ``with_attributes`` and ``without_attributes`` counts (None without attributes).

    Raises
    ------
    EventsError
        When no profile of the events has attributes (the ids are written differently in the two sources).
    """
    counts = count_attribute_join(events, attributes)
    if counts is not None:
        first = attributes.index[0] if len(attributes) else None
        refuse_unjoined(counts, first, events["profile_id"].iloc[0] if len(events) else None, source)
    return counts


def count_attribute_join(events: pd.DataFrame, attributes: pd.DataFrame | None) -> dict | None:
    """Return how many of the events' profiles have a row of attributes (see :func:`check_attribute_join`).

    The counts of events split by profile add up to those of all the events.
    """
    if attributes is None:
        return None
    profiles = pd.Index(events["profile_id"].unique())
    joined = int(profiles.isin(attributes.index).sum())
    return {"profiles": len(profiles), "with_attributes": joined, "without_attributes": len(profiles) - joined}


def refuse_unjoined(counts: dict, attribute_example: object, example: object, source: str) -> None:
    """Raise an EventsError when profiles have events but none has attributes.

    ``example`` is an event profile's id, ``attribute_example`` the profile file's first id (None: it has no rows).
    """
    if counts["profiles"] and counts["with_attributes"] == 0:
        raise EventsError(
            f"{source}: none of the {counts['profiles']:,} profiles in the events has a row in the profile file "
            f"(event ids look like {example!r}, profile ids like {attribute_example!r}); the ids must be "
            "written the same way in both"
            if attribute_example is not None
            else f"{source}: the profile file has no rows"
        )


def canonicalize(
    frame: pd.DataFrame, columns: dict[str, str] | None = None, source: str = "events", *, sort: bool = True
) -> pd.DataFrame:
    """Rename, type-check and sort an event frame into the canonical schema.

    Parameters
    ----------
    frame : pandas.DataFrame
        The raw events.  Error messages name rows by its index (a batch of a larger source indexed from its
        first row's number names the source's rows).
    columns : dict, optional
        Mapping from canonical names to the frame's names, e.g. ``{"profile_id": "customer"}``.
    source : str, default "events"
        Name used in error messages.
    sort : bool, default True
        Sort the rows (see :func:`sort_events`); False keeps them in their order and index (a batch of a source
        whose events are sorted later, a partition at a time).

    Returns
    -------
    pandas.DataFrame
        Canonical events sorted by ``timestamp`` then ``profile_id``, with a fresh RangeIndex.

    Raises
    ------
    EventsError
        For missing columns, missing ids or timestamps, unparseable dates or non-numeric values.
    """
    columns = columns or {}
    missing_sources = [f"{canon} <- {name!r}" for canon, name in columns.items() if name not in frame.columns]
    if missing_sources:
        raise EventsError(
            f"{source}: the column mapping names columns the data does not have: {', '.join(missing_sources)} "
            f"(columns: {', '.join(map(str, frame.columns))})"
        )
    renamed = frame.rename(columns={name: canon for canon, name in columns.items()})
    missing = [c for c in _REQUIRED if c not in renamed.columns]
    if missing:
        raise EventsError(
            f"{source}: missing required column(s) {missing}; map them with events.columns "
            f"(columns: {', '.join(map(str, frame.columns))})"
        )
    events = renamed  # copy-on-write: the columns replaced below never change the caller's frame
    for name in _REQUIRED:
        nulls = events[name].isna()
        if nulls.any():
            raise EventsError(
                f"{source}: column {name!r} is empty on {int(nulls.sum())} of {len(events)} rows "
                f"({_examples(events.index[nulls])}); drop or fill those rows first"
            )
    events["profile_id"] = _as_id(events["profile_id"])
    id_rank, distinct_ids = pd.factorize(events["profile_id"], sort=True)  # the ids ranked once: checks and order
    _check_ids(events["profile_id"], source, distinct=distinct_ids)
    if events["event_type"].dtype != "str":
        events["event_type"] = events["event_type"].astype("str")
    _check_no_nul(events, [c for c in events.columns if c not in ("profile_id", "timestamp")], source)
    events["timestamp"] = _as_utc(events["timestamp"], source)
    if "value" in events.columns:
        value = pd.to_numeric(events["value"], errors="coerce")
        bad = value.isna() & events["value"].notna()
        if bad.any():
            raise EventsError(
                f"{source}: column 'value' has {int(bad.sum())} non-numeric values "
                f"({_examples(events.index[bad])}, e.g. {events['value'][bad].iloc[0]!r})"
            )
        events["value"] = value.astype("float64")
    else:
        events["value"] = np.nan
    ordered = list(CANONICAL_COLUMNS) + [c for c in events.columns if c not in CANONICAL_COLUMNS]
    events = events[ordered]
    del frame, renamed  # the raw columns: each goes as soon as its sorted copy is made
    if not sort:
        return events
    return _sorted(events, id_rank, distinct_ids)


def sort_events(events: pd.DataFrame) -> pd.DataFrame:
    """Return canonical events sorted by ``timestamp`` then ``profile_id`` (a stable sort), with a fresh RangeIndex.

    Events already in that order are returned as they are (a fresh index, no copy); otherwise each column is
    copied in order one at a time, so millions of events are never held twice.
    """
    id_rank, distinct_ids = pd.factorize(events["profile_id"], sort=True)
    return _sorted(events, id_rank, distinct_ids)


def _sorted(events: pd.DataFrame, id_rank: np.ndarray, distinct_ids: pd.Index) -> pd.DataFrame:
    order = _time_then_id_order(events, id_rank)
    if np.array_equal(order, np.arange(len(order))):
        return events.reset_index(drop=True)  # already in order: nothing to copy
    unsorted, ids = {name: events[name] for name in events.columns}, [id_rank, distinct_ids]
    del events, id_rank, distinct_ids
    return _in_order(unsorted, order, ids)


def _in_order(unsorted: dict[str, pd.Series], order: np.ndarray, ids: list) -> pd.DataFrame:
    """Return the frame of the ``unsorted`` columns with their rows in ``order``, emptying ``unsorted``.

    ``ids`` holds the codes and distinct values of ``profile_id`` (``factorize``), which it is rebuilt from;
    emptied too, so that each input is freed once its sorted copy is made.
    """
    columns = {}
    for name in list(unsorted):  # a column at a time: millions of events are never held twice
        column = unsorted.pop(name)
        if name == "profile_id":
            column = None
            columns[name] = _taken_text(ids.pop(0), ids.pop(0), order)
        elif column.dtype == "str":
            codes, uniques = pd.factorize(column, use_na_sentinel=False)  # missing text is one of the uniques
            column = None
            columns[name] = _taken_text(codes, uniques, order)
            del codes, uniques
        else:
            columns[name] = column.take(order).reset_index(drop=True)
        del column
        release_memory(collect=False)  # the unsorted column, before the next one is copied
    return pd.DataFrame(columns)


def _taken_text(codes: np.ndarray, uniques: pd.Index, order: np.ndarray) -> pd.Series:
    """Return the text column ``uniques[codes]`` in ``order``, built from its distinct values.

    Taking rows of millions of Arrow strings first joins all their chunks into one copy; taking from the
    distinct values only writes the result (at 49M events, 1.3 GB less at the peak and no slower).
    """
    import pyarrow as pa  # noqa: PLC0415 (as pandas' own text columns do, only once text is sorted)

    small = codes.astype(np.int32) if len(uniques) < 2**31 else codes  # 4 bytes a row, not pandas' 8
    return pd.Series(pd.array(pa.array(uniques.array).take(pa.array(small[order])), dtype=uniques.dtype))


def _time_then_id_order(events: pd.DataFrame, id_rank: np.ndarray) -> np.ndarray:
    """Return the row order by ``timestamp`` then ``profile_id``, equal rows in their order (a stable sort).

    The same order as ``sort_values(["timestamp", "profile_id"], kind="stable")``, several times faster on
    millions of events: the ids are ranked once (``id_rank``: ``factorize`` with sorted codes) and both keys
    sorted as integers.
    """
    moment = pd.DatetimeIndex(events["timestamp"]).asi8  # in the column's own unit: any date fits
    return np.lexsort((id_rank, moment))


_NOT_REGULAR = {
    stat.S_IFIFO: "a named pipe (FIFO)",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
}


def _kind_of(path: Path) -> str:
    """Return "file" or "folder" for what ``path`` names, without opening it; EventsError for anything else.

    A named pipe would block the reader forever, a loop of symbolic links would look like a missing file: both
    are said as they are.
    """
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise EventsError(f"{path}: a loop of symbolic links (it never leads to a file)") from None
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            dangling = f" (a symbolic link to {os.readlink(path)!r}, which does not exist)" if path.is_symlink() else ""
            raise EventsError(f"{path}: file not found{dangling}") from None
        raise EventsError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if stat.S_ISDIR(mode):
        return "folder"
    if stat.S_ISREG(mode):
        return "file"
    what = _NOT_REGULAR.get(stat.S_IFMT(mode), "not a regular file")
    raise EventsError(f"{path}: is {what}, not a file: read a regular file or a folder of Parquet files")


def _check_parquet_folder(path: Path) -> None:
    """Refuse a folder without Parquet files, or holding anything but files and folders (as Arrow lists them)."""
    found = False
    for entry in sorted(path.rglob("*")):
        if any(part.startswith((".", "_")) for part in entry.relative_to(path).parts):
            continue  # Arrow skips hidden and underscore files ("_SUCCESS", ".crc")
        kind = _kind_of(entry)
        found = found or kind == "file"
    if not found:
        raise EventsError(
            f"{path}: the folder holds no Parquet files (files whose names start with '.' or '_' are skipped)"
        )


def _read_parquet(path: Path, kind: str) -> pd.DataFrame:
    import pyarrow as pa  # noqa: PLC0415

    if kind == "folder":
        _check_parquet_folder(path)
    try:
        return read_frame(path)
    except pa.ArrowMemoryError:
        raise  # the machine, not the file
    except (pa.ArrowException, OSError) as exc:
        raise parquet_error(path, kind, exc) from None


def parquet_error(path: Path, kind: str, exc: Exception) -> EventsError:
    """Return the error that says why Arrow could not read the Parquet file or folder (``kind``) ``path``."""
    if isinstance(exc, OSError) and exc.errno is not None:  # the system's error, not Arrow's about the bytes
        return EventsError(f"{path}: cannot be read ({exc.strerror or exc})")
    reason = re.sub(
        r"^Error creating dataset\. Could not read schema from '[^']*'\. Is this a 'parquet' file\?: ",
        "",
        " ".join(str(exc).split()),
    )
    opened = re.match(r"^Could not open Parquet input source '(?P<file>[^']*)': ", reason)
    if opened:  # the file itself, or the file of the folder that is not Parquet
        named = "" if opened["file"] == str(path) else f"{opened['file']}: "
        reason = named + reason[opened.end() :]
    where = "a file of the folder is" if kind == "folder" else "the file is"
    return EventsError(f"{path}: {where} not Parquet, or is damaged (cut short?): {reason}")


def _utf16(head: bytes) -> str | None:
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "it starts with a UTF-16 byte order mark"
    if len(head) >= 2 and 0 in head[:2]:
        return "its first characters hold NUL bytes, as UTF-16 text does"
    return None


def _first_non_utf8(path: Path) -> str:
    """Say where the first byte that is not UTF-8 is: the line, the byte within it and the text around it."""
    with path.open("rb") as lines:
        for number, line in enumerate(lines, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as exc:
                around = line[max(0, exc.start - 20) : exc.start + 20].rstrip(b"\r\n")
                return f"line {number}, byte {exc.start + 1} is 0x{line[exc.start]:02x} (in {around!r})"
    return "a byte sequence that is not UTF-8"


def _read_csv(path: Path, id_column: str) -> pd.DataFrame:
    with path.open("rb") as file:
        utf16 = _utf16(file.read(4))
    if utf16:
        raise EventsError(f"{path}: the file is not UTF-8 text: {utf16}; save it as UTF-8")
    try:
        return pd.read_csv(path, dtype={id_column: "str"})  # ids stay text: "007" is not 7
    except pd.errors.EmptyDataError:
        raise EventsError(f"{path}: the file is empty (not even a header line)") from None
    except UnicodeDecodeError:
        raise EventsError(
            f"{path}: the file is not UTF-8 text: {_first_non_utf8(path)}; save it as UTF-8 (Latin-1 and "
            "Windows-1252, which some spreadsheets write, are not read)"
        ) from None
    except pd.errors.ParserError as exc:
        raise EventsError(f"{path}: not a readable CSV file: {' '.join(str(exc).split())}") from None


def _read_table_file(path: Path, id_column: str = "profile_id") -> pd.DataFrame:
    """Read a Parquet file or folder, or a CSV file, after checking that it is one (nothing else is opened)."""
    kind = _kind_of(path)
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return _read_parquet(path, kind)
    if suffix == ".csv" and kind == "folder":
        raise EventsError(f"{path}: is a folder, not a CSV file (only Parquet data can be a folder of files)")
    if suffix == ".csv":
        return _read_csv(path, id_column)
    raise EventsError(f"{path}: unsupported file type {suffix!r} (use .parquet or .csv)")


def load_event_file(path: str | Path, columns: dict[str, str] | None = None) -> pd.DataFrame:
    """Load a Parquet or CSV event file into canonical events.

    Parameters
    ----------
    path : str or pathlib.Path
        The file; its extension picks the reader.
    columns : dict, optional
        Mapping from canonical names to the file's names.

    Returns
    -------
    pandas.DataFrame
        Canonical events, see :func:`canonicalize`.
    """
    path = Path(path)
    id_column = (columns or {}).get("profile_id", "profile_id")
    return canonicalize(_read_table_file(path, id_column), columns, source=str(path))


def load_profiles(path: str | Path, attributes: list[str], id_column: str = "profile_id") -> pd.DataFrame:
    """Load static profile attributes, one row per profile, indexed by ``profile_id``.

    Parameters
    ----------
    path : str or pathlib.Path
        Parquet or CSV file.
    attributes : list of str
        Columns to keep.
    id_column : str, default "profile_id"
        The file's profile id column.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``profile_id`` (string), one column per attribute.
    """
    path = Path(path)
    frame = canonical_profiles(_read_table_file(path, id_column), attributes, id_column, str(path))
    repeated = frame["profile_id"].duplicated(keep=False)
    if repeated.any():
        raise EventsError(
            f"{path}: {int(repeated.sum())} rows share a profile_id (e.g. {frame['profile_id'][repeated].iloc[0]!r}); "
            "the profile file needs one row per profile"
        )
    return frame.set_index("profile_id")


def canonical_profiles(
    frame: pd.DataFrame, attributes: list[str], id_column: str, source: str, *, names: list[str] | None = None
) -> pd.DataFrame:
    """Return rows of a profile file checked and made canonical: ``profile_id`` (text) and the attributes.

    Refuses a missing column (``names``: every column of the file, when ``frame`` holds only some of them),
    empty, padded or NUL ids, and attribute text with a NUL character; the rows keep their index (row numbers
    in messages).  Rows sharing an id are left to the caller (see :func:`load_profiles`).
    """
    names = list(frame.columns) if names is None else names
    missing = [c for c in [id_column, *attributes] if c not in names]
    if missing:
        raise EventsError(f"{source}: missing profile column(s) {missing} (columns: {', '.join(names)})")
    frame = frame[[id_column, *attributes]].rename(columns={id_column: "profile_id"})
    frame["profile_id"] = _as_id(frame["profile_id"])
    _check_ids(frame["profile_id"], source, id_column)
    _check_no_nul(frame, list(attributes), source)
    return frame


# PostgreSQL type oids -> the pandas dtype a column gets, whatever rows a chunk holds (other types stay objects)
_PG_DTYPES = {
    16: "boolean",  # bool
    20: "Int64",  # int8
    21: "Int64",  # int2
    23: "Int64",  # int4
    700: "float64",  # float4
    701: "float64",  # float8
    1700: "float64",  # numeric
    18: "str",  # char
    19: "str",  # name
    25: "str",  # text
    1042: "str",  # bpchar
    1043: "str",  # varchar
    2950: "str",  # uuid
    1082: "datetime64[us]",  # date
    1114: "datetime64[us]",  # timestamp (naive: UTC)
    1184: "datetime64[us, UTC]",  # timestamptz
}
_PG_TIME_TYPES = (1082, 1114, 1184)  # date, timestamp, timestamptz
_PG_TIMESTAMP = 1114


def _utc_bound(value: object) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _table_columns(cursor: object, relation: object, table: str, source: str) -> list[tuple[str, int, str]]:
    """Return (name, type oid, dtype) of the table's columns, in order; EventsError when there is no such table."""
    cursor.execute("SELECT to_regclass(%s)::oid", (relation.as_string(cursor.connection),))
    oid = cursor.fetchone()[0]
    if oid is None:
        raise EventsError(f"{source}: table {table!r} not found (or not visible to this user)")
    cursor.execute(
        "SELECT a.attname, CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END, t.typtype "
        "FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid "
        "WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
        (oid,),
    )
    return [(name, oid, _PG_DTYPES.get(oid, "str" if kind == "e" else "object")) for name, oid, kind in cursor]


def _check_table_columns(
    catalog: list[tuple[str, int, str]], columns: dict[str, str], ts_column: str, bounded: bool, source: str
) -> None:
    types = {name: oid for name, oid, _ in catalog}
    listing = ", ".join(types)
    missing = [f"{canon} <- {column!r}" for canon, column in columns.items() if column not in types]
    if missing:
        raise EventsError(
            f"{source}: the column mapping names columns the table does not have: {', '.join(missing)} "
            f"(columns: {listing})"
        )
    if bounded and ts_column not in types:
        raise EventsError(f"{source}: no timestamp column {ts_column!r} (columns: {listing})")
    if bounded and types[ts_column] not in _PG_TIME_TYPES:
        raise EventsError(
            f"{source}: column {ts_column!r} is not a timestamp, timestamptz or date column; "
            "time bounds cannot be applied on the server"
        )


def _table_chunk(rows: list[tuple], catalog: list[tuple[str, int, str]]) -> pd.DataFrame:
    names = [name for name, _, _ in catalog]
    frame = pd.DataFrame.from_records(rows, columns=names)
    for name, _, dtype in catalog:
        column = frame[name].astype("object")
        if dtype.startswith("datetime64"):
            frame[name] = pd.to_datetime(column, utc=dtype.endswith("UTC]")).astype(dtype)
        elif dtype != "object":
            frame[name] = column.where(column.notna(), None).astype(dtype)
    return frame


def _table_frame(chunks: list[pd.DataFrame]) -> pd.DataFrame:
    frame = pd.concat(chunks, ignore_index=True)
    for name in frame.columns:  # plain dtypes when nothing is missing, as files give
        dtype = str(frame[name].dtype)
        if dtype in ("Int64", "boolean") and not frame[name].isna().any():
            frame[name] = frame[name].astype("int64" if dtype == "Int64" else "bool")
    return frame


def _require_driver(source: str) -> None:
    """Raise an EventsError (a deployment to fix, not a server to wait for) when the PostgreSQL driver is missing."""
    try:
        import psycopg2  # noqa: F401, PLC0415 - only deployments reading events from a database need the driver
    except ModuleNotFoundError as exc:
        raise EventsError(
            f'{source}: reading events from PostgreSQL needs the psycopg2 driver: pip install "customer-ai[postgres]"'
        ) from exc


def _relation(table: str):  # noqa: ANN202 - a psycopg2 sql.Identifier, imported lazily
    from psycopg2 import sql  # noqa: PLC0415

    schema, _, name = table.partition(".") if "." in table else ("", "", table)
    return sql.Identifier(schema, name) if schema else sql.Identifier(name)


def _connect(dsn: str, source: str):  # noqa: ANN202 - a psycopg2 connection, imported lazily
    """Return a connection to ``dsn``, naming ``source`` and never the password when it fails.

    A bad address is an EventsError (bad input); a server that does not answer is an EventsUnavailableError.
    """
    import psycopg2  # noqa: PLC0415 - only deployments reading events from a database need the driver
    import psycopg2.extensions  # noqa: PLC0415

    from customer_ai.store import mask_password, postgres_location  # noqa: PLC0415
    from customer_ai.store.address import ambiguity_message, ambiguous_address  # noqa: PLC0415

    if ambiguous_address(dsn):  # libpq would take part of the password for the host: never try, never print it
        raise EventsError(f"{source}: {ambiguity_message(dsn)}")
    try:
        given = psycopg2.extensions.parse_dsn(dsn)
    except psycopg2.ProgrammingError:
        raise EventsError(f"{source}: invalid database address {mask_password(dsn)!r}") from None
    defaults = {"connect_timeout": 5, "application_name": "customer-ai events"}
    try:
        return psycopg2.connect(dsn, **{k: v for k, v in defaults.items() if k not in given})
    except psycopg2.OperationalError as exc:
        reason = " ".join(str(exc).split())
        if given.get("password"):
            reason = reason.replace(given["password"], "***")
        raise EventsUnavailableError(f"{source}: cannot connect to {postgres_location(dsn)}: {reason}") from exc


def events_start(timestamps: pd.Series, source: str) -> DataStart:
    """Return where the history of the events really starts (see :func:`customer_ai.history.find_data_start`).

    A few events before it (at most 0.1%, such as rows with a broken date) are logged as a warning and left out
    of the history's start.

    Raises
    ------
    EventsError
        When more than 0.1% of the events lie before the start (before a year or more without any event).
    """
    return checked_start(data_start(timestamps, source))


def checked_start(found: DataStart) -> DataStart:
    """Return ``found``, having said in a warning what lies before the start; raise when that is too much.

    Raises
    ------
    EventsError
        When more than 0.1% of the events lie before the start (see :attr:`customer_ai.history.DataStart.acceptable`).
    """
    said = found.describe()
    if not found.acceptable:
        raise EventsError(said)
    if said:
        logger.warning("%s", said)
    return found


def _start_days(rows: list[tuple]) -> pd.DataFrame:
    """Return the rows of the per-day query as :func:`customer_ai.history.event_days` gives them."""

    def stamps(values: list) -> pd.DatetimeIndex:
        return pd.DatetimeIndex([_utc_bound(v).as_unit("us") for v in values], dtype="datetime64[us, UTC]")

    day, events, first, last = (list(c) for c in zip(*rows, strict=True)) if rows else ([], [], [], [])
    return pd.DataFrame({"day": stamps(day), "events": events, "first": stamps(first), "last": stamps(last)})


def event_table_start(dsn: str, table: str, columns: dict[str, str] | None = None) -> DataStart:
    """Return where the history of an event table really starts, as :func:`events_start` does for a frame.

    A run reads only its own time window from a table; this tells how far back the table's history goes.  The
    server counts the events of each day (one row a day comes back, never the events).

    Raises
    ------
    EventsError
        When more than 0.1% of the events lie before the start, or the table or its column cannot be read.
    """
    source = f"postgresql table {table}"
    _require_driver(source)
    import psycopg2  # noqa: PLC0415
    from psycopg2 import sql  # noqa: PLC0415

    moment = sql.Identifier((columns or {}).get("timestamp", "timestamp"))
    query = sql.SQL(
        "SELECT date_trunc('day', {0}), count(*), min({0}), max({0}) FROM {1} WHERE {0} IS NOT NULL "
        "GROUP BY 1 ORDER BY 1"
    ).format(moment, _relation(table))
    connection = _connect(dsn, source)
    try:
        connection.set_session(readonly=True)
        with connection.cursor() as cursor:
            cursor.execute("SET TIME ZONE 'UTC'")  # days are UTC days, as for files
            cursor.execute(query)
            rows = cursor.fetchall()
    except psycopg2.OperationalError as exc:  # the server went away or the connection broke: retry
        raise EventsUnavailableError(f"{source}: {' '.join(str(exc).split())}") from exc
    except psycopg2.Error as exc:
        raise EventsError(f"{source}: {' '.join(str(exc).split())}") from exc
    finally:
        connection.close()
    return checked_start(find_data_start(_start_days(rows), source))


def load_events(spec: InstanceSpec, events_path: str | Path | None = None) -> pd.DataFrame:
    """Load the instance's event file, or a canonical event file that replaces it.

    Parameters
    ----------
    spec : InstanceSpec
        The instance.
    events_path : str or pathlib.Path, optional
        A canonical event file (no column mapping applied) used instead of ``spec.events``.
    """
    with step("loading events") as info:
        if events_path is not None:
            events = load_event_file(events_path)
        elif spec.events.path is not None:
            events = load_event_file(spec.resolve(spec.events.path), spec.events.columns)
        else:
            raise NotImplementedError(
                f"instance {spec.name}: events from a database table ({spec.events.table}) are read one run "
                "window at a time (customer-ai run, Airflow); here, export them to a file and pass --events"
            )
        info["events"] = len(events)
        info["profiles"] = int(events["profile_id"].nunique())
    return events


def load_attributes(spec: InstanceSpec) -> pd.DataFrame | None:
    """Load the instance's static profile attributes, if it has any."""
    if spec.profiles is None:
        return None
    return load_profiles(spec.resolve(spec.profiles.path), spec.profiles.columns, spec.profiles.id_column)


def event_table_chunks(
    dsn: str,
    table: str,
    columns: dict[str, str] | None = None,
    *,
    start: pd.Timestamp | None = None,
    end: pd.Timestamp | None = None,
    chunk_rows: int = 100_000,
) -> Iterator[pd.DataFrame]:
    """Yield the rows of a PostgreSQL event table (or view) as raw frames of at most ``chunk_rows`` rows.

    Only rows with ``start <= timestamp < end`` are read (each bound optional): the filter runs on the server
    and rows are streamed through a server-side cursor, ``chunk_rows`` at a time.  Every column of the table is
    returned (extra columns are kept); integer and boolean columns holding missing values become nullable
    pandas integers and booleans, numerics become floats.

    Parameters
    ----------
    dsn : str
        libpq address of the database: ``postgresql://user:password@host:port/dbname`` or ``key=value`` pairs.
    table : str
        ``schema.name`` or ``name`` (found through the search path); names are taken verbatim (case-sensitive).
    columns : dict, optional
        Mapping from canonical names to the table's column names, e.g. ``{"timestamp": "occurred_at"}``.
    start, end : pandas.Timestamp, optional
        Half-open time bounds on the mapped timestamp column; naive bounds are taken as UTC.  The column may be
        ``timestamptz``, ``timestamp`` (naive values are UTC) or ``date``.
    chunk_rows : int, default 100000
        Rows fetched per round trip.

    Yields
    ------
    pandas.DataFrame
        The table's columns as they are (not canonical yet), typed by the table's column types: nullable integers
        and booleans, UTC datetimes; one empty frame when no row is in the bounds.  Each frame's index counts
        the rows read before it, so that messages about a frame name rows of the whole read.

    Raises
    ------
    EventsError
        When the database cannot be reached, the table or a mapped column does not exist, the timestamp column
        is not a time, or the rows are not valid events.
    """
    _require_driver(f"postgresql table {table}")
    import psycopg2  # noqa: PLC0415 - only deployments reading events from a database need the driver
    from psycopg2 import sql  # noqa: PLC0415

    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be at least 1, got {chunk_rows}")
    source = f"postgresql table {table}"
    relation = _relation(table)
    columns = columns or {}
    ts_column = columns.get("timestamp", "timestamp")
    bounds = {k: _utc_bound(v) for k, v in (("start", start), ("end", end)) if v is not None}
    connection = _connect(dsn, source)
    try:
        connection.set_session(readonly=True)
        with connection.cursor() as cursor:
            cursor.execute("SET TIME ZONE 'UTC'")  # naive timestamps are UTC; timestamptz values come back in UTC
            catalog = _table_columns(cursor, relation, table, source)
        _check_table_columns(catalog, columns, ts_column, bool(bounds), source)
        query = sql.SQL("SELECT {} FROM {}").format(sql.SQL(", ").join(sql.Identifier(c[0]) for c in catalog), relation)
        if bounds:
            tests = {"start": "{} >= %(start)s", "end": "{} < %(end)s"}
            query += sql.SQL(" WHERE ") + sql.SQL(" AND ").join(
                sql.SQL(tests[k]).format(sql.Identifier(ts_column)) for k in bounds
            )
        naive = {c[0]: c[1] for c in catalog}.get(ts_column) == _PG_TIMESTAMP
        params = {k: (v.tz_localize(None) if naive else v).to_pydatetime() for k, v in bounds.items()}
        read = 0
        with connection.cursor(name="customer_ai_events") as cursor:
            cursor.itersize = chunk_rows
            cursor.execute(query, params)
            while rows := cursor.fetchmany(chunk_rows):
                chunk = _table_chunk(rows, catalog)
                chunk.index = pd.RangeIndex(read, read + len(chunk))
                read += len(chunk)
                yield chunk
        if not read:
            yield _table_chunk([], catalog)
    except psycopg2.OperationalError as exc:  # the server went away or the connection broke: retry
        raise EventsUnavailableError(f"{source}: {' '.join(str(exc).split())}") from exc
    except psycopg2.Error as exc:
        raise EventsError(f"{source}: {' '.join(str(exc).split())}") from exc
    finally:
        connection.close()


def load_event_table(
    dsn: str,
    table: str,
    columns: dict[str, str] | None = None,
    *,
    start: pd.Timestamp | None = None,
    end: pd.Timestamp | None = None,
    chunk_rows: int = 100_000,
) -> pd.DataFrame:
    """Load events from a PostgreSQL table (or view) into canonical events.

    Only rows with ``start <= timestamp < end`` are read (each bound optional): the filter runs on the server
    and rows are streamed through a server-side cursor, ``chunk_rows`` at a time (see
    :func:`event_table_chunks`, which says what is read and raised).  Every column of the table is returned
    (extra columns are kept); integer and boolean columns holding missing values become nullable pandas integers
    and booleans, numerics become floats.

    Returns
    -------
    pandas.DataFrame
        Canonical events, see :func:`canonicalize`.
    """
    chunks = list(event_table_chunks(dsn, table, columns, start=start, end=end, chunk_rows=chunk_rows))
    return canonicalize(_table_frame(chunks), columns, source=f"postgresql table {table}")
