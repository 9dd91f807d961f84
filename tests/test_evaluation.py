"""Ranking, calibration, lift and gains on tiny arrays with values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from customer_ai.evaluation import (
    calibration_error,
    calibration_error_floor,
    classification_metrics,
    expected_reach,
    gains_table,
    paired_auc_difference,
    quality_verdict,
    ranking_auc,
    shift_to_rate,
    top_fraction_lift,
    window_rates,
)


@pytest.mark.parametrize(
    ("score", "label", "fraction", "expected"),
    [
        # the top 1 cuts a tie of two profiles holding one positive: 0.5 expected positives / 1 / base 0.25
        ([1, 1, 0, 0], [1, 0, 0, 0], 0.25, 2.0),
        ([1, 1, 0, 0], [1, 0, 0, 0], 0.5, 2.0),
        # a tie-break in favour of the positive would have given 4.0
        ([0, 1, 1, 0], [0, 0, 1, 0], 0.25, 2.0),
        ([4, 3, 2, 1], [1, 0, 1, 0], 0.25, 2.0),
        ([4, 3, 2, 1], [1, 0, 1, 0], 0.5, 1.0),
        ([4, 3, 2, 1], [0, 1, 0, 1], 0.5, 1.0),
        ([4, 3, 2, 1], [0, 0, 0, 1], 0.75, 0.0),
        # k = 0.4 of the top profile (a positive), base 0.5
        ([3, 2, 1, 0], [1, 1, 0, 0], 0.1, 2.0),
        # all tied: the top fraction has the base rate
        ([5, 5, 5, 5, 5], [1, 0, 0, 1, 0], 0.2, 1.0),
        ([1, 2, 3, 4], [1, 1, 1, 1], 0.25, 1.0),
    ],
)
def test_top_fraction_lift(score, label, fraction, expected):
    assert top_fraction_lift(np.array(score), np.array(label), fraction) == pytest.approx(expected)


def test_top_fraction_lift_undefined_without_positives():
    assert math.isnan(top_fraction_lift(np.array([0.3, 0.2]), np.array([0, 0]), 0.5))


@pytest.mark.filterwarnings("ignore:Mean of empty slice:RuntimeWarning")
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_top_fraction_lift_undefined_when_empty():
    assert math.isnan(top_fraction_lift(np.array([]), np.array([]), 0.5))


def test_calibration_error_by_hand():
    # bin 0: |0.05 - 0| * 1; bin 1: |0.15 - 0.5| * 2; bin 9: |0.95 - 1| * 1  -> (0.05 + 0.7 + 0.05) / 4
    probability = np.array([0.05, 0.15, 0.15, 0.95])
    assert calibration_error(probability, np.array([0, 1, 0, 1])) == pytest.approx(0.2)


def test_calibration_error_puts_one_in_the_last_bin():
    # 1.0 joins 0.9 in bin 9: mean 0.95 vs rate 0.5, over both profiles
    assert calibration_error(np.array([0.9, 1.0]), np.array([1, 0])) == pytest.approx(0.45)


def test_calibration_error_with_coarse_bins():
    # bins=2: [0.1, 0.3] vs rate 0.5 -> 0.3 * 2; [0.6, 0.8] vs rate 0.5 -> 0.2 * 2  -> 1.0 / 4
    probability = np.array([0.1, 0.3, 0.6, 0.8])
    assert calibration_error(probability, np.array([0, 1, 1, 0]), bins=2) == pytest.approx(0.25)


def test_calibration_error_zero_when_bins_match_rates():
    assert calibration_error(np.array([0.25] * 4), np.array([1, 0, 0, 0])) == pytest.approx(0.0)


def test_classification_metrics_exact():
    probability = np.array([0.8, 0.6, 0.4, 0.2])
    label = np.array([1, 0, 1, 0])
    metrics = classification_metrics(probability, label)
    assert set(metrics) == {
        "n",
        "positive_rate",
        "mean_probability",
        "roc_auc",
        "pr_auc",
        "log_loss",
        "brier",
        "calibration_error",
        "top_decile_lift",
    }
    assert metrics["n"] == 4
    assert metrics["positive_rate"] == pytest.approx(0.5)
    assert metrics["mean_probability"] == pytest.approx(0.5)
    assert metrics["roc_auc"] == pytest.approx(0.75)  # 3 of 4 positive/negative pairs ordered correctly
    assert metrics["pr_auc"] == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    assert metrics["log_loss"] == pytest.approx(-(math.log(0.8) + math.log(0.4)) / 2)
    assert metrics["brier"] == pytest.approx((0.04 + 0.36 + 0.36 + 0.04) / 4)
    assert metrics["calibration_error"] == pytest.approx((0.2 + 0.6 + 0.6 + 0.2) / 4)
    assert metrics["top_decile_lift"] == pytest.approx(2.0)
    assert all(isinstance(value, float) for key, value in metrics.items() if key != "n")


def test_classification_metrics_log_loss_is_finite_for_certain_mistakes():
    metrics = classification_metrics(np.array([0.0, 1.0]), np.array([1, 0]))
    assert metrics["log_loss"] == pytest.approx(-math.log(1e-12))
    assert metrics["brier"] == pytest.approx(1.0)
    assert metrics["roc_auc"] == pytest.approx(0.0)


@pytest.mark.parametrize("label", [[0, 0, 0], [1, 1, 1]])
def test_classification_metrics_single_class_has_undefined_auc(label):
    metrics = classification_metrics(np.array([0.2, 0.5, 0.9]), np.array(label))
    assert math.isnan(metrics["roc_auc"])
    assert math.isnan(metrics["pr_auc"])
    assert math.isfinite(metrics["brier"])
    assert metrics["positive_rate"] == pytest.approx(float(label[0]))


def test_gains_table_exact():
    score = np.arange(10, 0, -1, dtype=float)
    label = np.array([1, 1, 0, 1, 0, 0, 0, 0, 0, 0])
    table = gains_table(score, label, groups=5)
    assert list(table.columns) == ["decile", "share", "positive_rate", "lift", "cumulative_gain"]
    assert table["decile"].tolist() == [1, 2, 3, 4, 5]
    assert table["share"].tolist() == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    assert table["positive_rate"].tolist() == pytest.approx([1.0, 0.5, 0.0, 0.0, 0.0])
    assert table["lift"].tolist() == pytest.approx([1 / 0.3, 0.5 / 0.3, 0.0, 0.0, 0.0])
    assert table["cumulative_gain"].tolist() == pytest.approx([2 / 3, 1.0, 1.0, 1.0, 1.0])


def test_gains_table_cumulative_gain_ends_at_one_and_lifts_average_to_one():
    rng = np.random.default_rng(3)
    score = rng.integers(0, 7, size=137).astype(float)  # many ties, n not a multiple of 10
    label = (rng.random(137) < 0.3).astype(int)
    table = gains_table(score, label)
    assert len(table) == 10
    assert table["cumulative_gain"].iloc[-1] == pytest.approx(1.0)
    assert table["cumulative_gain"].is_monotonic_increasing
    assert table["lift"].mean() == pytest.approx(1.0)


def test_gains_table_all_tied_scores_give_flat_lift():
    table = gains_table(np.zeros(20), np.array([1, 0, 0, 0] * 5))
    assert table["lift"].tolist() == pytest.approx([1.0] * 10)
    assert table["cumulative_gain"].tolist() == pytest.approx([g / 10 for g in range(1, 11)])


def test_gains_table_without_positives_is_nan():
    table = gains_table(np.array([0.3, 0.2, 0.1]), np.array([0, 0, 0]), groups=3)
    assert table["lift"].isna().all()
    assert table["cumulative_gain"].isna().all()
    assert table["positive_rate"].tolist() == pytest.approx([0.0, 0.0, 0.0])


@pytest.mark.parametrize(
    ("metrics", "expected"),
    [
        ({"roc_auc": 0.8}, ("ok", "validation ROC AUC 0.800 meets the quality gate of 0.7")),
        ({"roc_auc": 0.7}, ("ok", "validation ROC AUC 0.700 meets the quality gate of 0.7")),
        ({"roc_auc": 0.6543}, ("poor", "validation ROC AUC 0.654 is below the quality gate of 0.7")),
        (
            {"roc_auc": float("nan")},
            ("poor", "validation ROC AUC is undefined (only one outcome among the held-out profiles)"),
        ),
        ({}, ("poor", "validation ROC AUC is undefined (only one outcome among the held-out profiles)")),
        # the gate judges the model's own ranking: a calibration cannot make a backwards model good
        ({"roc_auc": 0.8, "model_roc_auc": 0.2}, ("poor", "validation ROC AUC 0.200 is below the quality gate of 0.7")),
        ({"roc_auc": 0.5, "model_roc_auc": 0.75}, ("ok", "validation ROC AUC 0.750 meets the quality gate of 0.7")),
    ],
)
def test_quality_verdict(metrics, expected):
    assert quality_verdict(metrics, min_auc=0.7) == expected


def test_ranking_auc_of_raw_scores_and_single_outcome():
    assert ranking_auc(np.array([-2.0, 1.0, 3.0, 0.5]), np.array([0, 1, 1, 0])) == pytest.approx(1.0)
    assert ranking_auc(np.array([3.0, 1.0, -2.0, 2.0]), np.array([0, 1, 1, 0])) == pytest.approx(0.0)
    assert math.isnan(ranking_auc(np.array([0.1, 0.2]), np.array([1, 1])))


def test_calibration_error_floor_is_the_noise_of_a_perfect_model():
    probability = np.full(400, 0.3)
    # one bin: the expected |observed rate - 0.3| over 400 Bernoulli(0.3) draws is about sqrt(0.21/400)*0.8
    assert calibration_error_floor(probability) == pytest.approx(0.8 * math.sqrt(0.21 / 400), rel=0.15)
    assert calibration_error_floor(np.full(40_000, 0.3)) < calibration_error_floor(probability) / 5
    assert calibration_error_floor(probability) == calibration_error_floor(probability)  # seeded
    assert math.isnan(calibration_error_floor(np.array([])))


def test_shift_to_rate_moves_every_log_odds_by_one_constant():
    probability = np.array([0.1, 0.2, 0.5, 0.9])
    shifted = shift_to_rate(probability, 0.6)
    assert shifted.mean() == pytest.approx(0.6, abs=1e-9)
    logit = np.log(probability / (1 - probability))
    moved = np.log(shifted / (1 - shifted)) - logit
    assert np.ptp(moved) == pytest.approx(0.0, abs=1e-6)  # the same shift for all: the ranking is kept
    assert shift_to_rate(probability, probability.mean()) == pytest.approx(probability, abs=1e-9)


def _delong_by_definition(label, score_a, score_b):
    """DeLong's interval from its definition: every positive against every negative, O(n^2)."""
    label = np.asarray(label)

    def placements(score):
        positive, negative = np.asarray(score)[label == 1], np.asarray(score)[label == 0]
        wins = (positive[:, None] > negative[None, :]) + 0.5 * (positive[:, None] == negative[None, :])
        return wins.mean(axis=1), wins.mean(axis=0)

    (v10_a, v01_a), (v10_b, v01_b) = placements(score_a), placements(score_b)
    s10, s01 = np.cov(v10_a, v10_b), np.cov(v01_a, v01_b)
    variance = (s10[0, 0] + s10[1, 1] - 2 * s10[0, 1]) / len(v10_a)
    variance += (s01[0, 0] + s01[1, 1] - 2 * s01[0, 1]) / len(v01_a)
    difference = v10_a.mean() - v10_b.mean()
    return (
        difference,
        difference - 1.959963984540054 * np.sqrt(variance),
        difference + 1.959963984540054 * np.sqrt(variance),
    )


