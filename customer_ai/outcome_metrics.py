"""Quality of predicted amounts and timings against what happened: Gini, ranks, decile error, concordance.

The amounts are expected spend per profile in a future window, the timings the predicted days to the next
purchase; both are judged out of time against the realised spend and the observed days.  Ties in a prediction
are handled as a random order would on average: a group of equal predictions counts as its mean realised
amount at each of its places, so coarse predictors (counts, days, a constant) are neither flattered nor
punished by the order the data came in.

Time boundaries are half-open, as for the labels: days are measured from the as-of instant, so a purchase
``d`` days later falls "within the first ``m`` days" when ``d < m``.

Every function takes array-likes and raises ValueError, naming the argument, when one is not one-dimensional,
holds NaN or differs in length from the first.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.stats import rankdata

__all__ = [
    "best_of",
    "bought_by_median",
    "concordance",
    "decile_error",
    "decile_table",
    "MarginGate",
    "normalised_gini",
    "paired_margin",
    "spearman",
    "total_ratio",
]


def _vectors(**named: npt.ArrayLike) -> list[np.ndarray]:
    """Return the named array-likes as float64 vectors, raising ValueError for a wrong shape, length or a NaN."""
    arrays = {name: np.asarray(value, dtype="float64") for name, value in named.items()}
    for name, array in arrays.items():
        if array.ndim != 1:
            raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
        if np.isnan(array).any():
            raise ValueError(f"{name} holds NaN")
    (first, reference), *others = arrays.items()
    for name, array in others:
        if len(array) != len(reference):
            raise ValueError(f"{name} has {len(array)} values but {first} has {len(reference)}")
    return list(arrays.values())


def _times(
    predicted_days: npt.ArrayLike, observed_days: npt.ArrayLike, event_observed: npt.ArrayLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the inputs of the timing measures checked, the events as booleans."""
    predicted, observed, event = _vectors(
        predicted_days=predicted_days, observed_days=observed_days, event_observed=event_observed
    )
    return predicted, observed, event != 0


