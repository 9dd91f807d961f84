"""The predicted value of a goal: a Tweedie LightGBM model whose total is scaled on the calibration rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from customer_ai.value_model import fit_value_model, value_quality


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
