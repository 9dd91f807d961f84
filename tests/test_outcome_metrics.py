"""Gini, ranks, decile error, totals, concordance and the median check on tiny arrays worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from customer_ai.outcome_metrics import (
    MarginGate,
    best_of,
    bought_by_median,
    concordance,
    decile_error,
    decile_table,
    normalised_gini,
    paired_margin,
    spearman,
    total_ratio,
)

INF = math.inf


def test_normalised_gini_by_hand():
    # ordered by prediction: 4, 8, 0, 4 of 16; curve 4/16, 12/16, 12/16, 1 -> area (2.75 - 0.5) / 4, Gini 0.125
    # perfect: 8, 4, 4, 0; curve 8/16, 12/16, 1, 1 -> area (3.25 - 0.5) / 4, Gini 0.375
    assert normalised_gini([4, 3, 2, 1], [4, 8, 0, 4]) == pytest.approx(0.125 / 0.375)


def test_normalised_gini_perfect_reversed_and_constant():
    realised = [0.0, 7.0, 1.0, 3.0, 3.0]
    assert normalised_gini([0, 9, 1, 5, 4], realised) == 1.0
    assert normalised_gini([9, 0, 8, 2, 3], realised) == pytest.approx(-1.0)
    # a constant prediction is one tie group: the diagonal, whatever order the data came in
    assert normalised_gini([2, 2, 2, 2, 2], [7.0, 3.0, 3.0, 1.0, 0.0]) == pytest.approx(0.0, abs=1e-12)


def test_normalised_gini_ties_count_as_the_average_tie_break():
    # the tie of 2s holds 0 and 4: both places count 2, so 10, 2, 2, 2 -> Gini 0.375 against the perfect 0.5
    assert normalised_gini([3, 2, 2, 1], [10, 0, 4, 2]) == pytest.approx(0.75)
    # the two tie-breaks, 10, 4, 0, 2 and 10, 0, 4, 2, give 0.875 and 0.625: the tie scores their mean
    assert normalised_gini([3, 2.1, 2, 1], [10, 4, 0, 2]) == pytest.approx(0.875)
    assert normalised_gini([3, 2, 2.1, 1], [10, 4, 0, 2]) == pytest.approx(0.625)
    # infinite predictions tie too: 7, 7, 0, 2 (weights 3, 1, -1, -3 give 22) against 10, 4, 2, 0 (32)
    assert normalised_gini([3, INF, INF, 1], [0, 10, 4, 2]) == pytest.approx(22 / 32)


@pytest.mark.parametrize("realised", [[0, 0, 0], [2.5, 2.5, 2.5], [1, -1, 0], [4.0]])
def test_normalised_gini_undefined_without_anything_to_order(realised):
    assert math.isnan(normalised_gini(np.arange(len(realised)), realised))


def test_spearman_by_hand_with_ties():
    # ranks 1, 2.5, 2.5, 4 and 1, 3, 2, 4: covariance 4.5, variances 4.5 and 5 (sums about the mean 2.5)
    assert spearman([1, 2, 2, 3], [1, 3, 2, 4]) == pytest.approx(math.sqrt(0.9))
    assert spearman([1, 2, 3, 4], [1, 10, 100, 1000]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [5, 3, 2, 0]) == pytest.approx(-1.0)


@pytest.mark.parametrize(("predicted", "realised"), [([1, 1, 1], [1, 2, 3]), ([1, 2, 3], [4, 4, 4]), ([1], [2])])
def test_spearman_undefined_for_a_constant_side(predicted, realised):
    assert math.isnan(spearman(predicted, realised))


def test_decile_table_and_error_by_hand():
    # ordered: 3 (10), the tie 2, 2 (0 and 4: 2 each), 1 (2) -> groups [10, 2] and [2, 2]
    table = decile_table([3, 2, 2, 1], [10, 0, 4, 2], groups=2)
    assert list(table.columns) == ["group", "profiles", "mean_predicted", "mean_realised"]
    assert table["group"].tolist() == [1, 2]
    assert table["profiles"].tolist() == [2, 2]
    assert table["mean_predicted"].tolist() == pytest.approx([2.5, 1.5])
    assert table["mean_realised"].tolist() == pytest.approx([6.0, 2.0])
    # (|2.5 - 6| + |1.5 - 2|) / 2 over the mean realised 4; breaking the tie for the 4 would give 0.625
    assert decile_error([3, 2, 2, 1], [10, 0, 4, 2], groups=2) == pytest.approx(0.5)


def test_decile_table_cuts_at_whole_places():
    # 12 profiles in 10 groups: cuts at floor(1.2 g) = 0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 12
    table = decile_table(np.arange(12, 0, -1), np.arange(12, 0, -1))
    assert table["profiles"].tolist() == [1, 1, 1, 1, 2, 1, 1, 1, 1, 2]
    assert table["mean_realised"].tolist() == pytest.approx([12, 11, 10, 9, 7.5, 6, 5, 4, 3, 1.5])
    assert decile_error(np.arange(12, 0, -1), np.arange(12, 0, -1)) == pytest.approx(0.0)


def test_decile_error_is_relative_to_the_mean_realised():
    # every group predicts twice what happened: each misses by its own mean, on average the overall mean
    assert decile_error([2, 4, 6, 8], [1, 2, 3, 4], groups=4) == pytest.approx(1.0)
    assert decile_error([6, 4, 2, 8], [3, 2, 1, 4], groups=2) == pytest.approx(1.0)


def test_decile_error_undefined_for_empty_groups_or_no_realised_amount():
    table = decile_table([3, 2, 1], [1, 1, 1], groups=5)
    assert table["profiles"].tolist() == [0, 1, 0, 1, 1]
    assert math.isnan(table["mean_realised"].iloc[0])
    assert math.isnan(decile_error([3, 2, 1], [1, 1, 1], groups=5))
    assert math.isnan(decile_error([3, 2, 1], [0, 0, 0], groups=3))


def test_total_ratio():
    assert total_ratio([1, 2, 3], [2, 2, 2]) == pytest.approx(1.0)
    assert total_ratio([2, 2], [1, 0]) == pytest.approx(4.0)
    assert math.isnan(total_ratio([2, 2], [0, 0]))


@pytest.mark.parametrize(
    ("predicted", "observed", "event", "expected"),
    [
        ([1, 2, 3], [1, 2, 3], [1, 1, 1], 1.0),
        ([3, 2, 1], [1, 2, 3], [1, 1, 1], 0.0),
        ([5, 5, 5], [1, 2, 3], [1, 1, 1], 0.5),
        # comparable: (0, 1), (0, 2), (0, 3), (2, 3); concordant (0, 2), (0, 3); (2, 3) tied
        ([2, 1, 3, 3], [1, 2, 3, 4], [1, 0, 1, 0], 2.5 / 4),
        # at time 2: the two events are not comparable, each is with the censoring at 2 and the event at 5;
        # concordant (0, 2), (0, 3), (1, 3), discordant (1, 2)
        ([1, 3, 2, 4], [2, 2, 2, 5], [1, 1, 0, 1], 3 / 4),
        # "beyond the horizon" is later than any day, and ties with itself: (2, 0), (2, 1) concordant, (0, 1) tied
        ([INF, INF, 5], [3, 4, 1], [1, 1, 1], 2.5 / 3),
        # a censored profile is never the earlier of a pair: only (1, 2) is comparable, and discordant
        ([1, 9, 2], [1, 2, 3], [0, 1, 0], 0.0),
    ],
)
def test_concordance_by_hand(predicted, observed, event, expected):
    assert concordance(predicted, observed, np.array(event, dtype=bool)) == pytest.approx(expected)


@pytest.mark.parametrize(("observed", "event"), [([1, 2, 3], [0, 0, 0]), ([4, 4, 4], [1, 1, 1]), ([2], [1])])
def test_concordance_undefined_without_a_comparable_pair(observed, event):
    assert math.isnan(concordance([1, 2, 3][: len(observed)], observed, event))


def _concordance_by_pairs(predicted, observed, event):
    """Harrell's C over all n^2 ordered pairs: the definition, written out."""
    earlier = event[:, None] & (
        (observed[:, None] < observed[None, :]) | ((observed[:, None] == observed[None, :]) & ~event[None, :])
    )
    concordant = np.sum(earlier & (predicted[:, None] < predicted[None, :]))
    tied = np.sum(earlier & (predicted[:, None] == predicted[None, :]))
    comparable = np.sum(earlier)
    return float("nan") if comparable == 0 else (concordant + tied / 2) / comparable


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("rows", [300, 257, 37])
def test_concordance_matches_the_pairwise_definition(seed, rows):
    rng = np.random.default_rng(seed)
    observed = rng.integers(0, 15, size=rows).astype(float)  # many tied times
    event = rng.random(rows) < 0.6
    observed[~event & (rng.random(rows) < 0.5)] = 14.0  # much censoring at the horizon, tied with events there
    truth = observed + rng.normal(0, 3 + seed, size=rows)  # a noisy predictor, better than chance
    predicted = np.round(truth / 2)  # many tied predictions
    predicted[rng.random(rows) < 0.1] = INF
    expected = _concordance_by_pairs(predicted, observed, event)
    assert expected > 0.55  # the data tests a real ranking, not a coin
    assert concordance(predicted, observed, event) == pytest.approx(expected, rel=1e-12)


