"""As-of dates and half-open time windows (the snapshot layout is :mod:`customer_ai.history`).

Every window here is half-open, ``[start, end)``: features of a profile at ``as_of`` see events in
``[as_of - lookback, as_of)``, its label sees events in ``[as_of, as_of + window)``.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

__all__ = ["as_of_timestamp", "in_window"]


def as_of_timestamp(value: str | dt.date | dt.datetime | pd.Timestamp) -> pd.Timestamp:
    """Return ``value`` as a UTC timestamp; a date means midnight UTC at its start.

    Parameters
    ----------
    value : str, datetime.date, datetime.datetime or pandas.Timestamp
        For example ``"2011-09-01"``.  Naive values are taken as UTC.

    Returns
    -------
    pandas.Timestamp
        Timezone-aware (UTC).
    """
    if isinstance(value, (int, float)):
        raise ValueError(f"not a date: {value!r} (use YYYY-MM-DD)")
    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError):
        raise ValueError(f"not a date: {value!r} (use YYYY-MM-DD)") from None
    if stamp is pd.NaT:
        raise ValueError(f"not a date: {value!r} (use YYYY-MM-DD)")
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def in_window(timestamps: pd.Series, start: pd.Timestamp, end: pd.Timestamp) -> np.ndarray:
    """Return which ``timestamps`` lie in the half-open window ``[start, end)``."""
    return ((timestamps >= start) & (timestamps < end)).to_numpy(dtype=bool)
