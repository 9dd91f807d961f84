"""Eligibility and labels: one row per eligible profile and snapshot; absence of the goal is a label.

Eligible at ``T``: the profile matches the eligibility rule with events in ``[T - lookback_days, T)`` and has
no excluded event there.  Its label at ``T`` looks only at ``[T, T + window_days)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from customer_ai.conditions import patterns_mask, where_mask
from customer_ai.spec import Eligibility, EventPattern, Goal, InstanceSpec
from customer_ai.windows import in_window

__all__ = ["build_labels", "eligible_profiles", "goal_reached"]


def _profiles_matching(
    events: pd.DataFrame, window: np.ndarray, patterns: Sequence[EventPattern], match: str
) -> pd.Index:
    """Profiles with, inside ``window``, an event of any pattern (``any``) or of every pattern (``all``)."""
    if match == "any":
        hits = window & patterns_mask(events, patterns)
        return pd.Index(events.loc[hits, "profile_id"].unique())
    result: pd.Index | None = None
    for pattern in patterns:
        hits = window & where_mask(events, pattern.where)
        found = pd.Index(events.loc[hits, "profile_id"].unique())
        result = found if result is None else result.intersection(found)
    return result if result is not None else pd.Index([], dtype="str")


def eligible_profiles(events: pd.DataFrame, eligibility: Eligibility, as_of: pd.Timestamp) -> pd.Index:
    """Return the sorted ids of the profiles eligible at ``as_of``.

    Parameters
    ----------
    events : pandas.DataFrame
        Canonical events.
    eligibility : Eligibility
        The rule; with no ``events`` listed, any event in the lookback makes a profile eligible.
    as_of : pandas.Timestamp
        The as-of date (UTC); only events strictly before it count.

    Returns
    -------
    pandas.Index
        Sorted profile ids (strings).
    """
    start = as_of - pd.Timedelta(days=eligibility.lookback_days)
    window = in_window(events["timestamp"], start, as_of)
    if eligibility.events:
        profiles = _profiles_matching(events, window, eligibility.events, eligibility.match)
    else:
        profiles = pd.Index(events.loc[window, "profile_id"].unique())
    if eligibility.exclude:
        excluded = _profiles_matching(events, window, eligibility.exclude, "any")
        profiles = profiles.difference(excluded)
    return pd.Index(np.sort(profiles.to_numpy(dtype=object)).astype(str), name="profile_id", dtype="str")


def goal_reached(events: pd.DataFrame, goal: Goal, as_of: pd.Timestamp, profiles: pd.Index) -> pd.Series:
    """Return, per profile in ``profiles``, whether the goal's events happened in ``[as_of, as_of + window)``.

    This is the occurrence of the goal events, before the ``will_not_occur`` polarity is applied.
    """
    end = as_of + pd.Timedelta(days=goal.window_days)
    window = in_window(events["timestamp"], as_of, end)
    reached = _profiles_matching(events, window, goal.events, goal.match)
    return pd.Series(profiles.isin(reached), index=profiles, name="goal_reached")


def build_labels(events: pd.DataFrame, spec: InstanceSpec, snapshots: Sequence[pd.Timestamp]) -> pd.DataFrame:
    """Return one row per eligible profile and snapshot with its 0/1 label.

    Parameters
    ----------
    events : pandas.DataFrame
        Canonical events.
    spec : InstanceSpec
        The instance (goal, eligibility).
    snapshots : sequence of pandas.Timestamp
        As-of dates.

    Returns
    -------
    pandas.DataFrame
        Columns ``profile_id``, ``as_of``, ``label`` (int8: 1 when the goal as stated, including
        ``will_not_occur``, holds), in snapshot order then profile order.
    """
    frames = []
    for as_of in snapshots:
        profiles = eligible_profiles(events, spec.eligibility, as_of)
        reached = goal_reached(events, spec.goal, as_of, profiles)
        label = reached if spec.goal.occurrence == "will_occur" else ~reached
        frames.append(
            pd.DataFrame({"profile_id": profiles.to_numpy(), "as_of": as_of, "label": label.to_numpy().astype("int8")})
        )
    if not frames:
        return pd.DataFrame({"profile_id": pd.Series(dtype="str"), "as_of": [], "label": []})
    return pd.concat(frames, ignore_index=True)
