"""History coverage: which training snapshots and feature lookback the events can support.

A model used as of ``T`` with a goal window of ``W`` days is built from snapshots, each a date whose label
window closed by ``T``:

- the **validation snapshot** ``T_0 = T - W``: held out for early stopping, calibration and the reported
  metrics (see :mod:`customer_ai.estimator` for how it is split);
- the **training snapshots** ``T_1 = T_0 - W`` and ``T_k = T_1 - (k - 1) * S``: the gap of ``W`` days between
  ``T_1`` and ``T_0`` means no training label is observed inside the validation label window
  ``[T_0, T_0 + W)``, so the validation snapshot's outcomes leak into nothing the model learns.

Every snapshot's features look back ``L`` days, so the events must reach back to ``T_oldest - L``.  When they
start later, features such as tenure and long-window counts would be cut short at the older snapshots and not
at the newer ones (a silent drift between training and scoring).  :func:`plan_snapshots` detects this and, by
default, adapts: it keeps the feature lookback at least :data:`LOOKBACK_SHARE` of the available history, spaces
the snapshots closer (down to :data:`MIN_SPACING_DAYS`), drops snapshots if it must, and gives what is left to
the lookback, so that every snapshot and the scoring date see the same, fully covered window.  When not even
one training snapshot can have ``min_lookback_days`` of history, the model is **trained and judged on one
period**: the validation snapshot's profiles are split into parts for fitting, calibration and evaluation (see
:func:`_single_period`), which needs the goal window plus :data:`SINGLE_PERIOD_MIN_DAYS` days of history; with
less, it refuses, saying why.

Where the history starts is not the first event: a few rows with a broken date (``1900-01-01``, ``1970-01-01``)
would make the plan believe in a century of history.  :func:`find_data_start` leaves out the events before the
latest day on or after which at least 99.9% of the events lie when at least :data:`APART_DAYS` days without any
event separate them from the rest (clean data that merely starts slowly keeps its first event), and the events
before a stretch of more than :data:`EMPTY_DAYS` days without any event (followed by at least 0.1% of them);
:class:`DataStart` says how many events lie before the start and whether that is few enough (at most
:data:`EARLY_SHARE`) to leave out with a warning.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from customer_ai.spec import InstanceSpec

__all__ = [
    "APART_DAYS",
    "EARLY_SHARE",
    "EMPTY_DAYS",
    "LOOKBACK_SHARE",
    "MIN_SPACING_DAYS",
    "SINGLE_PERIOD_MIN_DAYS",
    "DataStart",
    "InsufficientHistoryError",
    "SnapshotPlan",
    "configured_history_start",
    "data_start",
    "event_days",
    "find_data_start",
    "plan_snapshots",
    "run_window",
]

LOOKBACK_SHARE = 0.75  # when history is short, at least this share of it goes to the feature lookback
MIN_SPACING_DAYS = 7  # snapshots closer than a week repeat nearly the same rows
EARLY_SHARE = 0.001  # at most this share of the events may lie before the history's start (outliers, warned)
EMPTY_DAYS = 365  # more days than this without any event separate broken dates from the real history
APART_DAYS = 30  # the fewest days without any event that set the 0.1% of the earliest events apart as outliers
SINGLE_PERIOD_MIN_DAYS = 30  # the least history before the validation snapshot of a model trained on one period
_DAY = pd.Timedelta(days=1)
_DAY_US = 86_400_000_000


class InsufficientHistoryError(ValueError):
    """The events do not reach far enough back to train a model as of the requested date."""


def _day(stamp: pd.Timestamp) -> str:
    return f"{stamp:%Y-%m-%d}"


@dataclass(frozen=True)
class SnapshotPlan:
    """The snapshot dates and windows of one model, and what was adapted to the events' history.

    Attributes
    ----------
    as_of : pandas.Timestamp
        The date the model is used at.
    window_days : int
        The goal window ``W``.
    validation : pandas.Timestamp
        ``T_0 = as_of - W``.
    training : tuple of pandas.Timestamp
        ``T_1, T_2, ...``, latest first; ``T_1 = T_0 - W``.
    every_days : int
        Spacing of the training snapshots.
    lookback_days : int
        Feature lookback ``L``: features at any date ``t`` see events in ``[t - L, t)``.
    configured : dict
        What the instance asked for: ``snapshots``, ``every_days``, ``lookback_days``.
    data_start : pandas.Timestamp or None
        The first event of the source (None if unknown).
    notes : tuple of str
        What was adapted and why, in words; empty when the configured plan was covered.
    single_period : bool
        Trained and judged on one period (no training snapshot: the validation snapshot's profiles are split into
        parts for fitting, calibration and evaluation, see :func:`plan_snapshots`): no check across time.
    """

    as_of: pd.Timestamp
    window_days: int
    validation: pd.Timestamp
    training: tuple[pd.Timestamp, ...]
    every_days: int
    lookback_days: int
    configured: dict
    data_start: pd.Timestamp | None = None
    notes: tuple[str, ...] = ()
    single_period: bool = False

    @property
    def snapshots(self) -> list[pd.Timestamp]:
        """All snapshot dates, latest (the validation snapshot) first."""
        return [self.validation, *self.training]

    @property
    def oldest(self) -> pd.Timestamp:
        """The oldest snapshot (the validation snapshot itself for a single period)."""
        return self.snapshots[-1]

    @property
    def history_start(self) -> pd.Timestamp:
        """The earliest instant the plan reads: the oldest snapshot's lookback start."""
        return self.oldest - pd.Timedelta(days=self.lookback_days)

    @property
    def adapted(self) -> bool:
        """Whether the plan differs from the configured one."""
        return bool(self.notes)

    def to_dict(self) -> dict:
        """Return the plan as JSON-ready data."""
        return {
            "as_of": _day(self.as_of),
            "window_days": self.window_days,
            "validation": _day(self.validation),
            "training": [_day(t) for t in self.training],
            "every_days": self.every_days,
            "lookback_days": self.lookback_days,
            "configured": dict(self.configured),
            "data_start": None if self.data_start is None else self.data_start.isoformat(),
            "history_start": _day(self.history_start),
            "notes": list(self.notes),
            "single_period": self.single_period,
        }

    @classmethod
    def from_dict(cls, data: dict) -> SnapshotPlan:
        """Rebuild a plan saved with :meth:`to_dict`."""

        def stamp(text: str) -> pd.Timestamp:
            value = pd.Timestamp(text)
            return value.tz_localize("UTC") if value.tzinfo is None else value.tz_convert("UTC")

        return cls(
            as_of=stamp(data["as_of"]),
            window_days=int(data["window_days"]),
            validation=stamp(data["validation"]),
            training=tuple(stamp(t) for t in data["training"]),
            every_days=int(data["every_days"]),
            lookback_days=int(data["lookback_days"]),
            configured=dict(data["configured"]),
            data_start=None if data.get("data_start") is None else stamp(data["data_start"]),
            notes=tuple(data.get("notes", ())),
            single_period=bool(data.get("single_period", False)),
        )