def test_concordance_matches_the_pairwise_definition_on_every_small_size():
    rng = np.random.default_rng(11)
    for rows in range(1, 40):
        observed = rng.integers(0, 4, size=rows).astype(float)
        event = rng.random(rows) < 0.5
        predicted = rng.integers(0, 4, size=rows).astype(float)
        expected = _concordance_by_pairs(predicted, observed, event)
        result = concordance(predicted, observed, event)
        assert (math.isnan(result) and math.isnan(expected)) or result == pytest.approx(expected, rel=1e-12)


def test_bought_by_median_by_hand():
    predicted = [10, 10, 10, 5, INF, 40]
    observed = [9.5, 10, 12, 5, 3, 20]
    event = [True, True, False, True, True, True]
    # bought before 10; at exactly 10 is not "by" the median; censored at 12 did not; at exactly 5 is not;
    # the infinite median and the one past the horizon are left out
    assert bought_by_median(predicted, observed, event, horizon_days=30) == (0.25, 4)


def test_bought_by_median_boundaries_are_half_open():
    predicted, observed, event = [10, 10, 5], [9.999, 10, 4.5], [True, True, True]
    # a median at the horizon is fully observed, the window [0, 10) inside [0, 10)
    assert bought_by_median(predicted, observed, event, horizon_days=10) == (pytest.approx(2 / 3), 3)
    assert bought_by_median(predicted, observed, event, horizon_days=9.999) == (1.0, 1)


