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

__all__ = ["build_labels", "eligible_profiles", "goal_reached"]


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
