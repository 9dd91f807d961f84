"""The predicted value of a goal: a Tweedie LightGBM model whose total is scaled on the calibration rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from customer_ai.value_model import ValueStart, fit_value_model, value_quality, value_verdict


def spenders(rows: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Rows whose spend in the window follows their past spend rate; most spend nothing."""
    rng = np.random.default_rng(seed)
    rate = rng.gamma(0.5, 40.0, rows)
    channel = pd.Categorical(rng.choice(["app", "web"], rows), categories=["app", "web"])
    buys = rng.random(rows) < np.clip(rate / 60.0, 0.02, 0.9)
    spent = np.where(buys, rng.gamma(2.0, rate / 2.0 + 5.0), 0.0)
    return pd.DataFrame({"goal_value_per_30d": rate, "channel": channel, "noise": rng.random(rows)}), spent


def test_the_value_model_ranks_spenders_and_its_total_on_the_calibration_rows_is_theirs() -> None:
    train_x, train_y = spenders(4000, seed=1)
    valid_x, valid_y = spenders(1500, seed=2)
    test_x, test_y = spenders(1500, seed=3)
    model = fit_value_model(train_x, train_y, valid_x, valid_y, seed=7)
    assert model.predict(valid_x).sum() == pytest.approx(valid_y.sum(), rel=1e-9)
    predicted = model.predict(test_x)
    assert (predicted >= 0).all()
    quality = value_quality(predicted, test_y, {"noise": test_x["noise"].to_numpy()})
    assert quality["normalised_gini"] > 0.5  # ranks by the spend rate
    assert abs(quality["baselines"]["noise"]["normalised_gini"]) < 0.15
    assert 0.8 < quality["total_ratio"] < 1.25  # the same population: the scaled total holds
    again = fit_value_model(train_x, train_y, valid_x, valid_y, seed=7)
    np.testing.assert_array_equal(again.predict(test_x), predicted)  # deterministic
    assert model.predict(test_x.iloc[:0]).shape == (0,)
    assert 1 <= model.best_iteration <= 1000


def test_a_negative_or_missing_amount_is_refused_with_how_many() -> None:
    x, y = spenders(200, seed=4)
    y[:3] = [-1.0, np.nan, -5.0]
    with pytest.raises(ValueError, match=r"^3 training rows have a negative or missing value: a goal's value adds"):
        fit_value_model(x, y, x, np.abs(np.nan_to_num(y)))


def test_value_quality_measures_against_what_was_spent() -> None:
    quality = value_quality(np.array([3.0, 2.0, 1.0]), np.array([5.0, 1.0, 0.0]), {"flat": np.ones(3)})
    assert quality["normalised_gini"] == 1.0
    assert quality["total_ratio"] == 1.0
    assert quality["baselines"] == {"flat": {"normalised_gini": 0.0}}


def test_boosting_from_the_past_spend_puts_the_start_on_its_feature_and_adds_up_to_the_log_of_the_prediction() -> None:
    train_x, train_y = spenders(3000, seed=5)
    valid_x, valid_y = spenders(1000, seed=6)
    model = fit_value_model(train_x, train_y, valid_x, valid_y, seed=7, start=("goal_value_per_30d", 2.0))
    start = model.start
    spent_nothing = train_x["goal_value_per_30d"].to_numpy() <= 0
    assert start.feature == "goal_value_per_30d"
    assert start.per_window == 2.0
    assert start.floor == (train_y[spent_nothing].mean() if spent_nothing.any() else train_y.mean())
    np.testing.assert_allclose(start(train_x).mean(), start.center, rtol=1e-12)
    rows = valid_x.iloc[:50]
    np.testing.assert_allclose(start(rows), np.log(rows["goal_value_per_30d"].to_numpy() * 2.0 + start.floor))
    predicted = model.predict(rows)
    margin = model.booster.predict(rows, raw_score=True, num_iteration=model.best_iteration)
    np.testing.assert_allclose(predicted, model.scale * np.exp(margin + start(rows)), rtol=1e-12)
    contributions = model.contributions(rows)
    assert contributions.shape == (50, len(model.features) + 1)
    np.testing.assert_allclose(contributions.sum(axis=1), np.log(predicted), rtol=1e-9, atol=1e-9)
    assert model.predict(valid_x).sum() == pytest.approx(valid_y.sum(), rel=1e-9)  # the total still scaled
    # the start alone carries the past spend: without trees a profile's expected value is its rate times the window
    assert ValueStart("goal_value_per_30d", 2.0, 1.5)(
        pd.DataFrame({"goal_value_per_30d": [0.0, 10.0, np.nan]})
    ).tolist() == [
        np.log(1.5),
        np.log(21.5),
        np.log(1.5),
    ]


def test_the_value_gate_asks_for_a_normalised_gini_above_the_best_baseline() -> None:
    better = {"normalised_gini": 0.75, "baselines": {"past_spend": {"normalised_gini": 0.74}}}
    assert value_verdict(better) == (
        "ok",
        "the value model's normalised Gini 0.750 is above the past spend rate's 0.740",
    )
    assert value_verdict(better, 0.02) == (
        "poor",
        "the value model's normalised Gini 0.750 is not above the past spend rate's 0.740 by more than 0.02 "
        "(training.min_value_gini_gain)",
    )
    assert value_verdict(better, -0.05)[0] == "ok"
    equal = {"normalised_gini": 0.74, "baselines": {"past_spend": {"normalised_gini": 0.74}}}
    assert value_verdict(equal)[0] == "poor"  # no better is not better
    assert value_verdict({"normalised_gini": float("nan"), "baselines": {}}) == (
        "poor",
        "the value model's normalised Gini is undefined (no held-out profile spent anything)",
    )
    assert value_verdict({"normalised_gini": 0.3, "baselines": {}}) == (
        "ok",
        "the value model's normalised Gini is 0.300 (no baseline measured)",
    )
    # a run adds the baselines that need the events: the best of them all is the bar
    every = {
        "normalised_gini": 0.75,
        "baselines": {
            "past_spend": {"normalised_gini": 0.74},
            "bgnbd_gamma_gamma": {"normalised_gini": float("nan")},
            "last_year": {"normalised_gini": 0.76},
            "last_window": {"normalised_gini": 0.6},
        },
    }
    assert value_verdict(every) == (
        "poor",
        "the value model's normalised Gini 0.750 is not above the last year's spend's 0.760",
    )


def test_value_quality_keeps_the_held_out_deciles_and_totals() -> None:
    quality = value_quality(
        np.array([4.0, 3.0, 2.0, 1.0]),
        np.array([2.0, 0.0, 6.0, 0.0]),
        {},
    )
    assert quality["total_predicted"] == 10.0
    assert quality["total_realised"] == 8.0
    assert quality["deciles"][:2] == [
        {"group": 1, "profiles": 0, "mean_predicted": None, "mean_realised": None},
        {"group": 2, "profiles": 0, "mean_predicted": None, "mean_realised": None},
    ]
    assert [d["mean_realised"] for d in quality["deciles"] if d["profiles"]] == [2.0, 0.0, 6.0, 0.0]