def _layout(as_of: pd.Timestamp, window_days: int, training: int, every_days: int) -> tuple:
    validation = as_of - pd.Timedelta(days=window_days)
    first = validation - pd.Timedelta(days=window_days)
    return validation, tuple(first - pd.Timedelta(days=k * every_days) for k in range(training))


def configured_history_start(
    as_of: pd.Timestamp, *, window_days: int, lookback_days: int, snapshots: int, every_days: int
) -> pd.Timestamp:
    """Return the earliest instant the configured plan reads (what a run loads from its source).

    An adapted plan only ever reads less: its snapshots are closer and its lookback shorter.
    """
    _, training = _layout(as_of, window_days, snapshots - 1, every_days)
    return training[-1] - pd.Timedelta(days=lookback_days)


def run_window(spec: InstanceSpec, as_of: pd.Timestamp) -> tuple[pd.Timestamp, pd.Timestamp]:
    """Return ``[start, as_of)``: the events a run of ``spec`` as of ``as_of`` reads (its configured history)."""
    start = configured_history_start(
        as_of,
        window_days=spec.goal.window_days,
        lookback_days=spec.eligibility.lookback_days,
        snapshots=spec.training.snapshots,
        every_days=spec.training.snapshot_every_days,
    )
    return start, as_of


def plan_snapshots(
    as_of: pd.Timestamp,
    *,
    window_days: int,
    lookback_days: int,
    snapshots: int,
    every_days: int,
    data_start: pd.Timestamp | None,
    adapt: bool = True,
    min_lookback_days: int = 28,
) -> SnapshotPlan:
    """Return the snapshots and feature lookback of a model used at ``as_of``, fitted to the events' history.

    Parameters
    ----------
    as_of : pandas.Timestamp
        The date the model is used at (midnight UTC).
    window_days : int
        The goal window ``W``.
    lookback_days : int
        The configured feature lookback ``L`` (the instance's ``eligibility.lookback_days``).
    snapshots : int
        The configured number of snapshots, the validation snapshot included (at least 2).
    every_days : int
        The configured spacing of the training snapshots.
    data_start : pandas.Timestamp or None
        The first event of the source; None when unknown (the configured plan is used as it is).
    adapt : bool, default True
        Adapt snapshots and lookback to a history that does not cover the configured plan; when False, refuse.
    min_lookback_days : int, default 28
        The shortest feature lookback worth training on.

    Returns
    -------
    SnapshotPlan

    Raises
    ------
    InsufficientHistoryError
        When the history does not cover the configured plan and ``adapt`` is False, or when no training snapshot
        can look back ``min_lookback_days`` and the validation snapshot has fewer than
        :data:`SINGLE_PERIOD_MIN_DAYS` days before it (with fewer than ``min_lookback_days`` but enough for that,
        the plan is a single period: see :func:`_single_period`).
    """
    training = snapshots - 1
    configured = {"snapshots": snapshots, "every_days": every_days, "lookback_days": lookback_days}
    validation, layout = _layout(as_of, window_days, training, every_days)
    full = SnapshotPlan(as_of, window_days, validation, layout, every_days, lookback_days, configured, data_start)
    if data_start is None or data_start <= full.history_start:
        return full
    latest_training = layout[0]
    available = math.floor((latest_training - data_start) / _DAY)  # whole days of history before T_1
    wanted = (
        f"{_day(full.history_start)} (for {training} training snapshots every {every_days} days, each looking "
        f"back {lookback_days} days)"
    )
    if not adapt:
        raise InsufficientHistoryError(
            f"the events start on {_day(data_start)}, but a model as of {_day(as_of)} needs them from {wanted}; "
            "set training.history: adapt to fit the snapshots and lookback to the history, or use fewer snapshots, "
            "closer snapshots (training.snapshot_every_days) or a shorter eligibility.lookback_days"
        )
    if available < min_lookback_days:
        return _single_period(full, available=available, min_lookback_days=min_lookback_days)
    floor = min(lookback_days, max(min_lookback_days, math.ceil(available * LOOKBACK_SHARE)))
    spread = available - floor  # days left for spacing the training snapshots
    spacing, count = every_days, training
    if count > 1 and spread < (count - 1) * every_days:
        spacing = spread // (count - 1)
        if spacing < min(MIN_SPACING_DAYS, every_days):
            spacing = min(MIN_SPACING_DAYS, every_days)
            count = 1 + spread // spacing
    lookback = min(lookback_days, available - (count - 1) * spacing)
    _, layout = _layout(as_of, window_days, count, spacing)
    notes = [
        f"the events start on {_day(data_start)}, but the configured plan reads from {wanted}: "
        f"{available} days of history lie before the latest training snapshot {_day(latest_training)}"
    ]
    if count != training or spacing != every_days:
        notes.append(f"training snapshots: {count} every {spacing} days instead of {training} every {every_days} days")
    if lookback != lookback_days:
        notes.append(
            f"features look back {lookback} days instead of {lookback_days}, at every snapshot and when scoring, "
            "so that no snapshot sees a window cut short by the start of the data"
        )
    return SnapshotPlan(as_of, window_days, validation, layout, spacing, lookback, configured, data_start, tuple(notes))


