"""The feature and label code as it was before the columnar rewrite, kept to pin the new code's exact output.

Nothing here is used by the package: tests build features and labels with these functions and with the package's
and assert identical frames (columns, dtypes, index, every bit of every value).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from customer_ai.bgnbd import repeat_summary, repeat_view
from customer_ai.conditions import patterns_mask, where_mask
from customer_ai.features import (
    FeaturePlan,
    _slug,
    _sources,
    count_windows,
    feature_infos,
    ratio_windows,
    repeat_model_names,
)
from customer_ai.spec import Eligibility, EventPattern, Goal, InstanceSpec
from customer_ai.windows import in_window

_DAY = pd.Timedelta(days=1)


def _source_features(
    window_events: pd.DataFrame,
    age: np.ndarray,
    mask: np.ndarray,
    prefix: str,
    *,
    windows: Sequence[int],
    valued: bool,
) -> pd.DataFrame:
    hits = window_events.loc[mask, ["profile_id", "value"]].copy()
    hit_age = age[mask]
    columns = {}
    for w in windows:
        inside = hit_age <= w  # [as_of - w, as_of): an event at its first instant is w days old
        hits[f"{prefix}_count_{w}d"] = inside.astype("int64")
        columns[f"{prefix}_count_{w}d"] = "sum"
    hits[f"{prefix}_days_since_last"] = hit_age
    hits[f"{prefix}_days_since_first"] = hit_age
    columns[f"{prefix}_days_since_last"] = "min"
    columns[f"{prefix}_days_since_first"] = "max"
    grouped = hits.groupby("profile_id", sort=False)
    result = grouped.agg(columns)
    if valued:
        result[f"{prefix}_value_sum"] = grouped["value"].sum(min_count=1)
        result[f"{prefix}_value_mean"] = grouped["value"].mean()
    return result


def _activity_features(window_events: pd.DataFrame, age: np.ndarray, lookback: int) -> pd.DataFrame:
    frame = pd.DataFrame({"profile_id": window_events["profile_id"].to_numpy(), "age": age})
    frame["day"] = np.ceil(age).astype("int64") - 1  # days before the as-of date's: 0 for the day before it
    grouped = frame.groupby("profile_id", sort=False)
    result = pd.DataFrame(
        {
            "tenure_days": grouped["age"].max(),
            "days_since_last_event": grouped["age"].min(),
            "active_days": grouped["day"].nunique(),
        }
    )
    days = frame[["profile_id", "day"]].drop_duplicates().sort_values(["profile_id", "day"])
    days["gap"] = days.groupby("profile_id", sort=False)["day"].diff()
    gaps = days.dropna(subset=["gap"]).groupby("profile_id", sort=False)["gap"]
    result["gap_mean_days"] = gaps.mean()
    result["gap_std_days"] = gaps.std(ddof=1)
    for recent, longer in ratio_windows(lookback):
        count_recent = (frame["age"] <= recent).groupby(frame["profile_id"], sort=False).sum()
        count_longer = (
            (frame["age"] <= longer).groupby(frame["profile_id"], sort=False).sum()
            if longer < lookback
            else grouped.size()
        )
        result[f"activity_ratio_{recent}_{longer}"] = (count_recent / count_longer.where(count_longer > 0)).astype(
            "float64"
        )
    return result


def _repeat_model_features(  # noqa: PLR0917 - the reference keeps its shape
    history: pd.DataFrame, as_of: pd.Timestamp, profiles: pd.Index, spec: InstanceSpec, lookback: int, read_from
) -> pd.DataFrame:
    """BG/NBD fitted on every profile's goal events before ``as_of``; its view of each of ``profiles``.

    The model outputs use the whole history the run read (a probability means the same however far back the
    data goes); the two counts of the summary it is fitted on cover the feature window only, like every count.
    The fit uses every profile in ``history``, not only ``profiles``, so a subset of profiles gets the same values.
    """
    goal = history.loc[patterns_mask(history, spec.goal.events), ["profile_id", "timestamp"]]
    names = repeat_model_names(spec)
    view = repeat_view(goal, as_of, profiles, spec.goal.window_days)
    recent = goal.loc[goal["timestamp"] >= as_of - pd.Timedelta(days=lookback)]
    summary = repeat_summary(recent, as_of, profiles)
    # T is 0 only without a goal event: unknown, not "today"
    whole = repeat_summary(goal, as_of, profiles)
    covered = max((as_of - read_from) / pd.Timedelta(days=1), 1.0)
    rate = 30 * np.where(whole["T"] > 0, whole["x"] + 1, 0) / covered
    history_part = pd.DataFrame(
        {names[3]: summary["x"], names[4]: summary["T"].where(summary["T"] > 0), names[5]: rate}, index=summary.index
    )
    if view is None:
        model_part = pd.DataFrame(np.nan, index=profiles, columns=names[:3])
    else:
        model_part = view[["chance", "expected", "alive"]].set_axis(names[:3], axis=1)
    return pd.concat([model_part, history_part], axis=1)


def _most_frequent(window_events: pd.DataFrame, column: str) -> pd.Series:
    pairs = window_events[["profile_id", column]].dropna()
    counts = pairs.groupby(["profile_id", column], sort=True, observed=True).size().reset_index(name="n")
    counts = counts.sort_values(["profile_id", "n"], ascending=[True, False], kind="stable")
    first = counts.drop_duplicates("profile_id")
    return pd.Series(first[column].astype(str).to_numpy(), index=first["profile_id"].to_numpy())


def build_features(
    events: pd.DataFrame,
    as_of: pd.Timestamp,
    profiles: pd.Index,
    spec: InstanceSpec,
    plan: FeaturePlan,
    *,
    attributes: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Return the feature matrix of ``profiles`` at ``as_of``.

    Parameters
    ----------
    events : pandas.DataFrame
        Canonical events; only those in ``[as_of - plan.lookback_days, as_of)`` are used.
    as_of : pandas.Timestamp
        The as-of date (UTC).
    profiles : pandas.Index
        Profile ids, the rows of the result in this order.
    spec : InstanceSpec
        The instance (custom events).
    plan : FeaturePlan
        Which features to build.
    attributes : pandas.DataFrame, optional
        Static profile attributes indexed by ``profile_id``.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``profile_id``; counts are 0 and "days since" is missing for profiles without such events;
        categorical features use a fixed pandas ``category`` dtype.
    """
    lookback = plan.lookback_days
    window = in_window(events["timestamp"], as_of - pd.Timedelta(days=lookback), as_of)
    window_events = events.loc[window]
    window_events = window_events.loc[window_events["profile_id"].isin(profiles).to_numpy()]
    age = ((as_of - window_events["timestamp"]) / _DAY).to_numpy(dtype="float64")

    parts = [
        _source_features(
            window_events,
            age,
            where_mask(window_events, where),
            prefix,
            windows=count_windows(lookback),
            valued=prefix in plan.valued_sources,
        )
        for prefix, _, where in _sources(plan, spec)
    ]
    parts.append(_activity_features(window_events, age, lookback))
    if plan.repeat_model:
        history = events.loc[(events["timestamp"] < as_of).to_numpy()]  # all of it, see _repeat_model_features
        read_from = events["timestamp"].min()  # the history read starts with the first event given
        parts.append(_repeat_model_features(history, as_of, pd.Index(profiles), spec, lookback, read_from))
    for column in plan.categorical_columns:
        parts.append(_most_frequent(window_events, column).rename(f"{_slug(column)}_most_frequent").to_frame())
    matrix = pd.concat(parts, axis=1).reindex(pd.Index(profiles, name="profile_id"))

    if attributes is not None:
        for column in plan.profile_columns:
            matrix[f"profile_{_slug(column)}"] = attributes[column].reindex(matrix.index).to_numpy()
    infos = feature_infos(plan, spec)
    for info in infos:
        if info.fill is not None:
            matrix[info.name] = matrix[info.name].fillna(info.fill)
    for column, categories in _categorical_names(plan).items():
        values = matrix[column].astype("object")
        known = values.where(values.isin(categories))  # a value unseen in training becomes missing
        matrix[column] = pd.Categorical(known, categories=categories)
    numeric = [i.name for i in infos if not i.categorical]
    matrix[numeric] = matrix[numeric].astype("float64")
    return matrix[[i.name for i in infos]]


def _categorical_names(plan: FeaturePlan) -> dict[str, list[str]]:
    names = {f"{_slug(c)}_most_frequent": cats for c, cats in plan.categorical_columns.items()}
    names.update({f"profile_{_slug(c)}": cats for c, cats in plan.profile_columns.items() if cats})
    return names


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