def test_bought_by_median_leaves_out_profiles_censored_before_their_median():
    # censored at 7 before a median of 10: unknown; censored at 10: did not buy within [0, 10)
    assert bought_by_median([10, 10], [7, 10], [False, False], horizon_days=30) == (0.0, 1)
    share, counted = bought_by_median([10, INF], [7, 3], [False, True], horizon_days=30)
    assert math.isnan(share)
    assert counted == 0


def test_paired_margin_draws_both_predictions_and_the_outcomes_together():
    observed = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    event = np.array([True, True, False, True, True, False])
    perfect, reversed_ = observed.copy(), observed[::-1].copy()
    margin = paired_margin(concordance, perfect, reversed_, observed, event, draws=50, seed=3)
    # on every draw the perfect order wins every comparable pair and the reversed one loses it: 1 - 0
    assert margin == {"difference": 1.0, "low": 1.0, "high": 1.0}
    same = paired_margin(normalised_gini, perfect, perfect, np.array([0.0, 0, 1, 0, 2, 5]), draws=20)
    assert same == {"difference": 0.0, "low": 0.0, "high": 0.0}


def test_paired_margin_leaves_out_the_draws_where_the_metric_is_undefined():
    # two profiles, one bought: a draw of the same profile twice has no comparable pair (NaN), the others 1 - 0
    margin = paired_margin(
        concordance, np.array([1.0, 2.0]), np.array([2.0, 1.0]), np.array([1.0, 2.0]), np.array([True, False])
    )
    assert margin == {"difference": 1.0, "low": 1.0, "high": 1.0}