def _single_period(full: SnapshotPlan, *, available: int, min_lookback_days: int) -> SnapshotPlan:
    """Return the plan of a model trained and judged on one period, when no training snapshot has enough history.

    Out-of-time training needs ``min_lookback_days`` of history before the latest training snapshot, a whole goal
    window before the validation snapshot.  A shorter history still holds the validation snapshot ``T_0 = as_of - W``
    (the latest whose goal window is fully observed) with at least :data:`SINGLE_PERIOD_MIN_DAYS` days before it:
    its profiles are split by a hash of their id into parts for fitting, calibration and evaluation
    (:data:`customer_ai.estimator.SINGLE_PERIOD_SHARES`), the features read the whole history before it, and
    the scoring date, ``W`` days later, its whole longer history, counted per the same number of days
    (:func:`customer_ai.features.history_span`).  The metrics then say how the model ranks other profiles of
    the same period, not how it holds up in the next one.

    ``full`` is the configured plan, ``available`` the days of history before its latest training snapshot.

    Raises
    ------
    InsufficientHistoryError
        When even ``T_0`` has fewer than :data:`SINGLE_PERIOD_MIN_DAYS` days of history.
    """
    as_of, window_days, validation, data_start = full.as_of, full.window_days, full.validation, full.data_start
    lookback_days = full.lookback_days
    before = math.floor((validation - data_start) / _DAY)  # whole days of history before T_0
    if before < SINGLE_PERIOD_MIN_DAYS:
        raise InsufficientHistoryError(
            f"the events start on {_day(data_start)}: a model as of {_day(as_of)} with a {window_days}-day goal "
            f"needs the goal window and {SINGLE_PERIOD_MIN_DAYS} days of history before it, so events from "
            f"{_day(validation - pd.Timedelta(days=SINGLE_PERIOD_MIN_DAYS))}; it has {max(before, 0)} days before "
            f"{_day(validation)}. Use a later as-of date, a shorter goal window or more history."
        )
    lookback = min(lookback_days, before)
    notes = (
        f"the events start on {_day(data_start)}: training across time needs {min_lookback_days} days of history "
        f"before the latest training snapshot {_day(validation - pd.Timedelta(days=window_days))} and there are "
        f"{max(available, 0)} (training.min_lookback_days)",
        f"trained and judged on one period: no check across time. The profiles of {_day(validation)}, the latest "
        f"date whose {window_days}-day goal window is fully observed, are split by a hash of their id into parts "
        "for fitting, calibration and evaluation; the metrics say how the model ranks other profiles of that "
        "period, not how it holds up in the next one",
        f"features read the whole history, from {_day(data_start)}, and count it per {lookback} days (the "
        f"history before {_day(validation)}); scoring reads its longer history the same way",
    )
    return SnapshotPlan(
        as_of,
        window_days,
        validation,
        (),
        window_days,
        lookback,
        full.configured,
        data_start,
        notes,
        single_period=True,
    )


