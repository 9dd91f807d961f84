"""From calibrated probability to what a marketer reads: score, percentile and bucket.

- ``score``: the probability in percent, rounded to an integer 0-100 ("a score of 30 means about 30 in 100
  such profiles reach the goal").  Because probabilities are calibrated, scores of different runs and
  instances with the same goal window mean the same thing.
- ``percentile``: 1-100, the share of profiles scored in the same run whose probability is at or below this
  one, rounded up; tied probabilities share a percentile and the top profiles have 100.
- ``bucket``: ``low`` below the ``medium`` threshold, ``high`` at or above the ``high`` threshold, else
  ``medium``; the thresholds apply to the score (``buckets_by: score``, the default: comparable across runs)
  or to the percentile (``buckets_by: percentile``: a fixed share of each run is "high", even for a rare
  goal whose scores are all low).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from customer_ai.spec import OutputSettings

__all__ = [
    "bucket_of",
    "empty_bucket_notes",
    "percentile_among",
    "percentile_of",
    "percentile_ranks",
    "score_of",
    "score_frame",
    "top_score_notes",
]


def score_of(probability: np.ndarray) -> np.ndarray:
    """Return integer scores 0-100 (probability in percent, halves rounded up)."""
    return np.floor(np.asarray(probability, dtype="float64") * 100 + 0.5).astype("int64").clip(0, 100)


def percentile_of(probability: np.ndarray) -> np.ndarray:
    """Return percentiles 1-100 among the given probabilities (ties share the higher percentile)."""
    probability = np.asarray(probability, dtype="float64")
    return percentile_among(probability, np.sort(probability)[percentile_ranks(len(probability))])


def _percentile_at(at_or_below: np.ndarray, count: int) -> np.ndarray:
    """Return the percentile of probabilities with ``at_or_below`` of the run's ``count`` at or below them."""
    return np.ceil(np.round(np.asarray(at_or_below) / count * 100, 9)).astype("int64").clip(1, 100)


def percentile_ranks(count: int) -> np.ndarray:
    """Return the 0-based ranks among a run's ``count`` probabilities whose values cut its percentiles.

    A profile's percentile exceeds ``k`` (1-99) exactly when its probability is at or above the value at the
    ``k``-th rank (the probabilities in ascending order), so these 99 values (:func:`percentile_among`'s ``cuts``)
    place every profile of the run without holding the others' probabilities.  Empty when ``count`` is 0.
    """
    if count < 1:
        return np.zeros(0, dtype="int64")
    k = np.arange(1, 100)
    # the fewest profiles at or below whose share makes a percentile above k: (k * count) // 100 + 1 but for
    # rounding, so the smallest of a few neighbours that does
    candidates = np.clip((k * count) // 100 + np.arange(-1, 3)[:, None], 1, count)
    above = _percentile_at(candidates, count) > k
    fewest = np.where(above, candidates, count + 1).min(axis=0)
    return fewest - 1


def percentile_among(probability: np.ndarray, cuts: np.ndarray) -> np.ndarray:
    """Return percentiles 1-100 of some of a run's probabilities (ties share the higher percentile).

    Parameters
    ----------
    probability : numpy.ndarray
        The probabilities to place (a partition's, say).
    cuts : numpy.ndarray
        The run's probabilities at :func:`percentile_ranks` (in ascending order; see
        :func:`customer_ai.quantiles.order_statistics`): a partition's percentiles are exactly those of a
        scoring of everyone at once.
    """
    probability = np.asarray(probability, dtype="float64")
    if not len(probability):
        return np.array([], dtype="int64")
    return 1 + np.searchsorted(np.asarray(cuts, dtype="float64"), probability, side="right").astype("int64")


def bucket_of(score: np.ndarray, medium: float, high: float) -> np.ndarray:
    """Return ``low``/``medium``/``high`` for scores (or percentiles): low < medium <= medium-bucket < high <= high."""
    score = np.asarray(score, dtype="float64")
    return np.where(score >= high, "high", np.where(score >= medium, "medium", "low")).astype(object)


def score_frame(
    profile_ids: pd.Index,
    probability: np.ndarray,
    buckets: dict[str, float],
    buckets_by: str = "score",
    *,
    cuts: np.ndarray | None = None,
) -> pd.DataFrame:
    """Return the per-profile score columns.

    Parameters
    ----------
    profile_ids : pandas.Index
        The scored profiles.
    probability : numpy.ndarray
        Calibrated probabilities of the goal, aligned with ``profile_ids``.
    buckets : dict
        ``{"medium": threshold, "high": threshold}``.
    buckets_by : {"score", "percentile"}, default "score"
        Which column the thresholds apply to.
    cuts : numpy.ndarray, optional
        The run's percentile cuts (see :func:`percentile_ranks`) when ``probability`` holds only some of its
        profiles (a partition's): the percentiles are taken among all.  Default: among ``probability``.

    Returns
    -------
    pandas.DataFrame
        Columns ``profile_id``, ``probability``, ``score``, ``percentile``, ``bucket``.
    """
    if buckets_by not in ("score", "percentile"):
        raise ValueError(f"buckets_by must be 'score' or 'percentile', not {buckets_by!r}")
    score = score_of(probability)
    percentile = percentile_of(probability) if cuts is None else percentile_among(probability, cuts)
    ranked = score if buckets_by == "score" else percentile
    return pd.DataFrame(
        {
            "profile_id": np.asarray(profile_ids, dtype=object).astype(str),
            "probability": np.asarray(probability, dtype="float64"),
            "score": score,
            "percentile": percentile,
            "bucket": bucket_of(ranked, buckets["medium"], buckets["high"]),
        }
    )


def empty_bucket_notes(output: OutputSettings, scores: pd.DataFrame) -> list[str]:
    """Return what to say when buckets follow the score and no profile scored high enough for a bucket.

    Scores are calibrated probabilities, so an empty ``high`` bucket is a true statement about the goal (nobody
    is that likely to reach it now), not a fault; the note says how to target a fixed share instead.
    """
    if output.buckets_by != "score" or scores.empty:
        return []
    return top_score_notes(output, int(scores["score"].max()))


def top_score_notes(output: OutputSettings, top: int) -> list[str]:
    """Return :func:`empty_bucket_notes` from the run's highest score alone (its scores need not be in memory)."""
    if output.buckets_by != "score":
        return []
    empty = [name for name in ("medium", "high") if top < output.buckets[name]]
    if not empty:
        return []
    threshold = output.buckets[empty[0]]
    return [
        f"No profile is in the {' or '.join(empty)} bucket: the {empty[0]} bucket starts at a score of "
        f"{threshold:g} and the highest score is {top}. Scores are calibrated probabilities, so no profile is that "
        "likely to reach the goal now. To give a fixed share of the profiles to each bucket instead, set "
        "`output.buckets_by: percentile` in the instance file."
    ]
