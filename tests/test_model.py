"""LightGBM fit, Platt calibration and calibrated TreeSHAP contributions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from customer_ai.evaluation import classification_metrics
from customer_ai.model import MAX_ROUNDS, Offset, PlattCalibration, TrainedModel, fit_model, fit_platt

CATEGORY_EFFECT = {"a": -1.0, "b": 0.0, "c": 0.5, "d": 1.0}
ONE_THREAD = {"num_threads": 1}  # OpenMP threads spin on a busy machine


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def synthetic(n: int, rng: np.random.Generator, shift: float = -1.0) -> tuple[pd.DataFrame, np.ndarray]:
    """Two informative numeric features and one informative pandas categorical."""
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    cat = rng.choice(list(CATEGORY_EFFECT), size=n)
    logit = 1.5 * x1 - 1.0 * x2 + pd.Series(cat).map(CATEGORY_EFFECT).to_numpy() + shift
    label = (rng.random(n) < sigmoid(logit)).astype(int)
    frame = pd.DataFrame({"x1": x1, "x2": x2, "cat": pd.Categorical(cat, categories=list(CATEGORY_EFFECT))})
    return frame, label


@pytest.fixture(scope="module")
def problem() -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(0)
    train_x, train_y = synthetic(2000, rng)
    valid_x, valid_y = synthetic(1000, rng)
    return train_x, train_y, valid_x, valid_y


@pytest.fixture(scope="module")
def fitted(problem) -> TrainedModel:
    train_x, train_y, valid_x, valid_y = problem
    return fit_model(train_x, train_y, valid_x, valid_y, seed=7, params=ONE_THREAD)


def quantile_reliability_gap(probability: np.ndarray, label: np.ndarray, bins: int = 5) -> float:
    """Largest |mean predicted - observed rate| over equal-count bins of the predictions."""
    order = np.argsort(probability, kind="stable")
    return max(abs(probability[chunk].mean() - label[chunk].mean()) for chunk in np.array_split(order, bins))


# --- Platt calibration -------------------------------------------------------------------------------------


def test_platt_calibration_maps_margins_exactly():
    calibration = PlattCalibration(slope=2.0, intercept=-1.0)
    result = calibration([0.0, 0.5, 1.0, -2.0])
    assert result == pytest.approx(sigmoid(np.array([-1.0, 0.0, 1.0, -5.0])), rel=1e-12)
    assert result.dtype == np.float64


def test_platt_identity_is_the_plain_sigmoid():
    assert PlattCalibration(1.0, 0.0)(np.array([0.0, np.log(3.0)])) == pytest.approx([0.5, 0.75], rel=1e-12)


@pytest.mark.parametrize(("slope", "intercept"), [(2.0, -1.0), (1.0, 0.0), (0.5, 0.7)])
def test_fit_platt_recovers_known_slope_and_intercept(slope, intercept):
    rng = np.random.default_rng(123)
    margin = rng.normal(size=20000)
    label = (rng.random(20000) < sigmoid(slope * margin + intercept)).astype(int)
    calibration = fit_platt(margin, label)
    assert calibration.slope == pytest.approx(slope, abs=0.1)
    assert calibration.intercept == pytest.approx(intercept, abs=0.1)


def test_fit_platt_mean_probability_matches_smoothed_targets():
    # the intercept's optimality condition: sum(p) == sum(smoothed targets)
    rng = np.random.default_rng(5)
    margin = rng.normal(size=500) * 3
    label = (rng.random(500) < sigmoid(0.3 * margin - 1)).astype(int)
    positives, negatives = label.sum(), len(label) - label.sum()
    target = np.where(label > 0, (positives + 1) / (positives + 2), 1 / (negatives + 2))
    assert fit_platt(margin, label)(margin).mean() == pytest.approx(target.mean(), abs=1e-4)


# --- fit_model -------------------------------------------------------------------------------------------


def test_fit_model_keeps_columns_categoricals_and_parameters(fitted):
    assert fitted.features == ["x1", "x2", "cat"]
    assert fitted.categorical == ["cat"]
    assert fitted.params["seed"] == 7
    assert fitted.params["min_data_in_leaf"] == 40  # min(40, max(5, 2000 // 50))
    assert 0 < fitted.best_iteration < MAX_ROUNDS


def test_fit_model_mean_probability_matches_validation_rate(problem, fitted):
    _, _, valid_x, valid_y = problem
    probability = fitted.predict_proba(valid_x)
    assert probability.mean() == pytest.approx(valid_y.mean(), abs=0.01)
    # the check bites: the raw margins (weighted by scale_pos_weight) are clearly off
    assert abs(sigmoid(fitted.margin(valid_x)).mean() - valid_y.mean()) > 0.05


def test_fit_model_reliability_per_quintile(problem, fitted):
    _, _, valid_x, valid_y = problem
    tolerance = 0.07  # ~2 standard errors of a rate over 200 profiles
    assert quantile_reliability_gap(fitted.predict_proba(valid_x), valid_y) < tolerance
    # the tolerance is meaningful: uncalibrated probabilities fail it
    assert quantile_reliability_gap(sigmoid(fitted.margin(valid_x)), valid_y) > tolerance


def test_fit_model_ranks_well(problem, fitted):
    _, _, valid_x, valid_y = problem
    assert classification_metrics(fitted.predict_proba(valid_x), valid_y)["roc_auc"] > 0.75


def test_fit_model_is_deterministic_for_a_seed(problem, fitted):
    train_x, train_y, valid_x, valid_y = problem
    again = fit_model(train_x, train_y, valid_x, valid_y, seed=7, params=ONE_THREAD)
    np.testing.assert_array_equal(again.predict_proba(valid_x), fitted.predict_proba(valid_x))
    other = fit_model(train_x, train_y, valid_x, valid_y, seed=8, params=ONE_THREAD)
    assert not np.array_equal(other.predict_proba(valid_x), fitted.predict_proba(valid_x))


def test_fit_model_params_override_defaults(problem):
    train_x, train_y, valid_x, valid_y = problem
    model = fit_model(train_x[:400], train_y[:400], valid_x, valid_y, params={"num_leaves": 4, **ONE_THREAD})
    assert model.params["num_leaves"] == 4
    assert model.params["min_data_in_leaf"] == 8  # 400 // 50
    assert model.params["scale_pos_weight"] == pytest.approx((400 - train_y[:400].sum()) / train_y[:400].sum())


def test_contributions_sum_to_calibrated_log_odds(problem, fitted):
    _, _, valid_x, _ = problem
    contributions = fitted.contributions(valid_x)
    assert contributions.shape == (len(valid_x), 4)
    probability = fitted.predict_proba(valid_x)
    np.testing.assert_allclose(contributions.sum(axis=1), np.log(probability / (1 - probability)), atol=1e-6)
    # the base value column is shared by every row
    assert np.ptp(contributions[:, -1]) == pytest.approx(0.0, abs=1e-12)


def test_contributions_use_the_columns_by_name(problem, fitted):
    _, _, valid_x, _ = problem
    shuffled = valid_x[["cat", "x2", "x1"]]
    np.testing.assert_array_equal(fitted.contributions(shuffled), fitted.contributions(valid_x))
    np.testing.assert_array_equal(fitted.predict_proba(shuffled), fitted.predict_proba(valid_x))


def test_class_imbalance_is_undone_by_calibration():
    rng = np.random.default_rng(11)
    train_x, train_y = synthetic(2000, rng, shift=-3.3)
    valid_x, valid_y = synthetic(1000, rng, shift=-3.3)
    assert 0.08 < train_y.mean() < 0.15  # about 1:9
    model = fit_model(train_x, train_y, valid_x, valid_y, params=ONE_THREAD)
    positives = train_y.sum()
    assert model.params["scale_pos_weight"] == pytest.approx((len(train_y) - positives) / positives)
    assert model.predict_proba(valid_x).mean() == pytest.approx(valid_y.mean(), abs=0.01)
    # without calibration the weighting inflates the probabilities well above the base rate
    assert sigmoid(model.margin(valid_x)).mean() > 2 * valid_y.mean()


# --- boosting from an offset --------------------------------------------------------------------------------


def with_prior(frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Add a column holding another model's probability: informative, noisy."""
    prior = sigmoid(1.2 * frame["x1"].to_numpy() + rng.normal(scale=0.5, size=len(frame)) - 1.0)
    return frame.assign(prior=prior)


