"""Drift between the training rows and the rows scored now: population stability, range, missing values."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from customer_ai.drift import (
    DRIFT_COLUMNS,
    WARN_PSI,
    add_counts,
    drift_counts,
    drift_reference,
    drift_table,
    feature_drift,
    population_stability,
    scale_drift,
)
from customer_ai.estimator import PropensityModel
from customer_ai.features import PROBABILITY_EDGES, RATE_EDGES, build_features, fixed_scales
from customer_ai.history import run_window
from customer_ai.labels import eligible_profiles
from customer_ai.windows import in_window, rows_where

from conftest import make_spec, stationary_events, ts


def test_the_index_of_two_bin_counts_is_smoothed_and_exact() -> None:
    # smoothed shares: (1.5/5, 3.5/5) = (0.3, 0.7) against (0.7, 0.3)
    assert population_stability(np.array([1.0, 3.0]), np.array([3.0, 1.0])) == pytest.approx(0.8 * math.log(7 / 3))
    assert population_stability(np.array([5.0, 5.0]), np.array([5.0, 5.0])) == 0.0
    # an empty bin gives a large index, not an infinite one
    assert math.isfinite(population_stability(np.array([100.0, 0.0]), np.array([0.0, 100.0])))


def test_the_same_rows_have_no_drift() -> None:
    frame = pd.DataFrame(
        {"count": [0, 0, 1, 2, 3, 5, 8, 13], "country": ["DE", "FR", "DE", None, "DE", "FR", "GB", "GB"]}
    )
    drift = feature_drift(frame, frame)
    assert list(drift.columns) == DRIFT_COLUMNS
    assert list(drift.index) == ["count", "country"]
    assert (drift[["psi", "outside_share", "missing_change"]] == 0).all().all()
    assert drift.loc["country", "missing_reference"] == 0.125


def test_numbers_outside_the_training_range_and_missing_values_are_counted() -> None:
    reference = pd.DataFrame({"value": [1.0, 2.0, 3.0, 4.0]})
    current = pd.DataFrame({"value": [0.0, 2.0, 5.0, np.nan]})
    drift = feature_drift(reference, current).loc["value"]
    assert drift["outside_share"] == pytest.approx(2 / 3)  # 0 and 5 of the three present values
    assert (drift["missing_reference"], drift["missing_current"], drift["missing_change"]) == (0.0, 0.25, 0.25)


def test_numbers_are_binned_at_the_references_deciles_with_ties_merged() -> None:
    # 70% zeros: the deciles 0.1 .. 0.7 are all 0, so 0 is one bin; then 1, 2, 3 each start a bin
    reference = pd.DataFrame({"count": [0] * 7 + [1, 2, 3]})
    current = pd.DataFrame({"count": [0] * 7 + [1, 2, 3]})
    assert feature_drift(reference, current).loc["count", "psi"] == 0.0
    moved = pd.DataFrame({"count": [0] * 3 + [1] * 7})  # bins: below 0, [0, 1), [1, 2), [2, 3), 3 and up, missing
    expected = population_stability(np.array([0, 7, 1, 1, 1, 0.0]), np.array([0, 3, 7, 0, 0, 0.0]))
    assert feature_drift(reference, moved).loc["count", "psi"] == pytest.approx(expected)


def test_text_values_training_never_had_are_outside_its_range() -> None:
    reference = pd.DataFrame({"country": pd.Categorical(["DE", "FR", "DE", "FR"])})
    current = pd.DataFrame({"country": pd.Categorical(["DE", "IT", None])})
    drift = feature_drift(reference, current).loc["country"]
    assert drift["outside_share"] == 0.5  # IT, of the two present values
    # bins DE, FR, unseen, missing: (2, 2, 0, 0) against (1, 0, 1, 1)
    assert drift["psi"] == pytest.approx(population_stability(np.array([2, 2, 0, 0.0]), np.array([1, 0, 1, 1.0])))


def test_a_probability_is_binned_on_its_own_scale() -> None:
    # nearly 1 for everybody, a little less now: deciles would call it a major shift, twentieths of [0, 1] none
    reference = pd.DataFrame({"alive": 1 - np.linspace(1e-7, 1e-6, 100)})
    current = pd.DataFrame({"alive": 1 - np.linspace(1e-6, 1e-5, 100)})
    assert feature_drift(reference, current).loc["alive", "psi"] > 1
    assert feature_drift(reference, current, {"alive": PROBABILITY_EDGES}).loc["alive", "psi"] == 0.0


def test_counts_of_parts_add_up_to_those_of_the_whole_and_survive_json() -> None:
    rng = np.random.default_rng(0)
    training = pd.DataFrame({"value": rng.gamma(2, 10, 500), "country": rng.choice(["DE", "FR", None], 500)})
    scored = pd.DataFrame({"value": rng.gamma(2, 12, 300), "country": rng.choice(["DE", "IT", None], 300)})
    scored.loc[::7, "value"] = np.nan
    reference = json.loads(json.dumps(drift_reference(training)))  # stored with the model as JSON
    parts = [drift_counts(reference, scored.iloc[i::3]) for i in range(3)]
    whole = drift_counts(reference, scored)
    assert add_counts(json.loads(json.dumps(parts))) == whole
    pd.testing.assert_frame_equal(drift_table(reference, whole), feature_drift(training, scored))


def test_scale_drift_of_frames_read_in_parts_equals_that_of_the_frames_whole() -> None:
    before = pd.DataFrame({"probability": [0.01, 0.02, 0.5, 0.97, 0.99, 0.3]})
    now = pd.DataFrame({"probability": [0.04, 0.6, 0.61, 0.62]})
    whole = feature_drift(before, now, {"probability": PROBABILITY_EDGES})
    parts = scale_drift(
        [before.iloc[:2], before.iloc[2:2], before.iloc[2:]],
        [now.iloc[:1], now.iloc[1:]],
        {"probability": PROBABILITY_EDGES},
    )
    pd.testing.assert_frame_equal(parts, whole, rtol=1e-15)
    assert parts.loc["probability", "mean_current"] == pytest.approx(0.4675)
    empty = scale_drift([], [now], {"probability": PROBABILITY_EDGES}).loc["probability"]  # no earlier rows: no mean
    assert math.isnan(empty["mean_reference"])
    assert empty["mean_current"] == pytest.approx(0.4675)


def test_values_above_and_below_the_training_range_and_the_means_are_told_apart() -> None:
    reference = pd.DataFrame({"value": [1.0, 2.0, 3.0, 4.0]})
    current = pd.DataFrame({"value": [0.0, 5.0, 6.0, 2.0, np.nan]})
    row = feature_drift(reference, current).loc["value"]
    assert (row["below_share"], row["above_share"], row["outside_share"]) == (0.25, 0.5, 0.75)
    assert (row["mean_reference"], row["mean_current"]) == (2.5, 3.25)


def test_a_rate_is_binned_on_its_own_scale_and_outside_means_beyond_the_bins_training_fills() -> None:
    # one event over the history read: 30/345 per 30 days in training, 30/375 when scoring (a longer history)
    reference = pd.DataFrame({"rate": [30 / 345] * 60 + [1.5] * 40})
    current = pd.DataFrame({"rate": [30 / 375] * 60 + [1.5] * 39 + [20.0]})
    at_deciles = feature_drift(reference, current).loc["rate"]
    assert at_deciles["psi"] > 1  # deciles call the move of the lowest value a major shift
    assert at_deciles["below_share"] == 0.6
    scaled = feature_drift(reference, current, {"rate": RATE_EDGES}).loc["rate"]
    assert scaled["psi"] < 0.02  # the same bin on the rate's own scale: both under 0.1 event per 30 days
    assert (scaled["below_share"], scaled["above_share"]) == (0.0, 0.01)  # 20 per 30 days: above every filled bin


def test_scored_rows_lacking_a_feature_are_refused() -> None:
    with pytest.raises(ValueError, match="^the scored rows lack features the training rows have: b$"):
        feature_drift(pd.DataFrame({"a": [1.0], "b": [2.0]}), pd.DataFrame({"a": [1.0]}))


@pytest.fixture(scope="module", params=[730, 300], ids=["two years", "ten months: the plan adapts"])
def stationary_run(request: pytest.FixtureRequest):
    """A log without change over time, the rows a run as of 2024-01-01 trains on and its scoring features.

    Two years cover the configured plan; ten months make it adapt (closer snapshots, a shorter lookback), where
    BG/NBD, fitted on a few months at the oldest snapshot, tells customers apart less sharply than at scoring.
    """
    as_of = ts("2024-01-01")
    start = f"{as_of - pd.Timedelta(days=request.param):%Y-%m-%d}" if request.param != 730 else "2022-01-01"
    events = stationary_events(profiles=3000, days=request.param, seed=3, start=start)
    spec = make_spec(training={"snapshots": 6, "snapshot_every_days": 30, "min_positives": 1, "min_negatives": 1})
    start, _ = run_window(spec, as_of)
    seen = rows_where(events, in_window(events["timestamp"], start, as_of))  # what a run reads
    training = PropensityModel(spec).build_training_set(seen, as_of)
    return spec, as_of, seen, training


def _scoring_features(spec, as_of, events, training) -> pd.DataFrame:
    profiles = eligible_profiles(events, spec.eligibility, as_of)
    return build_features(events, as_of, profiles, spec, training.feature_plan)


def test_every_feature_means_the_same_at_every_snapshot_and_at_scoring(stationary_run) -> None:
    spec, as_of, seen, training = stationary_run
    reference = training.features.loc[training.rows("training")]
    current = _scoring_features(spec, as_of, seen, training)
    assert {"goal_days_since_first", "goal_repeat_days", "goal_p_alive"} <= set(reference.columns)
    drift = feature_drift(reference, current, fixed_scales(training.feature_plan, spec))
    outside = drift.loc[drift["outside_share"] > 0.01, "outside_share"]
    assert outside.empty, f"scored values outside the training range: {outside.to_dict()}"
    drifted = drift.loc[drift["psi"] >= WARN_PSI, "psi"]
    assert drifted.empty, f"features that drifted without any change in the data: {drifted.to_dict()}"


def test_purchase_values_multiplied_by_20_before_the_as_of_date_are_the_largest_drift(stationary_run) -> None:
    spec, as_of, seen, training = stationary_run
    shifted = seen.copy()
    recent = (shifted["event_type"] == "purchase") & (shifted["timestamp"] >= as_of - pd.Timedelta(days=60))
    shifted.loc[recent, "value"] *= 20
    reference = training.features.loc[training.rows("training")]
    current = _scoring_features(spec, as_of, shifted, training)
    drift = feature_drift(reference, current, fixed_scales(training.feature_plan, spec))
    top = drift.sort_values("psi", ascending=False)
    assert set(top.index[:2]) == {"purchase_value_sum", "purchase_value_mean"}
    assert (top["psi"].iloc[:2] > 0.25).all()  # a major shift
    assert top.loc["purchase_value_mean", "outside_share"] > 0.1
