"""As-of dates, training snapshots and half-open time windows.

Every window here is half-open, ``[start, end)``: features of a profile at ``as_of`` see events in
``[as_of - lookback, as_of)``, its label sees events in ``[as_of, as_of + window)``.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

__all__ = ["as_of_timestamp", "history_start", "in_window", "training_snapshots"]


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


def training_snapshots(as_of: pd.Timestamp, window_days: int, snapshots: int, every_days: int) -> list[pd.Timestamp]:
    """Return the training snapshot dates for a model used at ``as_of``, latest first.

    ``T_k = as_of - window_days - k * every_days`` for ``k = 0 .. snapshots - 1``, so that every label window
    ``[T_k, T_k + window_days)`` closed no later than ``as_of``: all training labels were fully observed.
    ``T_0`` (the latest) is the out-of-time validation snapshot.
    """
    first = as_of - pd.Timedelta(days=window_days)
    return [first - pd.Timedelta(days=k * every_days) for k in range(snapshots)]


def in_window(timestamps: pd.Series, start: pd.Timestamp, end: pd.Timestamp) -> np.ndarray:
    """Return which ``timestamps`` lie in the half-open window ``[start, end)``."""
    return ((timestamps >= start) & (timestamps < end)).to_numpy(dtype=bool)


def history_start(
    as_of: pd.Timestamp, lookback_days: int, window_days: int, snapshots: int, every_days: int
) -> pd.Timestamp:
    """Return the earliest instant a run as of ``as_of`` reads: the lookback start of its oldest snapshot.

    The oldest training snapshot is ``as_of - window_days - (snapshots - 1) * every_days``; its features look back
    ``lookback_days`` from there.  A run needs events in ``[history_start, as_of)`` and nothing else.
    """
    oldest = training_snapshots(as_of, window_days, snapshots, every_days)[-1]
    return oldest - pd.Timedelta(days=lookback_days)
