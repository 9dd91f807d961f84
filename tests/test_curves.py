"""Held-out curves: ROC points (ties, thinning), reliability bins and the per-scorer bundle, on tiny exact inputs."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from customer_ai.curves import reliability_bins, roc_points, scorer_curves, thin_curve
from customer_ai.evaluation import gains_table


def test_roc_points_make_one_point_per_distinct_score_with_ties_counted_half() -> None:
    # sorted: 0.9 (positive), a tie at 0.8 (a negative and a positive), 0.3 (negative)
    curve = roc_points(np.array([0.9, 0.8, 0.8, 0.3]), np.array([1, 0, 1, 0]))
    assert curve["false_positive_rate"] == [0.0, 0.0, 0.5, 1.0]
    assert curve["true_positive_rate"] == [0.0, 0.5, 1.0, 1.0]
    assert curve["points"] == 4
    assert curve["auc"] == 0.875  # 3.5 of the 4 (positive, negative) pairs ranked right, the tie counting half
    assert curve["auc"] == roc_auc_score([1, 0, 1, 0], [0.9, 0.8, 0.8, 0.3])


def test_roc_points_are_thinned_to_the_limit_with_exact_endpoints_and_the_whole_curve_area() -> None:
    rng = np.random.default_rng(3)
    label = rng.integers(0, 2, 1000)
    score = label * 0.5 + rng.random(1000)
    curve = roc_points(score, label, max_points=50)
    assert curve["points"] == 1001
    assert len(curve["false_positive_rate"]) <= 50
    assert (curve["false_positive_rate"][0], curve["true_positive_rate"][0]) == (0.0, 0.0)
    assert (curve["false_positive_rate"][-1], curve["true_positive_rate"][-1]) == (1.0, 1.0)
    assert np.all(np.diff(curve["false_positive_rate"]) >= 0)
    assert np.all(np.diff(curve["true_positive_rate"]) >= 0)
    assert curve["auc"] == pytest.approx(roc_auc_score(label, score), abs=1e-12)


def test_roc_points_need_both_outcomes() -> None:
    with pytest.raises(ValueError, match="a ROC curve needs both outcomes; got 0 positives and 3 negatives"):
        roc_points(np.array([0.1, 0.2, 0.3]), np.array([0, 0, 0]))


def test_thin_curve_spaces_points_along_the_length_and_keeps_both_ends() -> None:
    x = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    assert thin_curve(x, np.zeros(5), max_points=3).tolist() == [0, 2, 4]
    assert thin_curve(x, np.zeros(5), max_points=5).tolist() == [0, 1, 2, 3, 4]
    # four short steps then one long one: the middle target falls on the long segment's end
    assert thin_curve(np.array([0, 0, 0, 0, 1.0]), np.array([0, 0.1, 0.2, 0.3, 0.3]), max_points=3).tolist() == [0, 4]
    with pytest.raises(ValueError, match="max_points must be at least 2, got 1"):
        thin_curve(x, x, max_points=1)


def test_reliability_bins_are_equal_width_with_one_in_the_last_bin() -> None:
    bins = reliability_bins(np.array([0.05, 0.15, 0.12, 1.0, 0.95]), np.array([0, 1, 0, 1, 0]))
    assert len(bins) == 10
    assert bins[0] == {"low": 0.0, "high": 0.1, "count": 1, "mean_predicted": 0.05, "observed_rate": 0.0}
    assert bins[1]["count"] == 2
    assert bins[1]["mean_predicted"] == pytest.approx(0.135)
    assert bins[1]["observed_rate"] == 0.5
    assert bins[9] == {"low": 0.9, "high": 1.0, "count": 2, "mean_predicted": 0.975, "observed_rate": 0.5}
    assert [b["count"] for b in bins[2:9]] == [0] * 7
    assert bins[5]["mean_predicted"] is None
    assert bins[5]["observed_rate"] is None


def test_curves_refuse_bad_inputs() -> None:
    with pytest.raises(ValueError, match="two vectors of one length"):
        roc_points(np.array([0.1, 0.2]), np.array([0, 1, 1]))
    with pytest.raises(ValueError, match="labels must be 0 or 1"):
        reliability_bins(np.array([0.1, 0.2]), np.array([0, 2]))
    with pytest.raises(ValueError, match="1 scores are missing"):
        roc_points(np.array([0.1, np.nan]), np.array([0, 1]))
    with pytest.raises(ValueError, match=r"probabilities must lie in \[0, 1\]"):
        reliability_bins(np.array([0.1, 1.2]), np.array([0, 1]))


def test_scorer_curves_bundle_roc_deciles_and_bins() -> None:
    probability = np.arange(1, 21) / 21
    label = np.array([0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 1, 0, 1, 0, 1, 1, 0, 1, 1])
    curves = scorer_curves(probability, label)
    assert set(curves) == {"roc", "gains", "reliability"}
    assert [g["decile"] for g in curves["gains"]] == list(range(1, 11))
    assert curves["gains"] == gains_table(probability, label).to_dict("records")
    assert curves["gains"][0] == {"decile": 1, "share": 0.1, "positive_rate": 1.0, "lift": 2.5, "cumulative_gain": 0.25}
    assert sum(b["count"] for b in curves["reliability"]) == 20
    assert curves["roc"]["auc"] == pytest.approx(roc_auc_score(label, probability), abs=1e-12)
