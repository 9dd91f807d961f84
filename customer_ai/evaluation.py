"""Quality of probabilities against outcomes: ranking, calibration, lift and gains.

Ties are handled as a random order would on average: a decile boundary that cuts through a group of equal
scores takes the group's positive rate for the part it includes, so coarse baselines (counts, days) are not
flattered or punished by an arbitrary tie-break.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
from scipy.stats import rankdata
from sklearn.metrics import average_precision_score, roc_auc_score

__all__ = [
    "calibration_error",
    "calibration_error_floor",
    "classification_metrics",
    "expected_reach",
    "gains_table",
    "paired_auc_difference",
    "quality_verdict",
    "ranking_auc",
    "shift_to_rate",
    "top_fraction_lift",
    "window_rates",
]

_Z_95 = 1.959963984540054  # the standard normal's 97.5% quantile


def _positives_in_top(score: np.ndarray, label: np.ndarray, k: float) -> float:
    """Return the expected positives among the ``k`` highest scores, tie groups shared pro rata."""
    order = np.argsort(-score, kind="stable")
    sorted_score, sorted_label = score[order], label[order]
    boundaries = np.flatnonzero(np.diff(sorted_score)) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [len(score)]])
    group_positives = np.add.reduceat(sorted_label, starts) if len(score) else np.array([])
    taken = np.clip(k - starts, 0, ends - starts)
    return float(np.sum(group_positives * taken / (ends - starts)))


def top_fraction_lift(score: np.ndarray, label: np.ndarray, fraction: float = 0.1) -> float:
    """Return the positive rate among the top ``fraction`` of scores divided by the overall positive rate."""
    score = np.asarray(score, dtype="float64")
    label = np.asarray(label, dtype="float64")
    if len(label) == 0 or label.sum() == 0:
        return float("nan")
    base = label.mean()
    k = fraction * len(label)
    return float(_positives_in_top(score, label, k) / k / base)


def calibration_error(probability: np.ndarray, label: np.ndarray, bins: int = 10) -> float:
    """Return the expected calibration error over ``bins`` equal-width probability bins.

    ``sum_b (n_b / n) * |mean predicted_b - observed rate_b|``.
    """
    probability = np.asarray(probability, dtype="float64")
    label = np.asarray(label, dtype="float64")
    which = np.minimum((probability * bins).astype(int), bins - 1)
    total = 0.0
    for b in np.unique(which):
        inside = which == b
        total += inside.sum() * abs(probability[inside].mean() - label[inside].mean())
    return float(total / len(label))


def calibration_error_floor(probability: np.ndarray, bins: int = 10, draws: int = 200, seed: int = 0) -> float:
    """Return the calibration error a perfectly calibrated model would show on these profiles, from chance alone.

    Outcomes are drawn ``draws`` times as ``Bernoulli(probability)`` and the mean :func:`calibration_error` is
    returned: a measured error near this floor is sampling noise, not miscalibration.
    """
    probability = np.asarray(probability, dtype="float64")
    if len(probability) == 0:
        return float("nan")
    # the bins and their mean predictions do not change between draws: only the outcomes per bin are counted
    which = np.minimum((probability * bins).astype(int), bins - 1)
    present = np.unique(which)
    sizes = np.bincount(which, minlength=bins)[present]
    predicted = [probability[which == b].mean() for b in present]
    rng = np.random.default_rng(seed)
    errors = []
    for _ in range(draws):
        drawn = rng.random(len(probability)) < probability
        observed = np.bincount(which[drawn], minlength=bins)[present] / sizes
        total = 0.0
        for size, mean, rate in zip(sizes, predicted, observed, strict=True):
            total += size * abs(mean - rate)  # as calibration_error adds them, bin after bin
        errors.append(float(total / len(probability)))
    return float(np.mean(errors))


def shift_to_rate(probability: np.ndarray, rate: float) -> np.ndarray:
    """Return ``probability`` with every log-odds moved by one constant so that the mean equals ``rate``.

    A diagnostic: the calibration error of the shifted probabilities is what is left once the base rate is
    known, that is the error of the probabilities' shape rather than of their level.
    """
    probability = np.clip(np.asarray(probability, dtype="float64"), 1e-9, 1 - 1e-9)
    if len(probability) == 0:
        return probability
    logit = np.log(probability / (1 - probability))
    low, high = -30.0, 30.0
    for _ in range(100):  # the mean is increasing in the shift: bisect
        middle = (low + high) / 2
        if np.mean(1 / (1 + np.exp(-(logit + middle)))) < rate:
            low = middle
        else:
            high = middle
    return 1 / (1 + np.exp(-(logit + (low + high) / 2)))


def _logit(rate: float) -> float:
    rate = min(max(rate, 1e-6), 1 - 1e-6)
    return float(np.log(rate / (1 - rate)))


def window_rates(counts: list[dict]) -> list[float]:
    """Return the goal rate of each window of a model's label counts (``rows`` and ``positives``), in their order."""
    return [c["positives"] / c["rows"] for c in counts if c.get("rows")]