def test_paired_auc_difference_is_delongs_interval():
    rng = np.random.default_rng(4)
    label = (rng.random(300) < 0.3).astype(int)
    score_a = np.round(label * 0.3 + rng.random(300), 1)  # many ties
    score_b = rng.random(300)
    difference, low, high = _delong_by_definition(label, score_a, score_b)
    result = paired_auc_difference(label, score_a, score_b)
    assert result["difference"] == pytest.approx(difference, abs=1e-12)
    assert result["low"] == pytest.approx(low, abs=1e-12)
    assert result["high"] == pytest.approx(high, abs=1e-12)
    assert result["low"] < result["difference"] < result["high"]


def test_paired_auc_difference_by_hand():
    # a: AUC 1 (both positives above both negatives); b: 0.75 (positive 0.6 loses to negative 0.7)
    # b's placements: positives 1, 0.5; negatives 1, 0.5 -> a - b variances 0.125 / 2 + 0.125 / 2
    label = np.array([1, 1, 0, 0])
    result = paired_auc_difference(label, np.array([0.9, 0.8, 0.2, 0.1]), np.array([0.9, 0.6, 0.7, 0.1]))
    assert result["difference"] == pytest.approx(0.25, abs=1e-15)
    assert result["high"] - result["difference"] == pytest.approx(1.959963984540054 * math.sqrt(0.125), abs=1e-12)