def _tie_averaged(predicted: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Return ``values`` ordered by ``predicted``, highest first, each tie group replaced by its mean.

    This is the expected order over random tie-breaks, place by place: every sum over leading places (and so
    every cumulative curve, Gini or group mean built on them) is the average over all tie-breaks.
    """
    order = np.argsort(-predicted, kind="stable")
    ordered = values[order]
    if len(ordered) == 0:
        return ordered
    held = predicted[order]
    starts = np.concatenate([[0], np.flatnonzero(held[1:] != held[:-1]) + 1])  # not np.diff: inf - inf is NaN
    sizes = np.diff(np.concatenate([starts, [len(ordered)]]))
    return np.repeat(np.add.reduceat(ordered, starts) / sizes, sizes)


def _gini(ordered: np.ndarray) -> float:
    """Return the Gini of amounts in the given order: twice the area between their Lorenz-style curve and the diagonal.

    The curve joins ``(k / n, share of the total in the first k)`` for ``k = 0 .. n``; its area is the sum of
    trapezoids ``(L[k-1] + L[k]) / (2 n)`` with ``L[0] = 0`` and ``L[n] = 1``, that is ``(sum L[1..n] - 1/2) / n``.
    """
    share = np.cumsum(ordered) / ordered.sum()
    return float(2 * (share.sum() - 0.5) / len(ordered) - 1)


def normalised_gini(predicted: npt.ArrayLike, realised: npt.ArrayLike) -> float:
    """Return the Gini of the realised amounts ordered by the prediction, divided by that of the perfect order.

    Profiles are ordered by ``predicted``, highest first.  The curve plots the cumulative share of the realised
    total captured (``L``) against the cumulative share of profiles (``k / n``), straight between the points;
    the Gini is twice the area between that curve and the diagonal (positive above it).  The perfect order is
    the realised amounts ordered by themselves, highest first.  A group of tied predictions counts as its
    mean realised amount at each of its places: the expected curve over random tie-breaks.

    Parameters
    ----------
    predicted : array-like
        Predicted amounts (only their order matters).
    realised : array-like
        Realised amounts of the same profiles.

    Returns
    -------
    float
        1 for a perfect order, 0 for a random or constant prediction, -1 for the reversed order; NaN when the
        realised total is 0 or every realised amount is the same (nothing to order).

    Examples
    --------
    >>> normalised_gini([3, 2, 1], [5.0, 1.0, 0.0])
    1.0
    """
    predicted, realised = _vectors(predicted=predicted, realised=realised)
    if len(realised) == 0 or realised.sum() == 0 or np.all(realised == realised[0]):
        return float("nan")
    return _gini(_tie_averaged(predicted, realised)) / _gini(-np.sort(-realised))


def spearman(predicted: npt.ArrayLike, realised: npt.ArrayLike) -> float:
    """Return Spearman's rank correlation: the Pearson correlation of the average ranks (ties share their mean).

    Parameters
    ----------
    predicted, realised : array-like
        Predicted and realised amounts of the same profiles.

    Returns
    -------
    float
        Between -1 and 1; NaN when either side is constant (or has fewer than two values).
    """
    predicted, realised = _vectors(predicted=predicted, realised=realised)
    if len(realised) < 2 or np.all(predicted == predicted[0]) or np.all(realised == realised[0]):
        return float("nan")
    return float(np.corrcoef(rankdata(predicted), rankdata(realised))[0, 1])


def decile_table(predicted: npt.ArrayLike, realised: npt.ArrayLike, groups: int = 10) -> pd.DataFrame:
    """Return mean predicted and mean realised amounts by group of the predicted order (group 1 highest).

    Profiles are ordered by ``predicted``, highest first, and cut at places ``floor(g * n / groups)`` for
    ``g = 0 .. groups``, so group sizes differ by one at most.  A cut through a group of tied predictions gives
    each side the tie group's mean realised amount for the places it takes (the average over tie-breaks).

    Parameters
    ----------
    predicted, realised : array-like
        Predicted and realised amounts of the same profiles.
    groups : int, default 10
        The number of groups.

    Returns
    -------
    pandas.DataFrame
        One row per group: ``group`` (1 = highest predicted), ``profiles``, ``mean_predicted``,
        ``mean_realised``; the means are NaN in an empty group (fewer profiles than groups).
    """
    predicted, realised = _vectors(predicted=predicted, realised=realised)
    if groups < 1:
        raise ValueError(f"groups must be at least 1, got {groups}")
    cuts = np.arange(groups + 1) * len(realised) // groups
    profiles = np.diff(cuts)
    sums = {}
    for name, ordered in (("predicted", -np.sort(-predicted)), ("realised", _tie_averaged(predicted, realised))):
        cumulative = np.concatenate([[0.0], np.cumsum(ordered)])
        sums[name] = np.diff(cumulative[cuts])
    with np.errstate(invalid="ignore", divide="ignore"):
        return pd.DataFrame(
            {
                "group": np.arange(1, groups + 1),
                "profiles": profiles,
                "mean_predicted": np.where(profiles > 0, sums["predicted"] / profiles, np.nan),
                "mean_realised": np.where(profiles > 0, sums["realised"] / profiles, np.nan),
            }
        )


def decile_error(predicted: npt.ArrayLike, realised: npt.ArrayLike, groups: int = 10) -> float:
    """Return the mean over groups of ``|mean predicted - mean realised|``, relative to the overall mean realised.

    The groups are those of :func:`decile_table`, which takes the same arguments (ties shared as a random order
    would on average).  A relative error: 0.2 means the group means miss by 20% of the average realised amount, on
    average over groups.  NaN when there are fewer profiles than groups or the mean realised amount is not
    positive.
    """
    table = decile_table(predicted, realised, groups)
    if (table["profiles"] == 0).any():
        return float("nan")
    mean_realised = float(np.mean(np.asarray(realised, dtype="float64")))
    if not mean_realised > 0:
        return float("nan")
    return float((table["mean_predicted"] - table["mean_realised"]).abs().mean() / mean_realised)


def total_ratio(predicted: npt.ArrayLike, realised: npt.ArrayLike) -> float:
    """Return the predicted total divided by the realised total: 1 when the level is right, NaN when the latter is 0."""
    predicted, realised = _vectors(predicted=predicted, realised=realised)
    total = realised.sum()
    return float(predicted.sum() / total) if total != 0 else float("nan")


def _later_and_above(rank: np.ndarray, earlier: np.ndarray) -> tuple[int, int]:
    """Return, over places ``i`` flagged ``earlier``, the counts of later places with a higher and an equal rank.

    That is ``sum_i #{j > i: rank[j] > rank[i]}`` and ``sum_i #{j > i: rank[j] == rank[i]}`` over the flagged
    ``i``, for integer ranks, by a merge sort run top-down in vectorised passes: at each level the places are
    held in blocks of ``2 ** (level + 1)``, sorted by rank inside each block, and every place of a block's first
    half is counted against the places of its second half; the blocks are then split in two, in order, for the
    next level.  One sort and ``log2 n`` linear passes: O(n log n).
    """
    n = len(rank)
    order = np.argsort(rank, kind="stable")  # the places, in blocks (one at first) sorted by rank inside
    above = equal = 0
    for level in reversed(range(max(n - 1, 0).bit_length())):
        place = order
        block = place >> (level + 1)
        second = (place >> level) & 1
        block_start = block << (level + 1)  # a block takes the same indices in `order` as its places
        block_end = np.minimum(block_start + (2 << level), n)
        seconds_before = np.concatenate([[0], np.cumsum(second)])  # second-half places among the first k
        # runs of equal rank inside a block, and where each place's run starts and ends
        held = rank[place]
        new_run = np.concatenate([[True], (block[1:] != block[:-1]) | (held[1:] != held[:-1])])
        run_starts = np.flatnonzero(new_run)
        run = np.cumsum(new_run) - 1
        run_start, run_end = run_starts[run], np.concatenate([run_starts[1:], [n]])[run]
        counted = (second == 0) & earlier[place]
        above += int(np.sum((seconds_before[block_end] - seconds_before[run_end])[counted]))
        equal += int(np.sum((seconds_before[run_end] - seconds_before[run_start])[counted]))
        # split every block into its first half then its second half, each still sorted by rank
        index = np.arange(n)
        before_in_block = seconds_before[index] - seconds_before[block_start]
        target = np.where(second == 1, block_start + (1 << level) + before_in_block, index - before_in_block)
        order = np.empty_like(order)
        order[target] = place
    return above, equal


def concordance(predicted_days: npt.ArrayLike, observed_days: npt.ArrayLike, event_observed: npt.ArrayLike) -> float:
    """Return Harrell's concordance index of predicted times against right-censored observed times.

    A pair is comparable when the profile that left observation first had the event: ``observed[i] <
    observed[j]`` with ``event[i]``, or equal observed times with the event for ``i`` only (censoring is taken
    to come after an event on the same day).  Two events at the same time, and any pair whose earlier profile
    was censored, are not comparable.  A comparable pair is concordant when ``predicted[i] < predicted[j]``
    (the sooner purchase was predicted sooner), counts one half when the predictions are equal (``inf`` equals
    ``inf``) and is discordant otherwise.  The index is ``(concordant + ties / 2) / comparable``: the rule and
    the orientation of ``lifelines.utils.concordance_index`` with predicted survival times.

    Computed in O(n log n) (one sort and a vectorised merge count), not over the n² pairs.

    Parameters
    ----------
    predicted_days : array-like
        Predicted days to the next purchase (shorter is sooner; ``inf`` for beyond the horizon).
    observed_days : array-like
        Observed days to the purchase, or to the end of observation for censored profiles.
    event_observed : array-like of bool
        Whether the purchase was observed.

    Returns
    -------
    float
        1 for a perfect order, 0.5 for a random or constant prediction, 0 for the reversed order; NaN when no
        pair is comparable.
    """
    predicted, observed, event = _times(predicted_days, observed_days, event_observed)
    rank = np.unique(predicted, return_inverse=True)[1].ravel()
    # places ordered by observed time, events before censorings at the same time, so that the comparable
    # partners of an event are exactly the later places outside its (time, event) group; inside a group the
    # ranks fall, so its own later places are never above and only its equal predictions must be taken back
    order = np.lexsort((-rank, ~event, observed))
    time, happened, rank = observed[order], event[order], rank[order]
    above, equal = _later_and_above(rank, happened)
    group_start = np.concatenate([[True], (time[1:] != time[:-1]) | (happened[1:] != happened[:-1])])
    group = np.cumsum(group_start) - 1
    group_end = np.concatenate([np.flatnonzero(group_start)[1:], [len(time)]])[group]
    comparable = int(np.sum((len(time) - group_end)[happened]))
    same = np.concatenate([[True], group_start[1:] | (rank[1:] != rank[:-1])])
    _, tied_within = np.unique(np.cumsum(same)[happened], return_counts=True)
    equal -= int(np.sum(tied_within * (tied_within - 1) // 2))
    if comparable == 0:
        return float("nan")
    return (above + equal / 2) / comparable


def bought_by_median(
    predicted_days: npt.ArrayLike, observed_days: npt.ArrayLike, event_observed: npt.ArrayLike, horizon_days: float
) -> tuple[float, int]:
    """Return the share of profiles that bought before their predicted median time, and how many were counted.

    A profile bought "by its median ``m``" when the purchase was observed within the first ``m`` days after the
    as-of instant, ``observed < m`` (half-open, as the label windows): a purchase at exactly ``m`` days is not
    counted.  A profile is counted only when the answer is known: its median is finite (an ``inf`` median,
    "beyond the horizon", is left out), the whole span ``[0, m)`` lies in the observed period ``[0,
    horizon_days)``, that is ``m <= horizon_days``, and it was not censored before ``m`` (a censored profile
    needs ``observed >= m``; with censoring only at the horizon this always holds).  For a calibrated median
    the share is 0.5.

    Parameters
    ----------
    predicted_days : array-like
        Predicted median days to the next purchase (``inf`` for beyond the horizon).
    observed_days : array-like
        Observed days to the purchase, or to the end of observation for censored profiles.
    event_observed : array-like of bool
        Whether the purchase was observed.
    horizon_days : float
        How many days after the as-of instant the data is observed, for this evaluation.

    Returns
    -------
    tuple of (float, int)
        The share (NaN when no profile is counted) and the number of profiles counted.
    """
    predicted, observed, event = _times(predicted_days, observed_days, event_observed)
    bought = event & (observed < predicted)
    counted = np.isfinite(predicted) & (predicted <= float(horizon_days)) & (bought | (observed >= predicted))
    profiles = int(counted.sum())
    return (float(bought[counted].mean()) if profiles else float("nan")), profiles


def paired_margin(
    metric: Callable[..., float],
    predicted: np.ndarray,
    baseline: np.ndarray,
    *outcomes: np.ndarray,
    draws: int = 200,
    seed: int = 0,
) -> dict:
    """Return ``metric`` of ``predicted`` minus the baseline's, with a paired bootstrap 95% interval.

    ``metric(prediction, *outcomes)`` is measured on all the profiles, then on ``draws`` resamples of them drawn
    with replacement, both predictions on the same draw (and their outcomes with them): whether a margin can be
    told apart from none on these profiles.

    Returns
    -------
    dict
        ``difference`` (on all the profiles), ``low`` and ``high`` (the 2.5th and 97.5th percentiles of the
        draws' differences; a draw where the metric is undefined, NaN, is left out).
    """
    rng = np.random.default_rng(seed)
    margins = []
    for _ in range(draws):
        drawn = rng.integers(0, len(predicted), len(predicted))
        picked = [outcome[drawn] for outcome in outcomes]
        margins.append(metric(predicted[drawn], *picked) - metric(baseline[drawn], *picked))
    low, high = np.nanpercentile(margins, [2.5, 97.5])
    difference = metric(predicted, *outcomes) - metric(baseline, *outcomes)
    return {"difference": float(difference), "low": float(low), "high": float(high)}


def best_of(baselines: Mapping[str, Mapping] | None, key: str) -> tuple[str, float] | None:
    """Return the name and the ``key`` of the baseline highest on ``key``, among those where it is a finite number.

    ``baselines`` maps each baseline's name to its measures (as the held-out metrics of a run store them); None
    when no baseline has a finite ``key``.  A tie keeps the first.
    """
    measured = {
        name: float(measures[key])
        for name, measures in (baselines or {}).items()
        if isinstance(measures.get(key), int | float) and np.isfinite(measures[key])
    }
    if not measured:
        return None
    name = max(measured, key=measured.__getitem__)
    return name, measured[name]


@dataclass(frozen=True)
class MarginGate:
    """A quality gate on a measure of a model against the best of its baselines (the value and the timing models').

    Attributes
    ----------
    key : str
        The measure in the held-out metrics (``normalised_gini``, ``concordance``): the model's own and each
        baseline's under ``baselines``.
    subject : str
        The measure in words, in the reason ("the value model's normalised Gini").
    words : mapping of str to str
        Each baseline in the possessive ("the past spend rate's"); a baseline without words is named.
    setting : str
        The spec's setting of the gain asked for ("training.min_value_gini_gain").
    undefined : str
        The reason when the model's measure is missing or not finite.
    """

    key: str
    subject: str
    words: Mapping[str, str]
    setting: str
    undefined: str

    def verdict(self, metrics: Mapping, min_gain: float = 0.0) -> tuple[str, str]:
        """Return ``("ok" | "poor", reason)``: whether the measure beats the best baseline's by more than ``min_gain``.

        ``poor`` with the reason :attr:`undefined` when the model's measure is missing or not finite; ``ok`` when no
        baseline was measured (:func:`best_of`).
        """
        found = metrics.get(self.key)
        if not isinstance(found, int | float) or not np.isfinite(found):
            return "poor", self.undefined
        best = best_of(metrics.get("baselines"), self.key)
        if best is None:
            return "ok", f"{self.subject} is {found:.3f} (no baseline measured)"
        name, level = best
        said = f"{self.words.get(name, name)} {level:.3f}"
        wanted = f" by more than {min_gain:g} ({self.setting})" if min_gain else ""
        if found - level <= min_gain:
            return "poor", f"{self.subject} {found:.3f} is not above {said}{wanted}"
        return "ok", f"{self.subject} {found:.3f} is above {said}{wanted}"
