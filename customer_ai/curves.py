"""Curves of one scorer on held-out profiles: ROC points, reliability bins and gains, JSON-ready.

Pure functions of ``(probability, label)``: what a report draws and tabulates for the model and each baseline.
Tied scores are one point of the ROC curve (a threshold cannot separate them), so the area under the points is
exactly the ROC AUC with ties counted one half; deciles share tie groups pro rata (see
:func:`customer_ai.evaluation.gains_table`); reliability bins are the equal-width bins of
:func:`customer_ai.evaluation.calibration_error`.
"""

from __future__ import annotations

import numpy as np

from customer_ai.evaluation import gains_table

__all__ = ["MAX_ROC_POINTS", "RELIABILITY_BINS", "reliability_bins", "roc_points", "scorer_curves", "thin_curve"]

MAX_ROC_POINTS = 200
RELIABILITY_BINS = 10


def _checked(score: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    score = np.asarray(score, dtype="float64")
    label = np.asarray(label, dtype="int64")
    if score.shape != label.shape or score.ndim != 1:
        raise ValueError(
            f"scores and labels must be two vectors of one length; got shapes {score.shape} and {label.shape}"
        )
    if not np.isin(label, (0, 1)).all():
        raise ValueError("labels must be 0 or 1")
    if np.isnan(score).any():
        raise ValueError(f"{int(np.isnan(score).sum())} scores are missing (NaN)")
    return score, label


def thin_curve(x: np.ndarray, y: np.ndarray, max_points: int = MAX_ROC_POINTS) -> np.ndarray:
    """Return the indices of at most ``max_points`` points of a polyline, evenly spaced along its length.

    The first and the last point are always kept; a curve that already has few enough points is kept whole.
    Spacing by length (not by index) keeps detail where the curve moves, as a ROC curve's steep start does.
    """
    x = np.asarray(x, dtype="float64")
    y = np.asarray(y, dtype="float64")
    if max_points < 2:
        raise ValueError(f"max_points must be at least 2, got {max_points}")
    if len(x) <= max_points:
        return np.arange(len(x))
    along = np.concatenate([[0.0], np.cumsum(np.hypot(np.diff(x), np.diff(y)))])
    targets = np.linspace(0.0, along[-1], max_points)
    chosen = np.unique(np.clip(np.searchsorted(along, targets), 0, len(x) - 1))
    chosen[0], chosen[-1] = 0, len(x) - 1
    return np.unique(chosen)


def roc_points(score: np.ndarray, label: np.ndarray, max_points: int = MAX_ROC_POINTS) -> dict:
    """Return the ROC curve of ``score`` against 0/1 ``label``: one point per distinct score, thinned.

    Parameters
    ----------
    score : numpy.ndarray
        Any score (higher means more likely); probabilities or raw signals.
    label : numpy.ndarray
        0/1 outcomes; both must occur.
    max_points : int, default 200
        At most this many points are returned (see :func:`thin_curve`); ``(0, 0)`` and ``(1, 1)`` always are.

    Returns
    -------
    dict
        ``false_positive_rate`` and ``true_positive_rate`` (lists, from ``(0, 0)`` to ``(1, 1)``), ``auc`` (the
        trapezoid area under every point before thinning, equal to ROC AUC with ties counted one half) and
        ``points`` (how many points the whole curve had).

    Raises
    ------
    ValueError
        When one outcome is missing (a ROC curve needs positives and negatives).
    """
    score, label = _checked(score, label)
    positives = int(label.sum())
    negatives = len(label) - positives
    if positives == 0 or negatives == 0:
        raise ValueError(f"a ROC curve needs both outcomes; got {positives} positives and {negatives} negatives")
    order = np.argsort(-score, kind="stable")
    sorted_score, sorted_label = score[order], label[order]
    group_ends = np.concatenate([np.flatnonzero(np.diff(sorted_score)), [len(score) - 1]])
    true_positives = np.cumsum(sorted_label)[group_ends]
    false_positives = group_ends + 1 - true_positives
    fpr = np.concatenate([[0.0], false_positives / negatives])
    tpr = np.concatenate([[0.0], true_positives / positives])
    auc = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
    kept = thin_curve(fpr, tpr, max_points)
    return {
        "false_positive_rate": [float(v) for v in fpr[kept]],
        "true_positive_rate": [float(v) for v in tpr[kept]],
        "auc": auc,
        "points": len(fpr),
    }


def reliability_bins(probability: np.ndarray, label: np.ndarray, bins: int = RELIABILITY_BINS) -> list[dict]:
    """Return the reliability (calibration) table: per equal-width probability bin, what was predicted and seen.

    Returns
    -------
    list of dict
        One per bin, lowest first: ``low``, ``high`` (the bin's edges), ``count``, ``mean_predicted`` and
        ``observed_rate`` (None for an empty bin).  A probability of exactly 1 falls in the last bin.
    """
    probability, label = _checked(probability, label)
    if ((probability < 0) | (probability > 1)).any():
        raise ValueError("probabilities must lie in [0, 1]")
    which = np.minimum((probability * bins).astype(int), bins - 1)
    out = []
    for b in range(bins):
        inside = which == b
        count = int(inside.sum())
        out.append(
            {
                "low": b / bins,
                "high": (b + 1) / bins,
                "count": count,
                "mean_predicted": float(probability[inside].mean()) if count else None,
                "observed_rate": float(label[inside].mean()) if count else None,
            }
        )
    return out


def scorer_curves(probability: np.ndarray, label: np.ndarray, max_points: int = MAX_ROC_POINTS) -> dict:
    """Return ``roc`` (:func:`roc_points`), ``gains`` (deciles of :func:`gains_table`) and ``reliability``."""
    probability, label = _checked(probability, label)
    gains = gains_table(probability, label)
    return {
        "roc": roc_points(probability, label, max_points),
        "gains": [
            {k: (int(v) if k == "decile" else float(v)) for k, v in row.items()} for row in gains.to_dict("records")
        ],
        "reliability": reliability_bins(probability, label),
    }