def test_best_of_takes_the_highest_finite_measure_and_the_first_of_a_tie():
    baselines = {
        "a": {"gini": 0.5},
        "b": {"gini": float("nan")},
        "c": {"gini": 0.7},
        "d": {"gini": None},
        "e": {"gini": 0.7},
        "f": {},
    }
    assert best_of(baselines, "gini") == ("c", 0.7)
    assert best_of({"b": {"gini": float("inf")}, "d": {"gini": None}}, "gini") is None
    assert best_of(None, "gini") is None


def test_a_margin_gate_asks_for_more_than_the_gain_over_the_best_baseline():
    gate = MarginGate("m", "the model's m", {"b": "b's"}, "training.min_m_gain", "m is undefined")

    def verdict(found, min_gain=0.0, baselines=None):
        baselines = {"a": {"m": 0.6}, "b": {"m": 0.7}} if baselines is None else baselines
        return gate.verdict({"m": found, "baselines": baselines}, min_gain)

    assert verdict(0.71) == ("ok", "the model's m 0.710 is above b's 0.700")
    assert verdict(0.7) == ("poor", "the model's m 0.700 is not above b's 0.700")
    assert verdict(0.71, 0.02) == (
        "poor",
        "the model's m 0.710 is not above b's 0.700 by more than 0.02 (training.min_m_gain)",
    )
    assert verdict(0.69, -0.05) == (
        "ok",
        "the model's m 0.690 is above b's 0.700 by more than -0.05 (training.min_m_gain)",
    )
    assert verdict(0.7, baselines={"a": {"m": 0.8}}) == ("poor", "the model's m 0.700 is not above a 0.800")
    assert verdict(0.7, baselines={}) == ("ok", "the model's m is 0.700 (no baseline measured)")
    assert verdict(float("nan")) == ("poor", "m is undefined")
    assert verdict(None) == ("poor", "m is undefined")
    assert gate.verdict({}) == ("poor", "m is undefined")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: normalised_gini([1, 2, 3], [1, 2]), "realised has 2 values but predicted has 3"),
        (lambda: spearman([1, 2], [1, 2, 3]), "realised has 3 values but predicted has 2"),
        (lambda: decile_table([1, 2], [1, 2, 3]), "realised has 3"),
        (lambda: decile_error([1, 2], [1, 2, 3]), "realised has 3"),
        (lambda: total_ratio([1], [1, 2]), "realised has 2"),
        (lambda: concordance([1, 2], [1, 2], [True]), "event_observed has 1 values but predicted_days has 2"),
        (lambda: concordance([1, 2], [1, 2, 3], [True, True]), "observed_days has 3"),
        (lambda: bought_by_median([1, 2], [1, 2], [True], 5), "event_observed has 1"),
        (lambda: normalised_gini([1, 2], [1, float("nan")]), "realised holds NaN"),
        (lambda: concordance([1, float("nan")], [1, 2], [True, True]), "predicted_days holds NaN"),
        (lambda: spearman([[1, 2]], [1, 2]), "predicted must be one-dimensional"),
        (lambda: decile_table([1, 2], [1, 2], groups=0), "groups must be at least 1"),
    ],
)
def test_wrong_inputs_raise_value_error_naming_the_argument(call, message):
    with pytest.raises(ValueError, match=message):
        call()
