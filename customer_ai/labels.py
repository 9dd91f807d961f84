"""Eligibility and labels: one row per eligible profile and snapshot; absence of the goal is a label.

Eligible at ``T``: the profile matches the eligibility rule with events in ``[T - lookback_days, T)`` and has
no excluded event there.  Its label at ``T`` looks only at ``[T, T + window_days)``.

Columnar: the events are encoded once (:class:`customer_ai.windows.EventIndex`, shared by every snapshot and by
the features), each condition's mask is computed once per run, and which profiles have a matching event in a
window is a scatter of integer codes into a boolean array; no group-by or ``isin`` over string ids.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from customer_ai.spec import Condition, Eligibility, EventPattern, Goal, InstanceSpec
from customer_ai.windows import EventIndex

__all__ = ["build_labels", "days_to_goal", "eligible_profiles", "goal_reached", "goal_value", "goal_value_per_code"]


def _with_events(events: pd.DataFrame, index: EventIndex | None) -> EventIndex:
    """Return ``index`` when it indexes ``events``, else a new index of them."""
    return index if index is not None and index.events is events else EventIndex(events)


def _present(index: EventIndex, rows: np.ndarray, where: Sequence[Condition]) -> np.ndarray:
    """Per profile code: whether one of the events at positions ``rows`` satisfies ``where``."""
    mask = index.where_mask(where)
    found = np.zeros(index.profile_count, dtype=bool)
    found[index.row_codes[rows[mask[rows]]]] = True
    return found


def _profiles_matching(index: EventIndex, rows: np.ndarray, patterns: Sequence[EventPattern], match: str) -> np.ndarray:
    """Per profile code: whether, among ``rows``, it has an event of any pattern (``any``) or of every one (``all``)."""
    found = [_present(index, rows, pattern.where) for pattern in patterns]
    if not found:
        return np.zeros(index.profile_count, dtype=bool)
    combine = np.logical_or if match == "any" else np.logical_and
    return combine.reduce(found)


def _eligible_codes(index: EventIndex, eligibility: Eligibility, as_of: pd.Timestamp) -> np.ndarray:
    """Return the sorted codes of the profiles eligible at ``as_of``."""
    rows = index.window(as_of - pd.Timedelta(days=eligibility.lookback_days), as_of)
    if eligibility.events:
        eligible = _profiles_matching(index, rows, eligibility.events, eligibility.match)
    else:
        eligible = np.zeros(index.profile_count, dtype=bool)
        eligible[index.row_codes[rows]] = True
    if eligibility.exclude:
        eligible &= ~_profiles_matching(index, rows, eligibility.exclude, "any")
    return np.flatnonzero(eligible)


def _ids(index: EventIndex, codes: np.ndarray) -> pd.Index:
    return pd.Index(index.profile_ids.take(codes), name="profile_id", dtype="str")


def eligible_profiles(
    events: pd.DataFrame, eligibility: Eligibility, as_of: pd.Timestamp, *, index: EventIndex | None = None
) -> pd.Index:
    """Return the sorted ids of the profiles eligible at ``as_of``.

    Parameters
    ----------
    events : pandas.DataFrame
        Canonical events.
    eligibility : Eligibility
        The rule; with no ``events`` listed, any event in the lookback makes a profile eligible.
    as_of : pandas.Timestamp
        The as-of date (UTC); only events strictly before it count.
    index : EventIndex, optional
        ``events`` already encoded (reused across calls); built here when missing or of other events.

    Returns
    -------
    pandas.Index
        Sorted profile ids (strings).
    """
    index = _with_events(events, index)
    return _ids(index, _eligible_codes(index, eligibility, as_of))


def _reached_codes(index: EventIndex, goal: Goal, as_of: pd.Timestamp) -> np.ndarray:
    """Per profile code: whether the goal's events happened in ``[as_of, as_of + window)``."""
    rows = index.window(as_of, as_of + pd.Timedelta(days=goal.window_days))
    return _profiles_matching(index, rows, goal.events, goal.match)


def goal_reached(
    events: pd.DataFrame, goal: Goal, as_of: pd.Timestamp, profiles: pd.Index, *, index: EventIndex | None = None
) -> pd.Series:
    """Return, per profile in ``profiles``, whether the goal's events happened in ``[as_of, as_of + window)``.

    This is the occurrence of the goal events, before the ``will_not_occur`` polarity is applied.  ``index``
    is ``events`` already encoded (see :func:`eligible_profiles`).
    """
    index = _with_events(events, index)
    codes = index.codes_of(profiles)
    reached = np.append(_reached_codes(index, goal, as_of), False)[codes]  # code -1: no event, not reached
    return pd.Series(reached, index=profiles, name="goal_reached")


def _goal_rows(index: EventIndex, goal: Goal, rows: np.ndarray) -> np.ndarray:
    """Return the positions among ``rows`` of the goal's events: those matching any of its patterns, each once."""
    matching = np.zeros(len(rows), dtype=bool)
    for pattern in goal.events:
        matching |= index.where_mask(pattern.where)[rows]
    return rows[matching]


