"""Did it come true: the realised goal rate of a past run's profiles, next to the rate its scores predicted.

A run as of ``P`` scored its profiles for the goal window ``[P, P + window_days)``.  Once that window has closed
(a later run as of ``T`` with ``P + window_days <= T``, whose events reach the window's last day), the goal is
known for every profile the run scored: the goal as stated (a ``will_not_occur`` goal holds when the goal events
did not happen).  Profiles are grouped three ways: ``all``; ``bucket`` (``low``, ``medium``, ``high``, as the run
assigned them); ``decile`` (``1`` holds the 10% highest scores, from the run's percentiles).  Each group gets the
mean predicted probability and the realised rate.  Nothing here refits anything: it is the honest check of the
scores a marketer used.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from customer_ai.home import as_path, fetch
from customer_ai.labels import goal_reached
from customer_ai.spec import InstanceSpec

__all__ = [
    "OUTCOMES_FILE",
    "OUTCOME_COLUMNS",
    "OutcomeTally",
    "VALUE_COLUMNS",
    "closed_window_dates",
    "decile_of",
    "outcome_rates",
    "read_tracked",
    "realised_outcomes",
    "tracked_frame",
]

OUTCOME_COLUMNS = ("grouping", "group", "profiles", "predicted_rate", "realised_rate")
# a goal with a value: each group's mean expected value and mean realised value (NaN for a run without one)
VALUE_COLUMNS = ("predicted_value", "realised_value")
# what a run found came true for past runs, in its run folder; the store records it when the run publishes
OUTCOMES_FILE = "outcomes.parquet"
_TRACKED_COLUMNS = ["as_of", *OUTCOME_COLUMNS, *VALUE_COLUMNS, "tracked_at"]
_BUCKETS = ("low", "medium", "high")


def decile_of(percentile: np.ndarray) -> np.ndarray:
    """Return deciles 1-10 from percentiles 1-100: decile 1 holds percentiles 91-100 (the highest scores)."""
    percentile = np.asarray(percentile, dtype="int64")
    return (11 - np.ceil(percentile / 10)).astype("int64").clip(1, 10)


def closed_window_dates(
    run_dates: list[str], window_days: int, as_of: pd.Timestamp, last_event: pd.Timestamp | None
) -> list[str]:
    """Return the run dates whose goal window has closed by ``as_of`` and is covered by the events.

    Parameters
    ----------
    run_dates : list of str
        As-of dates (``YYYY-MM-DD``) of past runs.
    window_days : int
        The goal window.
    as_of : pandas.Timestamp
        The date of the run that looks back: only events before it are known.
    last_event : pandas.Timestamp or None
        The newest event known; a window whose last day is after it is not closed in the data (a feed that
        stopped would otherwise read as "nobody reached the goal").

    Returns
    -------
    list of str
        The dates ``P`` with ``P + window_days <= as_of`` and ``P + window_days - 1 day <= last_event``, sorted.
    """
    if last_event is None:
        return []
    window = pd.Timedelta(days=window_days)
    closed = []
    for text in sorted(set(run_dates)):
        end = pd.Timestamp(text, tz="UTC") + window
        if end <= as_of and end - pd.Timedelta(days=1) <= last_event:
            closed.append(text)
    return closed


def realised_outcomes(
    spec: InstanceSpec, events: pd.DataFrame, as_of: pd.Timestamp, scores: pd.DataFrame
) -> pd.DataFrame:
    """Return predicted and realised goal rates of the profiles a run as of ``as_of`` scored.

    Parameters
    ----------
    spec : InstanceSpec
        The instance whose goal the run scored.
    events : pandas.DataFrame
        Canonical events covering ``[as_of, as_of + window_days)``; others are ignored.
    as_of : pandas.Timestamp
        The past run's as-of date.
    scores : pandas.DataFrame
        That run's scores: ``profile_id``, ``probability``, ``percentile``, ``bucket``.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`OUTCOME_COLUMNS`: one ``all`` row, one row per bucket and per decile that has profiles
        (``group`` is text: ``all``, ``low``/``medium``/``high``, ``1``-``10``).
    """
    profiles = pd.Index(scores["profile_id"].astype(str))
    return outcome_rates(spec, scores, goal_reached(events, spec.goal, as_of, profiles).to_numpy())


def outcome_rates(
    spec: InstanceSpec, scores: pd.DataFrame, reached: np.ndarray, worth: np.ndarray | None = None
) -> pd.DataFrame:
    """Return :func:`realised_outcomes` from whether each scored profile's goal events happened in the window.

    ``reached`` is aligned with ``scores`` (see :func:`customer_ai.labels.goal_reached`), and so is ``worth``,
    what each profile's goal events in the window were worth, for a run that predicted ``expected_value``.  A
    run's profiles can be counted a partition at a time with :class:`OutcomeTally`, which this calls for all of
    them at once.
    """
    tally = OutcomeTally(spec)
    tally.add(scores, reached, worth)
    return tally.rates()


class OutcomeTally:
    """Predicted and realised goal rates added up over parts of a past run's profiles (its partitions, say).

    Each group's profiles, sum of probabilities and number that came true are added up, and for a run that
    predicted ``expected_value`` the sums of expected and realised values over the profiles that have one;
    :meth:`rates` divides.  For one part the rates are the means of :func:`outcome_rates` to the bit; over several
    the sums are taken in another order, so a rate may differ in its last digits.
    """

    def __init__(self, spec: InstanceSpec) -> None:
        self.will_occur = spec.goal.occurrence == "will_occur"
        # (grouping, group) -> [profiles, probability, came true, valued profiles, expected value, realised value]
        self.sums: dict[tuple[str, str], list[float]] = {}

    def add(self, scores: pd.DataFrame, reached: np.ndarray, worth: np.ndarray | None = None) -> None:
        """Count some scored profiles: their ``scores``, whether they ``reached`` the goal, what it was ``worth``.

        ``scores`` hold ``probability``, ``percentile``, ``bucket`` and, where the run predicted it,
        ``expected_value``; ``worth`` is what their goal events in the window were worth (None: not counted).
        """
        came_true = (reached if self.will_occur else ~reached).astype("float64")
        probability = scores["probability"].to_numpy(dtype="float64")
        expected = np.full(len(scores), np.nan)
        if worth is not None and "expected_value" in scores.columns:
            expected = scores["expected_value"].to_numpy(dtype="float64")
        realised = np.zeros(len(scores)) if worth is None else np.asarray(worth, dtype="float64")
        columns = (probability, came_true, expected, realised)
        groups = {
            "bucket": scores["bucket"].astype(str).to_numpy(dtype=object),
            "decile": decile_of(scores["percentile"].to_numpy()).astype(str).astype(object),
        }
        self._add(("all", "all"), columns)
        for grouping, of_profiles in groups.items():
            for group in pd.unique(of_profiles):
                inside = of_profiles == group
                self._add((grouping, str(group)), tuple(column[inside] for column in columns))

    def _add(self, key: tuple[str, str], columns: tuple[np.ndarray, ...]) -> None:
        probability, came_true, expected, realised = columns
        sums = self.sums.setdefault(key, [0, 0.0, 0.0, 0, 0.0, 0.0])
        valued = ~np.isnan(expected)
        sums[0] += len(probability)
        sums[1] += probability.sum()
        sums[2] += came_true.sum()
        sums[3] += int(valued.sum())
        sums[4] += expected[valued].sum()
        sums[5] += realised[valued].sum()

    def rates(self) -> pd.DataFrame:
        """Return the :data:`OUTCOME_COLUMNS` and :data:`VALUE_COLUMNS`: ``all``, then each bucket and decile.

        Only groups that have profiles; the value columns are NaN where no profile of a group had an expected value.
        """
        keys = [("all", "all")]
        keys += [("bucket", b) for b in _BUCKETS if self.sums.get(("bucket", b), [0])[0]]
        keys += sorted((k for k in self.sums if k[0] == "decile" and self.sums[k][0]), key=lambda k: int(k[1]))
        rows = []
        for grouping, group in keys:
            profiles, probability, came_true, valued, expected, realised = self.sums.get(
                (grouping, group), [0, 0.0, 0.0, 0, 0.0, 0.0]
            )
            rows.append(
                (
                    grouping,
                    group,
                    int(profiles),
                    *_means((probability, came_true), profiles),
                    *_means((expected, realised), valued),
                )
            )
        return pd.DataFrame(rows, columns=[*OUTCOME_COLUMNS, *VALUE_COLUMNS])


def _means(sums: tuple[float, ...], count: int) -> tuple[float, ...]:
    """Return each sum over ``count`` (NaN for none)."""
    return tuple(float("nan") if not count else float(total / count) for total in sums)


def tracked_frame(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Return the outcomes a run tracked as the columns of its ``outcomes.parquet``.

    Parameters
    ----------
    frames : list of pandas.DataFrame
        One :func:`realised_outcomes` frame per past run, each with ``as_of`` (the past run's date) and
        ``tracked_at`` (``YYYY-MM-DDTHH:MM:SSZ``) added.

    Returns
    -------
    pandas.DataFrame
        Columns ``as_of, grouping, group, profiles, predicted_rate, realised_rate, tracked_at`` (``group`` as
        text); no rows, with those columns, when nothing was tracked.
    """
    if not frames:
        floats = ("_rate", "_value")
        kinds = {c: "float64" if c.endswith(floats) else "str" for c in _TRACKED_COLUMNS} | {"profiles": "int64"}
        return pd.DataFrame({c: pd.Series(dtype=kinds[c]) for c in _TRACKED_COLUMNS})
    frame = pd.concat(frames, ignore_index=True)
    for column in VALUE_COLUMNS:  # frames of outcomes tracked before values were
        if column not in frame.columns:
            frame[column] = np.nan
    return frame.assign(group=frame["group"].astype(str), profiles=frame["profiles"].astype("int64"))[_TRACKED_COLUMNS]


def read_tracked(folder: Path) -> dict[str, pd.DataFrame]:
    """Return the outcomes a run folder tracked (its ``outcomes.parquet``), by the past run's as-of date."""
    path = as_path(folder) / OUTCOMES_FILE
    if not path.exists():
        return {}
    frame = pd.read_parquet(fetch(path))
    return {date: rows.drop(columns="as_of").reset_index(drop=True) for date, rows in frame.groupby("as_of")}
