"""As-of dates and half-open time windows (the snapshot layout is :mod:`customer_ai.history`).

Every window here is half-open, ``[start, end)``: features of a profile at ``as_of`` see events in
``[as_of - lookback, as_of)``, its label sees events in ``[as_of, as_of + window)``.
"""

from __future__ import annotations

import datetime as dt
import re

import numpy as np
import pandas as pd

__all__ = ["as_of_timestamp", "in_window"]

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


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
        When ``value`` is not exactly a date; the message shows the expected form.
    """
    if isinstance(value, str):
        if not _DATE.fullmatch(value):
            raise ValueError(f"not a date: {value!r} (use YYYY-MM-DD, for example 2011-12-09)")
        try:
            return pd.Timestamp(dt.date.fromisoformat(value)).tz_localize("UTC")
        except ValueError:
            raise ValueError(f"not a date: {value!r} (no such day in the calendar)") from None
    if isinstance(value, dt.datetime):  # pandas.Timestamp included
        stamp = pd.Timestamp(value)
        stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
        if stamp != stamp.normalize():
            raise ValueError(
                f"not a date: {value!r} has a time of day ({stamp:%H:%M:%S} UTC); an as-of date is a whole day "
                f"(use {stamp:%Y-%m-%d} or {stamp.normalize() + pd.Timedelta(days=1):%Y-%m-%d})"
            )
        return stamp
    if isinstance(value, dt.date):
        return pd.Timestamp(value).tz_localize("UTC")
    raise ValueError(f"not a date: {value!r} (use YYYY-MM-DD, for example 2011-12-09)")


def in_window(timestamps: pd.Series, start: pd.Timestamp, end: pd.Timestamp) -> np.ndarray:
    """Return which ``timestamps`` lie in the half-open window ``[start, end)``."""
    return ((timestamps >= start) & (timestamps < end)).to_numpy(dtype=bool)