def goal_value_per_code(
    index: EventIndex, goal: Goal, field: str, start: pd.Timestamp, end: pd.Timestamp
) -> np.ndarray:
    """Return per profile code the sum of ``field`` over its goal events in ``[start, end)``, each event once.

    An event matching several of the goal's patterns counts once; a missing amount adds nothing.  The value label
    (:func:`goal_value`) and the value feature (``goal_value_per_30d``) are both this sum, over other windows.

    Raises
    ------
    KeyError
        When the events have no column ``field``.
    """
    events = index.events
    if field not in events.columns:
        raise KeyError(f"events have no column {field!r} to add up for the goal's value")
    rows = _goal_rows(index, goal, index.window(start, end))
    amounts = pd.to_numeric(events[field].iloc[rows], errors="coerce").fillna(0.0).to_numpy(dtype="float64")
    return np.bincount(index.row_codes[rows], weights=amounts, minlength=index.profile_count)


def goal_value(
    events: pd.DataFrame,
    goal: Goal,
    field: str,
    as_of: pd.Timestamp,
    profiles: pd.Index,
    *,
    index: EventIndex | None = None,
) -> pd.Series:
    """Return, per profile in ``profiles``, the sum of ``field`` over its goal events in ``[as_of, as_of + window)``.

    An event matching several of the goal's patterns is counted once; a profile without such an event, or whose
    events carry no ``field`` value, gets 0 (no spend is a value, never a missing row).  This is the amount a value
    goal predicts, whatever its ``match``: the events of any of its patterns add up.

    Raises
    ------
    KeyError
        When the events have no column ``field``.
    """
    index = _with_events(events, index)
    per_code = goal_value_per_code(index, goal, field, as_of, as_of + pd.Timedelta(days=goal.window_days))
    value = np.append(per_code, 0.0)[index.codes_of(profiles)]  # code -1: no event at all, nothing spent
    return pd.Series(value, index=profiles, name="goal_value")


def days_to_goal(
    events: pd.DataFrame,
    goal: Goal,
    as_of: pd.Timestamp,
    profiles: pd.Index,
    horizon_days: int,
    *,
    index: EventIndex | None = None,
) -> pd.Series:
    """Return, per profile in ``profiles``, the days from ``as_of`` to its first goal event in the horizon.

    The horizon is ``[as_of, as_of + horizon_days)``; a goal event at ``as_of`` itself is 0 days away.  A profile
    without one there is censored: NaN (it may still come later; only that it did not within the horizon is
    known).  With ``match: all`` the goal is reached at the first moment every pattern has occurred.
    """
    index = _with_events(events, index)
    rows = index.window(as_of, as_of + pd.Timedelta(days=horizon_days))
    moments = events["timestamp"].iloc[rows].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy().view("int64")
    since = moments - index.instant(as_of)  # in the index's unit, as its instants
    never = np.iinfo("int64").max
    reached = None
    for pattern in goal.events:
        found = index.where_mask(pattern.where)[rows]
        first = np.full(index.profile_count, never, dtype="int64")
        np.minimum.at(first, index.row_codes[rows[found]], since[found])
        reached = first if reached is None else (np.minimum if goal.match == "any" else np.maximum)(reached, first)
    days = np.where(reached == never, np.nan, reached / index.day_length())
    return pd.Series(np.append(days, np.nan)[index.codes_of(profiles)], index=profiles, name="days_to_goal")


def build_labels(
    events: pd.DataFrame,
    spec: InstanceSpec,
    snapshots: Sequence[pd.Timestamp],
    *,
    index: EventIndex | None = None,
) -> pd.DataFrame:
    """Return one row per eligible profile and snapshot with its 0/1 label.

    Parameters
    ----------
    events : pandas.DataFrame
        Canonical events.
    spec : InstanceSpec
        The instance (goal, eligibility).
    snapshots : sequence of pandas.Timestamp
        As-of dates.
    index : EventIndex, optional
        ``events`` already encoded (see :func:`eligible_profiles`).

    Returns
    -------
    pandas.DataFrame
        Columns ``profile_id``, ``as_of``, ``label`` (int8: 1 when the goal as stated, including
        ``will_not_occur``, holds), in snapshot order then profile order.
    """
    if not snapshots:
        return pd.DataFrame({"profile_id": pd.Series(dtype="str"), "as_of": [], "label": []})
    index = _with_events(events, index)
    frames = []
    for as_of in snapshots:
        codes = _eligible_codes(index, spec.eligibility, as_of)
        reached = _reached_codes(index, spec.goal, as_of)[codes]
        label = reached if spec.goal.occurrence == "will_occur" else ~reached
        frames.append(
            pd.DataFrame({"profile_id": _ids(index, codes).to_numpy(), "as_of": as_of, "label": label.astype("int8")})
        )
    return pd.concat(frames, ignore_index=True)
