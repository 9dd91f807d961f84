"""From calibrated probability to what a marketer reads: score, percentile and bucket.

- ``score``: the probability in percent, rounded to an integer 0-100 ("a score of 30 means about 30 in 100
  such profiles reach the goal").  Because probabilities are calibrated, scores of different runs and
  instances with the same goal window mean the same thing.
- ``percentile``: 1-100, the share of profiles scored in the same run whose probability is at or below this
  one, rounded up; tied probabilities share a percentile and the top profiles have 100.
- ``bucket``: ``low`` below the ``medium`` threshold, ``high`` at or above the ``high`` threshold, else
  ``medium``, by a :class:`BucketRule`: the thresholds apply to the score (comparable across runs) or to the
  percentile (a fixed share of each run is "high").  ``buckets_by: auto``, the default, puts them on the score
  when that gives three buckets that mean something (every bucket holds profiles, and the high bucket holds at
  least 5% of them or spans at least 5 score points), and else on the percentile: the top tenth is high, the next
  two fifths medium (:func:`choose_bucket_rule`).  A run keeps the rule it used, so outcomes per bucket are
  compared across runs of one rule only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
import pandas as pd

from customer_ai.spec import OutputSettings

__all__ = [
    "AUTO_PERCENTILES",
    "BUCKET_RULE_FILE",
    "BucketRule",
    "MIN_HIGH_SHARE",
    "MIN_HIGH_SPAN",
    "bucket_of",
    "choose_bucket_rule",
    "percentile_among",
    "percentile_of",
    "percentile_ranks",
    "profiles_per_score",
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


BUCKET_RULE_FILE = "buckets.json"  # a run folder's bucket rule, chosen when its scores are combined
# the rule `auto` falls back to: the top tenth of the run is high, the next two fifths medium, the lower half low
AUTO_PERCENTILES = {"medium": 51.0, "high": 91.0}
MIN_HIGH_SHARE = 0.05  # a high bucket by score means something when it holds this share of the profiles ...
MIN_HIGH_SPAN = 5  # ... or spans this many score points


@dataclass(frozen=True)
class BucketRule:
    """How a run puts its profiles into buckets: thresholds on one column, who chose them and why.

    Attributes
    ----------
    by : {"score", "percentile"}
        The column the thresholds apply to.
    medium, high : float
        The lowest ``by`` value of the medium and of the high bucket.
    chosen : {"instance", "auto"}
        ``instance``: the instance file's ``buckets_by`` named the column; ``auto``: :func:`choose_bucket_rule`
        picked it from the run's scores.
    why : str
        For ``auto``, why the column was picked (empty otherwise).
    """

    by: Literal["score", "percentile"]
    medium: float
    high: float
    chosen: Literal["instance", "auto"] = "instance"
    why: str = ""

    def key(self) -> tuple[str, float, float]:
        """Return what makes two runs' buckets comparable: the column and the thresholds."""
        return (self.by, float(self.medium), float(self.high))

    def to_dict(self) -> dict:
        """Return the rule as JSON-ready data (kept in the run's metadata and run row)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> BucketRule:
        """Return the rule kept by :meth:`to_dict`."""
        return cls(**{name: data[name] for name in ("by", "medium", "high", "chosen", "why") if name in data})

    @classmethod
    def of_run(cls, data: dict | None, output: OutputSettings) -> BucketRule:
        """Return a run's rule as kept (``data``), or the rule a run had before rules were kept (``data`` None).

        That is the instance's thresholds on the percentile when ``buckets_by`` names it, else on the score.
        """
        if data:
            return cls.from_dict(data)
        by = "percentile" if output.buckets_by == "percentile" else "score"
        return cls(by, float(output.buckets["medium"]), float(output.buckets["high"]))

    def _ranks_by_tenths(self) -> bool:
        """Return whether this is the ranking ``auto`` falls back to (:data:`AUTO_PERCENTILES`)."""
        return self.key() == ("percentile", AUTO_PERCENTILES["medium"], AUTO_PERCENTILES["high"])

    def short(self) -> str:
        """Name the rule in a few words, for a table cell: "score 25/75", "top tenth", "percentile 50/90"."""
        if self._ranks_by_tenths():
            return "rank: top tenth high"
        return f"{self.by} {self.medium:g}/{self.high:g}"

    def in_words(self) -> str:
        """Describe the rule, e.g. "by score: high from 75, medium from 25 (low below)"."""
        if self.by == "score":
            text = f"by score: high from {self.high:g}, medium from {self.medium:g}, low below"
        elif self._ranks_by_tenths():
            text = "by rank in the run: high is the likeliest tenth, medium the next two fifths, low the lower half"
        else:
            text = f"by percentile in the run: high from {self.high:g}, medium from {self.medium:g}, low below"
        return f"{text} ({self.why})" if self.why else text


def profiles_per_score(probability: np.ndarray) -> np.ndarray:
    """Return how many of the probabilities have each score 0-100 (101 counts)."""
    return np.bincount(score_of(probability), minlength=101).astype("int64")


def choose_bucket_rule(output: OutputSettings, per_score: np.ndarray) -> BucketRule:
    """Return the bucket rule of a run whose profiles have ``per_score`` scores (:func:`profiles_per_score`).

    ``buckets_by: score`` or ``percentile`` in the instance file is the rule, with its ``buckets`` thresholds.
    ``auto`` keeps those thresholds on the score when every bucket then holds profiles and the high bucket holds at
    least :data:`MIN_HIGH_SHARE` of them or spans at least :data:`MIN_HIGH_SPAN` score points; otherwise (a rare
    goal's empty high bucket, a churn goal's sliver of one) it ranks the run: :data:`AUTO_PERCENTILES`.
    """
    medium, high = float(output.buckets["medium"]), float(output.buckets["high"])
    if output.buckets_by != "auto":
        return BucketRule(output.buckets_by, medium, high)
    per_score = np.asarray(per_score, dtype="int64")
    total = int(per_score.sum())
    scores = np.arange(len(per_score))
    counts = {
        "low": int(per_score[scores < medium].sum()),
        "medium": int(per_score[(scores >= medium) & (scores < high)].sum()),
        "high": int(per_score[scores >= high].sum()),
    }
    held = scores[(scores >= high) & (per_score > 0)]
    span = int(held.max() - held.min() + 1) if len(held) else 0
    empty = [name for name, n in counts.items() if n == 0]
    if not total or (not empty and (counts["high"] >= MIN_HIGH_SHARE * total or span >= MIN_HIGH_SPAN)):
        return BucketRule("score", medium, high, "auto")
    if empty:
        why = f"by score the {' and '.join(empty)} bucket{'s' if len(empty) > 1 else ''} would hold no profile"
    else:
        share = counts["high"] / total
        why = (
            f"by score the high bucket would hold {share:.1%} of the profiles, with scores {held.min()} to "
            f"{held.max()} only"
        )
    return BucketRule("percentile", AUTO_PERCENTILES["medium"], AUTO_PERCENTILES["high"], "auto", why)


def score_frame(
    profile_ids: pd.Index,
    probability: np.ndarray,
    rule: BucketRule,
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
    rule : BucketRule
        Which column the bucket thresholds apply to, and the thresholds (see :func:`choose_bucket_rule`).
    cuts : numpy.ndarray, optional
        The run's percentile cuts (see :func:`percentile_ranks`) when ``probability`` holds only some of its
        profiles (a partition's): the percentiles are taken among all.  Default: among ``probability``.

    Returns
    -------
    pandas.DataFrame
        Columns ``profile_id``, ``probability``, ``score``, ``percentile``, ``bucket``.
    """
    if rule.by not in ("score", "percentile"):
        raise ValueError(f"a bucket rule applies to the score or the percentile, not {rule.by!r}")
    score = score_of(probability)
    percentile = percentile_of(probability) if cuts is None else percentile_among(probability, cuts)
    ranked = score if rule.by == "score" else percentile
    return pd.DataFrame(
        {
            "profile_id": np.asarray(profile_ids, dtype=object).astype(str),
            "probability": np.asarray(probability, dtype="float64"),
            "score": score,
            "percentile": percentile,
            "bucket": bucket_of(ranked, rule.medium, rule.high),
        }
    )


def top_score_notes(rule: BucketRule, top: int) -> list[str]:
    """Return what to say when a rule on the score leaves the medium or high bucket empty (from the top score).

    Scores are calibrated probabilities, so an empty ``high`` bucket is a true statement about the goal (nobody
    is that likely to reach it now), not a fault; the note says how to get buckets that rank the run instead.
    """
    if rule.by != "score":
        return []
    empty = [name for name in ("medium", "high") if top < getattr(rule, name)]
    if not empty:
        return []
    threshold = getattr(rule, empty[0])
    return [
        f"No profile is in the {' or '.join(empty)} bucket: the {empty[0]} bucket starts at a score of "
        f"{threshold:g} and the highest score is {top}. Scores are calibrated probabilities, so no profile is that "
        "likely to reach the goal now. To rank the profiles of each run into buckets instead, set "
        "`output.buckets_by: auto` (the default) or `percentile` in the instance file."
    ]