def expected_reach(probability: np.ndarray | Iterable[np.ndarray], window_rates: list[float]) -> dict:
    """Return how many of the scored profiles are expected to reach the goal, with a range from past windows.

    The expected count is the sum of the calibrated probabilities.  The probabilities are calibrated on the latest
    fully observed window; the next window's base rate will differ from it by about as much as the base rate moved
    between consecutive past windows (``window_rates``: the goal rates of the run's snapshots, latest first).  The
    range moves every probability's log-odds by the largest such move, down and up: what the count would be if
    the base rate moved once more as much as it did before.

    Parameters
    ----------
    probability : numpy.ndarray or iterable of numpy.ndarray
        The scored profiles' calibrated probabilities, whole or in parts (a partition at a time: the sums add up
        part by part, so that the last digits may differ from a sum of everything at once).
    window_rates : list of float
        The goal rate of each past window, latest first (two or more give a range).

    Returns
    -------
    dict
        ``profiles``, ``expected`` (the sum of the probabilities), ``low`` and ``high`` (None with fewer than two
        windows) and ``largest_move`` (the largest change of the base rate's log-odds between consecutive windows).

    Examples
    --------
    >>> expected_reach(np.array([0.5, 0.5]), [0.5])["expected"]
    1.0
    """
    parts = [probability] if isinstance(probability, np.ndarray) else probability
    logits = [_logit(rate) for rate in window_rates if np.isfinite(rate)]
    move = float(max(abs(a - b) for a, b in zip(logits, logits[1:], strict=False))) if len(logits) >= 2 else None
    profiles, expected, low, high = 0, 0.0, 0.0, 0.0
    for part in parts:
        values = np.asarray(part, dtype="float64")
        profiles += len(values)
        expected += float(values.sum())
        if move is not None:
            clipped = np.clip(values, 1e-9, 1 - 1e-9)
            logit = np.log(clipped / (1 - clipped))
            low += float(np.sum(1 / (1 + np.exp(-(logit - move)))))
            high += float(np.sum(1 / (1 + np.exp(-(logit + move)))))
    result = {"profiles": profiles, "expected": expected, "low": None, "high": None}
    if move is None or not profiles:
        return {**result, "largest_move": None}
    return {**result, "low": low, "high": high, "largest_move": move}


def ranking_auc(score: np.ndarray, label: np.ndarray) -> float:
    """Return ROC AUC of any score (raw margins included), NaN when only one outcome is present."""
    label = np.asarray(label, dtype="int64")
    if not 0 < label.sum() < len(label):
        return float("nan")
    return float(roc_auc_score(label, np.asarray(score, dtype="float64")))


def classification_metrics(probability: np.ndarray, label: np.ndarray) -> dict[str, float]:
    """Return ROC AUC, PR AUC, log loss, Brier score, calibration error and top-decile lift.

    Parameters
    ----------
    probability : numpy.ndarray
        Predicted probabilities of the goal.
    label : numpy.ndarray
        0/1 outcomes.

    Returns
    -------
    dict
        ``n``, ``positive_rate``, ``roc_auc``, ``pr_auc``, ``log_loss``, ``brier``, ``calibration_error``,
        ``top_decile_lift``, ``mean_probability``.
    """
    probability = np.asarray(probability, dtype="float64")
    label = np.asarray(label, dtype="int64")
    clipped = np.clip(probability, 1e-12, 1 - 1e-12)
    both_classes = 0 < label.sum() < len(label)
    return {
        "n": int(len(label)),
        "positive_rate": float(label.mean()),
        "mean_probability": float(probability.mean()),
        "roc_auc": float(roc_auc_score(label, probability)) if both_classes else float("nan"),
        "pr_auc": float(average_precision_score(label, probability)) if both_classes else float("nan"),
        "log_loss": float(-np.mean(label * np.log(clipped) + (1 - label) * np.log(1 - clipped))),
        "brier": float(np.mean((probability - label) ** 2)),
        "calibration_error": calibration_error(probability, label),
        "top_decile_lift": top_fraction_lift(probability, label, 0.1),
    }


