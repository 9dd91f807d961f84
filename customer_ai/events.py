"""Canonical events: load a Parquet or CSV event log, rename its columns, normalise types and time zone.

Canonical columns: ``profile_id`` (string), ``timestamp`` (UTC), ``event_type`` (string), ``value`` (float,
may be missing).  Any other column is kept and can be used in conditions and as a categorical feature.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["CANONICAL_COLUMNS", "EventsError", "canonicalize", "load_event_file", "load_profiles"]

CANONICAL_COLUMNS = ("profile_id", "timestamp", "event_type", "value")
_REQUIRED = ("profile_id", "timestamp", "event_type")


class EventsError(ValueError):
    """Events that cannot be used; the message says which file, which column and which rows."""


def _examples(index: pd.Index, limit: int = 5) -> str:
    shown = ", ".join(str(i) for i in index[:limit])
    return f"rows {shown}{' ...' if len(index) > limit else ''}"


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
    if pd.api.types.is_float_dtype(column.dtype):
        finite = column.dropna()
        if (finite == np.floor(finite)).all():
            column = column.astype("Int64")
    return column.astype("string").astype("str")


def canonicalize(frame: pd.DataFrame, columns: dict[str, str] | None = None, source: str = "events") -> pd.DataFrame:
    """Rename, type-check and sort an event frame into the canonical schema.

    Parameters
    ----------
    frame : pandas.DataFrame
        The raw events.
    columns : dict, optional
        Mapping from canonical names to the frame's names, e.g. ``{"profile_id": "customer"}``.
    source : str, default "events"
        Name used in error messages.

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
    events = renamed.copy()
    for name in _REQUIRED:
        nulls = events[name].isna()
        if nulls.any():
            raise EventsError(
                f"{source}: column {name!r} is empty on {int(nulls.sum())} of {len(events)} rows "
                f"({_examples(events.index[nulls])}); drop or fill those rows first"
            )
    events["profile_id"] = _as_id(events["profile_id"])
    events["event_type"] = events["event_type"].astype("str")
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
    events = events[ordered].sort_values(["timestamp", "profile_id"], kind="stable")
    return events.reset_index(drop=True)


def _read_table_file(path: Path, id_column: str = "profile_id") -> pd.DataFrame:
    if not path.exists():
        raise EventsError(f"{path}: file not found")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return pd.read_parquet(path)
    if suffix == ".csv":
        return pd.read_csv(path, dtype={id_column: "str"})  # ids stay text: "007" is not 7
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
    frame = _read_table_file(path, id_column)
    missing = [c for c in [id_column, *attributes] if c not in frame.columns]
    if missing:
        raise EventsError(f"{path}: missing profile column(s) {missing} (columns: {', '.join(frame.columns)})")
    frame = frame[[id_column, *attributes]].rename(columns={id_column: "profile_id"})
    frame["profile_id"] = _as_id(frame["profile_id"])
    repeated = frame["profile_id"].duplicated(keep=False)
    if repeated.any():
        raise EventsError(
            f"{path}: {int(repeated.sum())} rows share a profile_id (e.g. {frame['profile_id'][repeated].iloc[0]!r}); "
            "the profile file needs one row per profile"
        )
    return frame.set_index("profile_id")