@dataclass(frozen=True)
class DataStart:
    """Where the events' history really starts, and the events that lie before that start.

    Attributes
    ----------
    start : pandas.Timestamp or None
        The first event of the history; None without events.
    events : int
        All events counted.
    before : int
        Events before ``start``: broken dates, or the few earliest events of a history that starts slowly.
    first_before, last_before : pandas.Timestamp or None
        The first and the last of them (None when there are none).
    empty_days : int or None
        The days without any event just before ``start`` (None when the start is the first event).
    source : str
        Where the events come from, for messages.
    """

    start: pd.Timestamp | None
    events: int = 0
    before: int = 0
    first_before: pd.Timestamp | None = None
    last_before: pd.Timestamp | None = None
    empty_days: int | None = None
    source: str = "events"

    @property
    def share(self) -> float:
        """The share of the events that lie before the start."""
        return self.before / self.events if self.events else 0.0

    @property
    def acceptable(self) -> bool:
        """Whether the events before the start are few enough (at most :data:`EARLY_SHARE`) to leave out."""
        return self.before * _PER_SHARE <= self.events

    def describe(self) -> str | None:
        """Say what lies before the start (a warning when :attr:`acceptable`, else an error); None if nothing."""
        if not self.before:
            return None
        first, last = f"{self.first_before:%Y-%m-%d}", f"{self.last_before:%Y-%m-%d}"
        dated = first if first == last else f"{first} to {last}"
        counted = f"{self.source}: {self.before:,} of {self.events:,} events ({_percent(self.share)}), dated {dated},"
        if self.acceptable:
            return (
                f"{counted} lie before {self.empty_days:,} days without any event; the history starts after them, on "
                f"{_day(self.start)} (at least 99.9% of the events lie on or after that day): the snapshots and the "
                "feature lookback are planned from there; correct or filter those rows if their dates are wrong"
            )
        return (
            f"{counted} lie before {self.empty_days:,} days without any event; the events really start on "
            f"{_day(self.start)}. At most 0.1% of the events may lie before the start (they are then left out "
            "of the history with a warning): correct the dates of those rows or filter them out of the events "
            "(1900-01-01 and 1970-01-01 are the usual stand-ins for a missing date)"
        )

    def to_dict(self) -> dict | None:
        """Return the events before the start as JSON-ready data (None when there are none)."""
        if not self.before:
            return None
        return {
            "events": self.before,
            "of": self.events,
            "share": self.share,
            "first": self.first_before.isoformat(),
            "last": self.last_before.isoformat(),
            "message": self.describe(),
        }


