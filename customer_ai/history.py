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
the lookback, so that every snapshot and the scoring date see the same, fully covered window.  Nothing fits
when even one training snapshot cannot have ``min_lookback_days`` of history: then it refuses, saying why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from customer_ai.spec import InstanceSpec

__all__ = [
    "LOOKBACK_SHARE",
    "MIN_SPACING_DAYS",
    "InsufficientHistoryError",
    "SnapshotPlan",
    "configured_history_start",
    "plan_snapshots",
    "run_window",
]

LOOKBACK_SHARE = 0.75  # when history is short, at least this share of it goes to the feature lookback
MIN_SPACING_DAYS = 7  # snapshots closer than a week repeat nearly the same rows
_DAY = pd.Timedelta(days=1)


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

    @property
    def snapshots(self) -> list[pd.Timestamp]:
        """All snapshot dates, latest (the validation snapshot) first."""
        return [self.validation, *self.training]

    @property
    def history_start(self) -> pd.Timestamp:
        """The earliest instant the plan reads: the oldest snapshot's lookback start."""
        return self.training[-1] - pd.Timedelta(days=self.lookback_days)

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
        When the history does not cover the configured plan and ``adapt`` is False, or when even one training
        snapshot cannot look back ``min_lookback_days``.
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
        raise InsufficientHistoryError(
            f"the events start on {_day(data_start)}: a model as of {_day(as_of)} with a {window_days}-day goal "
            f"validates on {_day(validation)} and trains on {_day(latest_training)} at the latest, which leaves "
            f"{max(available, 0)} days of history; at least {min_lookback_days} are needed "
            f"(training.min_lookback_days). Use a later as-of date, a shorter goal window or more history."
        )
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
