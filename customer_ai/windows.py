"""As-of dates and half-open time windows (the snapshot layout is :mod:`customer_ai.history`).

Every window here is half-open, ``[start, end)``: features of a profile at ``as_of`` see events in
``[as_of - lookback, as_of)``, its label sees events in ``[as_of, as_of + window)``.

:class:`EventIndex` holds the events encoded once for every window of a run: profile ids as integer codes in the
ids' sorted order, events sorted by (profile, time), so that a window is a contiguous run of each profile's
events and every per-profile aggregate is a NumPy reduction over integer codes.  Encoding the ids once instead of
in every group-by (pyarrow-backed strings are re-encoded by each one) is most of the speed of labels and features.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from customer_ai import conditions

if TYPE_CHECKING:
    from customer_ai.spec import Condition

__all__ = ["FIRST_AS_OF", "LAST_AS_OF", "EventIndex", "as_of_timestamp", "in_window", "rows_where"]

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
# Every window around an as-of date must hold in pandas' timestamps (1677-09-21 to 2262-04-11): the longest
# settings reach about 90 years back (a 10-year lookback before 60 snapshots a year apart, behind two 10-year goal
# windows) and 10 years ahead (the goal window), so these dates keep a margin on both sides.
FIRST_AS_OF, LAST_AS_OF = dt.date(1800, 1, 1), dt.date(2199, 12, 31)


def as_of_timestamp(value: str | dt.date | dt.datetime | pd.Timestamp) -> pd.Timestamp:
    """Return the as-of date ``value`` as midnight UTC at its start.

    An as-of date is a calendar date, nothing else: a string must read exactly ``YYYY-MM-DD``; a datetime must
    fall on midnight once converted to UTC (Airflow's data interval ends do).  Words (``now``, ``today``),
    partial dates (``2011``), other orders (``11/12/2011``, which reads one way in the US and another in Europe)
    and times of day are refused rather than guessed.

    Parameters
    ----------
    value : str, datetime.date, datetime.datetime or pandas.Timestamp
        For example ``"2011-09-01"``.  Naive datetimes are taken as UTC.

    Returns
    -------
    pandas.Timestamp
        Timezone-aware (UTC), at midnight.

    Raises
    ------
    ValueError
        When ``value`` is not exactly a date, or a date before :data:`FIRST_AS_OF` or after :data:`LAST_AS_OF`;
        the message shows the expected form or the range.
    """
    if isinstance(value, str):
        if not _DATE.fullmatch(value):
            raise ValueError(f"not a date: {value!r} (use YYYY-MM-DD, for example 2011-12-09)")
        try:
            day = dt.date.fromisoformat(value)
        except ValueError:
            raise ValueError(f"not a date: {value!r} (no such day in the calendar)") from None
        return pd.Timestamp(_supported(day, value)).tz_localize("UTC")
    if isinstance(value, dt.datetime):  # pandas.Timestamp included
        try:
            utc = value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
        except OverflowError:  # the first or last day of the calendar, far outside the supported dates
            utc = None
        _supported(None if utc is None else utc.date(), value)
        stamp = pd.Timestamp(utc)
        if stamp != stamp.normalize():
            raise ValueError(
                f"not a date: {value!r} has a time of day ({stamp:%H:%M:%S} UTC); an as-of date is a whole day "
                f"(use {stamp:%Y-%m-%d} or {stamp.normalize() + pd.Timedelta(days=1):%Y-%m-%d})"
            )
        return stamp
    if isinstance(value, dt.date):
        return pd.Timestamp(_supported(value, value)).tz_localize("UTC")
    raise ValueError(f"not a date: {value!r} (use YYYY-MM-DD, for example 2011-12-09)")


def _supported(day: dt.date | None, value: object) -> dt.date:
    """Return ``day`` if it lies from :data:`FIRST_AS_OF` to :data:`LAST_AS_OF`; else say so (``value`` as given)."""
    if day is None or not FIRST_AS_OF <= day <= LAST_AS_OF:
        raise ValueError(
            f"{value!r} is outside the as-of dates customer-ai supports, {FIRST_AS_OF} to {LAST_AS_OF} (every window "
            "around the date, up to 90 years back and 10 years ahead, must lie within 1677-09-21 .. 2262-04-11, the "
            "timestamps pandas holds)"
        )
    return day


def in_window(timestamps: pd.Series, start: pd.Timestamp, end: pd.Timestamp) -> np.ndarray:
    """Return which ``timestamps`` lie in the half-open window ``[start, end)``."""
    return ((timestamps >= start) & (timestamps < end)).to_numpy(dtype=bool)


def rows_where(frame: pd.DataFrame, mask: np.ndarray) -> pd.DataFrame:
    """Return the rows of ``frame`` where ``mask`` is true, in their order, with a fresh RangeIndex.

    The frame ``frame[mask].reset_index(drop=True)`` gives, selected column by column: pandas selects rows of
    Arrow-backed text by position, which first joins all the column's chunks into one copy (0.8 GB a column at
    49M events); a mask filters each chunk as it is.
    """
    return pd.DataFrame({name: frame[name].array[mask] for name in frame.columns})


class EventIndex:
    """Events encoded once for many windows: integer profile codes, and the rows sorted by (profile, time).

    Labels need only the codes (which profiles have a matching event in a window); features also need the sorted
    rows, which are made on first use.  The index keeps what it derives from the events (condition masks,
    encoded columns), so the events must not change while it is used; functions given an index of other events
    build their own.

    Parameters
    ----------
    events : pandas.DataFrame
        Canonical events (``profile_id`` without missing values, ``timestamp`` in UTC).

    Attributes
    ----------
    events : pandas.DataFrame
        The events indexed (not copied).
    profile_ids : pandas.Index
        The distinct profile ids, sorted; a profile's code is its position here, so codes sort as the ids do.
    row_codes : numpy.ndarray
        int32 profile code of each event, in the row order of ``events``.
    """

    def __init__(self, events: pd.DataFrame) -> None:
        self.events = events
        codes, uniques = pd.factorize(events["profile_id"], sort=True)
        if len(codes) and codes.min() < 0:
            raise ValueError("events: column 'profile_id' has missing values; every event needs a profile")
        self.profile_ids = pd.Index(uniques, name="profile_id")
        self.row_codes = codes.astype(np.int32)
        timestamps = events["timestamp"]
        self._unit = np.datetime_data(timestamps.dt.tz_localize(None).dtype)[0] if len(timestamps) else "us"
        self._memo: dict[tuple, object] = {}

    def __len__(self) -> int:
        return len(self.row_codes)

    @property
    def profile_count(self) -> int:
        """Return how many distinct profiles the events hold."""
        return len(self.profile_ids)

    @property
    def order(self) -> np.ndarray:
        """Row positions in ``events`` sorted by (code, timestamp), ties in row order."""
        return self._sorted()[0]

    @property
    def codes(self) -> np.ndarray:
        """int32 profile code of each sorted row."""
        return self._sorted()[1]

    @property
    def stamps(self) -> np.ndarray:
        """int64 timestamp (in the column's unit) of each sorted row."""
        return self._sorted()[2]

    def _sorted(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        def sort() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            stamps = self.events["timestamp"].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy().view("int64")
            if np.all(stamps[1:] >= stamps[:-1]):  # canonical events are in time order: one stable sort by profile
                order = np.argsort(self.row_codes, kind="stable")
            else:
                order = np.lexsort((stamps, self.row_codes))
            order = order.astype(np.int32) if len(order) < 2**31 else order  # half the memory at 50M events
            return order, self.row_codes[order], stamps[order]

        return self.memo(("sorted",), sort)

    def instant(self, moment: pd.Timestamp) -> int:
        """Return ``moment`` as an integer in the unit of :attr:`stamps`."""
        return int(np.datetime64(pd.Timestamp(moment).tz_convert("UTC").tz_localize(None), self._unit).view("int64"))

    def day_length(self) -> int:
        """Return one day in the unit of :attr:`stamps`."""
        return int(np.timedelta64(1, "D").astype(f"timedelta64[{self._unit}]").view("int64"))

    def window(self, start: pd.Timestamp, end: pd.Timestamp) -> np.ndarray:
        """Return the row positions (in ``events``) of the events in the half-open window ``[start, end)``."""
        return np.flatnonzero(in_window(self.events["timestamp"], start, end))

    def codes_of(self, profiles: Sequence[str] | pd.Index) -> np.ndarray:
        """Return the code of each of ``profiles`` (-1 for a profile without events)."""
        return self.profile_ids.get_indexer(pd.Index(profiles))

    def events_of(self, profiles: Sequence[str] | pd.Index) -> pd.DataFrame:
        """Return the events of ``profiles`` (ids without events are ignored), in their order here, newly indexed."""
        wanted = np.zeros(self.profile_count + 1, dtype=bool)
        wanted[self.codes_of(profiles)] = True  # code -1 marks the extra last entry, never read
        return rows_where(self.events, wanted[self.row_codes])

    def where_mask(self, where: Sequence[Condition]) -> np.ndarray:
        """Return which events (row order) satisfy every condition of ``where``; computed once per list."""
        key = ("where", *((c.field, c.op, repr(c.value)) for c in where))
        return self.memo(key, lambda: conditions.where_mask(self.events, where))

    def memo(self, key: tuple, compute: Callable[[], object]) -> object:
        """Return ``compute()``, computed once per ``key`` for these events (condition masks, derived columns)."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]