def _percent(share: float) -> str:
    return f"{100 * share:.2g}%"


_PER_SHARE = round(1 / EARLY_SHARE)  # the share test in integers: before * 1000 <= events


def event_days(timestamps: pd.Series) -> pd.DataFrame:
    """Return one row per UTC day that has events: ``day`` (midnight UTC), ``events``, ``first`` and ``last``.

    What :func:`find_data_start` needs, from a column of UTC timestamps (a database computes the same rows with
    a ``GROUP BY`` on the day).
    """
    moments = pd.DatetimeIndex(timestamps.dropna()).as_unit("us").asi8
    if len(moments) > 1 and np.any(moments[1:] < moments[:-1]):
        moments = np.sort(moments)  # canonical events are already sorted: no copy then
    days = moments // _DAY_US
    starts = np.flatnonzero(np.r_[True, days[1:] != days[:-1]]) if len(days) else np.zeros(0, dtype=np.int64)
    ends = np.r_[starts[1:], len(days)][: len(starts)].astype(np.int64)

    def stamps(values: np.ndarray) -> pd.DatetimeIndex:
        return pd.DatetimeIndex(values.astype("datetime64[us]")).tz_localize("UTC")

    return pd.DataFrame(
        {
            "day": stamps(days[starts] * _DAY_US),
            "events": ends - starts,
            "first": stamps(moments[starts]),
            "last": stamps(moments[ends - 1]),
        }
    )


def find_data_start(days: pd.DataFrame, source: str = "events") -> DataStart:
    """Return where the history of the events really starts, from their :func:`event_days`.

    The start is the first event, unless outliers lie before the real history.  Outliers are the events before
    the latest day ``D`` such that at least 99.9% of the events lie on ``D`` or later, when at least
    :data:`APART_DAYS` days without any event set them apart (the start is then the first event after the last
    such stretch up to ``D``: the earliest events of clean data that merely starts slowly are no outliers), and
    the events before a stretch of more than :data:`EMPTY_DAYS` days without any event that is followed by at
    least 0.1% of the events (the start is then the first event after the last such stretch).  The first rule
    leaves at most 0.1% of the events before the start (:attr:`DataStart.acceptable`); the second can leave more
    (rows with a broken date such as 1970-01-01 far before the real data), which the caller refuses.

    Parameters
    ----------
    days : pandas.DataFrame
        One row per day with events, sorted by day: ``day``, ``events``, ``first``, ``last`` (UTC).
    source : str, default "events"
        Where the events come from, for messages.

    Returns
    -------
    DataStart
    """
    if days.empty:
        return DataStart(None, source=source)
    counts = days["events"].to_numpy(dtype=np.int64)
    total = int(counts.sum())
    before = np.r_[0, np.cumsum(counts)[:-1]]  # events before each day
    quantile = int(np.searchsorted(before * _PER_SHARE, total, side="right")) - 1
    numbers = pd.DatetimeIndex(days["day"]).as_unit("us").asi8 // _DAY_US
    empty = np.r_[0, np.diff(numbers) - 1]  # days without any event before each day
    apart = np.flatnonzero(empty[: quantile + 1] >= APART_DAYS)
    outliers_end = int(apart[-1]) if len(apart) else 0
    stretches = np.flatnonzero((empty > EMPTY_DAYS) & ((total - before) * _PER_SHARE >= total))
    stretch = int(stretches[-1]) if len(stretches) else 0
    start = max(outliers_end, stretch)
    first, last = pd.DatetimeIndex(days["first"]), pd.DatetimeIndex(days["last"])
    return DataStart(
        start=_utc(first[start]),
        events=total,
        before=int(before[start]),
        first_before=_utc(first[0]) if start else None,
        last_before=_utc(last[start - 1]) if start else None,
        empty_days=int(empty[start]) if start else None,
        source=source,
    )


def data_start(timestamps: pd.Series, source: str = "events") -> DataStart:
    """Return where the history of events with these timestamps really starts (see :func:`find_data_start`)."""
    return find_data_start(event_days(timestamps), source)


def _utc(stamp: pd.Timestamp) -> pd.Timestamp:
    stamp = pd.Timestamp(stamp)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