def gains_table(score: np.ndarray, label: np.ndarray, groups: int = 10) -> pd.DataFrame:
    """Return lift and cumulative gains by decile (group 1 holds the highest scores).

    Columns: ``decile``, ``share`` (fraction of profiles up to this decile), ``positive_rate`` (in the decile),
    ``lift`` (decile rate / overall rate), ``cumulative_gain`` (share of all positives captured so far).
    """
    score = np.asarray(score, dtype="float64")
    label = np.asarray(label, dtype="float64")
    n, total = len(label), label.sum()
    cuts = [_positives_in_top(score, label, n * g / groups) for g in range(groups + 1)]
    rows = []
    for g in range(1, groups + 1):
        inside = cuts[g] - cuts[g - 1]
        size = n / groups
        rate = inside / size
        rows.append(
            {
                "decile": g,
                "share": g / groups,
                "positive_rate": rate,
                "lift": rate / (total / n) if total else float("nan"),
                "cumulative_gain": cuts[g] / total if total else float("nan"),
            }
        )
    return pd.DataFrame(rows)


def _placements(score: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return DeLong's placement values of the positives and of the negatives for one scorer.

    A positive's value is the share of negatives it outscores (ties count one half), a negative's the share of
    positives that outscore it; both from midranks, in O(n log n).
    """
    positive = label == 1
    positives, negatives = int(positive.sum()), int((~positive).sum())
    overall = rankdata(score)
    among_positives, among_negatives = rankdata(score[positive]), rankdata(score[~positive])
    return (
        (overall[positive] - among_positives) / negatives,
        1.0 - (overall[~positive] - among_negatives) / positives,
    )


def paired_auc_difference(label: np.ndarray, score_a: np.ndarray, score_b: np.ndarray) -> dict[str, float]:
    """Return ROC AUC of ``a`` minus that of ``b`` on the same profiles, with DeLong's paired 95% interval.

    DeLong, DeLong and Clarke-Pearson (1988): the variance of the difference of two correlated ROC AUCs from
    the placement values of each profile under both scorers (the usual test for comparing two models on the
    same profiles); the interval is the difference plus or minus 1.96 standard errors.  Deterministic and
    O(n log n), so it costs the same at a million profiles as a bootstrap does at a few thousand.

    Parameters
    ----------
    label : numpy.ndarray
        0/1 outcomes.
    score_a, score_b : numpy.ndarray
        Two scorers' scores for the same profiles.

    Returns
    -------
    dict
        ``difference``, ``low``, ``high``; the bounds are NaN without both outcomes among the profiles.
    """
    label = np.asarray(label, dtype="int64")
    score_a = np.asarray(score_a, dtype="float64")
    score_b = np.asarray(score_b, dtype="float64")
    positives = int(label.sum())
    if positives in (0, len(label)):
        return {"difference": float("nan"), "low": float("nan"), "high": float("nan")}
    (positive_a, negative_a), (positive_b, negative_b) = _placements(score_a, label), _placements(score_b, label)
    difference = float(roc_auc_score(label, score_a) - roc_auc_score(label, score_b))
    variance = 0.0
    for placed_a, placed_b in ((positive_a, positive_b), (negative_a, negative_b)):
        if len(placed_a) > 1:
            covariance = np.cov(placed_a, placed_b)
            variance += (covariance[0, 0] + covariance[1, 1] - 2 * covariance[0, 1]) / len(placed_a)
    margin = _Z_95 * float(np.sqrt(max(variance, 0.0)))
    return {"difference": difference, "low": difference - margin, "high": difference + margin}


def quality_verdict(metrics: dict[str, float], min_auc: float) -> tuple[str, str]:
    """Return ``("ok" | "poor", reason)`` from validation metrics and the AUC threshold.

    The gate judges the model's own ranking, ``model_roc_auc`` (ROC AUC of the raw margin), when the metrics
    have it: a calibration cannot turn a model that ranks backwards into a good one.
    """
    auc = metrics.get("model_roc_auc", metrics.get("roc_auc", float("nan")))
    if auc is None or not np.isfinite(auc):
        return "poor", "validation ROC AUC is undefined (only one outcome among the held-out profiles)"
    if auc < min_auc:
        return "poor", f"validation ROC AUC {auc:.3f} is below the quality gate of {min_auc:g}"
    return "ok", f"validation ROC AUC {auc:.3f} meets the quality gate of {min_auc:g}"