@pytest.fixture(scope="module")
def offset_problem(problem) -> tuple:
    train_x, train_y, valid_x, valid_y = problem
    rng = np.random.default_rng(9)
    return with_prior(train_x, rng), train_y, with_prior(valid_x, rng), valid_y


def test_offset_is_the_signed_log_odds_of_its_column():
    frame = pd.DataFrame({"p": [0.5, 0.8, 0.0, float("nan")]})
    assert Offset("p")(frame)[:2] == pytest.approx([0.0, np.log(4.0)])
    assert Offset("p", sign=-1.0)(frame)[1] == pytest.approx(-np.log(4.0))
    assert np.isfinite(Offset("p")(frame)[2])  # clipped, never infinite
    assert Offset("p")(frame)[3] == 0.0  # no estimate: even odds


def test_boosting_from_an_offset_adds_it_to_the_margin(offset_problem):
    train_x, train_y, valid_x, valid_y = offset_problem
    model = fit_model(train_x, train_y, valid_x, valid_y, params=ONE_THREAD, offset=Offset("prior"))
    assert model.offset.center == pytest.approx(float(np.mean(Offset("prior")(train_x))))
    trees = model.booster.predict(valid_x[model.features], raw_score=True, num_iteration=model.best_iteration)
    np.testing.assert_allclose(model.margin(valid_x), trees + Offset("prior")(valid_x), rtol=1e-12)
    assert classification_metrics(model.predict_proba(valid_x), valid_y)["roc_auc"] > 0.75


def test_contributions_with_an_offset_still_sum_to_the_calibrated_log_odds(offset_problem):
    train_x, train_y, valid_x, valid_y = offset_problem
    model = fit_model(train_x, train_y, valid_x, valid_y, params=ONE_THREAD, offset=Offset("prior"))
    contributions = model.contributions(valid_x)
    probability = model.predict_proba(valid_x)
    np.testing.assert_allclose(contributions.sum(axis=1), np.log(probability / (1 - probability)), atol=1e-6)
    assert np.ptp(contributions[:, -1]) == pytest.approx(0.0, abs=1e-12)  # one base value for every row
    # the offset's share is credited to its own column: a higher prior, a larger contribution of "prior"
    column = model.features.index("prior")
    order = np.argsort(valid_x["prior"].to_numpy())
    assert contributions[order[-1], column] > contributions[order[0], column]


def test_monotone_platt_never_reverses_a_backwards_ranking():
    rng = np.random.default_rng(4)
    margin = rng.normal(size=3000)
    label = (rng.random(3000) < sigmoid(-1.5 * margin)).astype(int)  # higher margin, fewer positives
    assert fit_platt(margin, label).slope == 0.0
    flat = fit_platt(margin, label)(margin)
    assert np.ptp(flat) == pytest.approx(0.0, abs=1e-12)
    assert flat.mean() == pytest.approx(label.mean(), abs=0.01)  # the base rate is all it can say
    assert fit_platt(margin, label, monotone=False).slope == pytest.approx(-1.5, abs=0.15)  # what baselines use