def test_paired_auc_difference_without_both_outcomes_has_no_interval():
    result = paired_auc_difference(np.array([1, 1]), np.array([0.2, 0.3]), np.array([0.1, 0.4]))
    assert all(math.isnan(v) for v in result.values())


def test_calibration_error_floor_is_the_mean_error_of_its_draws():
    rng = np.random.default_rng(5)
    probability = rng.beta(2, 5, 2000)
    draws = np.random.default_rng(0)
    former = np.mean([calibration_error(probability, draws.random(2000) < probability) for _ in range(30)])
    assert calibration_error_floor(probability, draws=30) == former  # the same draws, added in the same order


def test_the_expected_count_is_the_sum_of_probabilities_and_its_range_the_largest_past_move_of_the_base_rate():
    sigmoid = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    # windows latest first: log-odds 0 (rate 0.5), then 0.5, then 0.2: moves of 0.5 and 0.3, the largest taken
    rates = [0.5, sigmoid(0.5), sigmoid(0.2)]
    reach = expected_reach(np.array([0.5, 0.5]), rates)
    assert reach["expected"] == 1.0
    assert reach["largest_move"] == pytest.approx(0.5)
    assert reach["low"] == pytest.approx(2 * sigmoid(-0.5))
    assert reach["high"] == pytest.approx(2 * sigmoid(0.5))
    assert expected_reach(np.array([0.5, 0.5]), [0.3, 0.3])["low"] == pytest.approx(1.0)  # a steady base rate
    assert window_rates([{"rows": 4, "positives": 1}, {"rows": 0, "positives": 0}, {"rows": 5, "positives": 5}]) == [
        0.25,
        1.0,
    ]  # an empty window has no rate
    one = expected_reach(np.array([0.2, 0.3]), [0.4])  # one window (one period): nothing to draw a range from
    assert (one["expected"], one["low"], one["high"], one["largest_move"]) == (pytest.approx(0.5), None, None, None)


def test_the_expected_count_of_probabilities_read_in_parts_adds_up_part_by_part():
    rates = [0.5, 0.6, 0.45]
    whole = expected_reach(np.array([0.1, 0.2, 0.7, 0.4]), rates)
    parts = expected_reach(iter([np.array([0.1, 0.2]), np.array([]), np.array([0.7, 0.4])]), rates)
    assert parts["profiles"] == 4
    assert parts["largest_move"] == whole["largest_move"]
    for key in ("expected", "low", "high"):
        assert parts[key] == pytest.approx(whole[key], rel=1e-15)
    assert expected_reach(iter([]), rates) == {
        "profiles": 0,
        "expected": 0.0,
        "low": None,
        "high": None,
        "largest_move": None,
    }
