"""LightGBM fit with early stopping on held-out rows, and monotone Platt calibration on the same rows.

Why Platt (a logistic fit on the raw margin) rather than isotonic: the validation snapshot holds a few thousand
profiles, where isotonic regression's step function overfits and collapses distinct scores into ties; and
Platt's calibrated log-odds are ``a * margin + b``, so TreeSHAP contributions scaled by ``a`` stay exactly
additive on the calibrated scale, which keeps the influential factors faithful to the probability shown.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import lightgbm as lgb
import numpy as np
import pandas as pd
from scipy.optimize import minimize

from customer_ai import treeshap

__all__ = ["DEFAULT_PARAMS", "Offset", "PlattCalibration", "TrainedModel", "fit_model", "fit_platt"]

DEFAULT_PARAMS: dict = {
    "objective": "binary",
    "metric": ["auc", "binary_logloss"],
    "first_metric_only": True,
    "learning_rate": 0.03,
    "num_leaves": 15,
    "min_data_in_leaf": 40,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "cat_smooth": 20.0,
    "max_cat_to_onehot": 8,
    "deterministic": True,
    "force_col_wise": True,
    "num_threads": 1,  # OpenMP threads spin-wait: on a busy 2-core machine more threads ran up to 10x slower
    "verbosity": -1,
}
MAX_ROUNDS = 2000
EARLY_STOPPING_ROUNDS = 100


@dataclass(frozen=True)
class PlattCalibration:
    """Calibrated probability ``sigmoid(slope * margin + intercept)``."""

    slope: float
    intercept: float

    def __call__(self, margin: np.ndarray) -> np.ndarray:
        """Return calibrated probabilities for raw LightGBM margins."""
        return 1.0 / (1.0 + np.exp(-(self.slope * np.asarray(margin, dtype="float64") + self.intercept)))


def fit_platt(margin: np.ndarray, label: np.ndarray, *, monotone: bool = True) -> PlattCalibration:
    """Fit Platt scaling by maximum likelihood, with Platt's smoothed targets against overconfidence.

    Parameters
    ----------
    margin : numpy.ndarray
        Raw model margins (log-odds before calibration) on held-out data.
    label : numpy.ndarray
        0/1 outcomes.
    monotone : bool, default True
        Keep the slope at or above zero, so calibration never reverses the model's ranking: a model that ranks
        backwards gets a flat calibration (slope 0), never a flipped one that would pass as good.  A plain
        one-variable logistic fit (``False``) is what the back-test's baselines use, where the direction is
        part of what is learned.

    Returns
    -------
    PlattCalibration
    """
    margin = np.asarray(margin, dtype="float64")
    label = np.asarray(label, dtype="float64")
    positives, negatives = label.sum(), len(label) - label.sum()
    target = np.where(label > 0, (positives + 1) / (positives + 2), 1 / (negatives + 2))

    def loss(params: np.ndarray) -> tuple[float, np.ndarray]:
        z = params[0] * margin + params[1]
        p = 1.0 / (1.0 + np.exp(-z))
        eps = 1e-12
        value = -np.sum(target * np.log(p + eps) + (1 - target) * np.log(1 - p + eps))
        residual = p - target
        return float(value), np.array([np.sum(residual * margin), np.sum(residual)])

    bounds = [(0.0, None), (None, None)] if monotone else None
    result = minimize(loss, x0=np.array([1.0, 0.0]), jac=True, method="L-BFGS-B", bounds=bounds)
    return PlattCalibration(slope=float(result.x[0]), intercept=float(result.x[1]))


@dataclass(frozen=True)
class Offset:
    """Boosting that starts from another model's log-odds: ``sign * logit(p)``, ``p`` a column of the features.

    The trees then learn corrections to that model rather than everything from nothing.  ``center`` is the mean
    offset over the training rows; in the contributions, a row's ``offset - center`` is that column's share
    and ``center`` goes to the base value, so every row still sums exactly to its log-odds.
    """

    feature: str
    sign: float = 1.0
    center: float = 0.0

    def __call__(self, features: pd.DataFrame) -> np.ndarray:
        """Return the offset (log-odds) of each row."""
        chance = np.clip(features[self.feature].to_numpy(dtype="float64"), 1e-6, 1 - 1e-6)
        return np.nan_to_num(self.sign * np.log(chance / (1 - chance)), nan=0.0)  # no estimate: even odds


@dataclass
class TrainedModel:
    """A fitted booster with its calibration and the columns it expects.

    Attributes
    ----------
    booster : lightgbm.Booster
        Trained with early stopping; predictions use ``best_iteration``.
    calibration : PlattCalibration
        Fitted on the validation snapshot.
    features : list of str
        Column order of the feature matrix.
    categorical : list of str
        Columns passed to LightGBM as categoricals.
    params : dict
        LightGBM parameters used.
    offset : Offset, optional
        Where boosting started from (None: from a constant).
    """

    booster: lgb.Booster
    calibration: PlattCalibration
    features: list[str]
    categorical: list[str]
    params: dict = field(default_factory=dict)
    offset: Offset | None = None

    @property
    def best_iteration(self) -> int:
        """Number of boosting rounds kept."""
        kept = self.booster.best_iteration  # 0 without early stopping, -1 on a booster loaded from a file
        return int(kept) if kept and kept > 0 else int(self.booster.current_iteration())

    @property
    def threads(self) -> int:
        """Threads for predictions: those it was trained with (LightGBM's predict would use OpenMP's default)."""
        return int(self.booster.params.get("num_threads", DEFAULT_PARAMS["num_threads"]))

    def margin(self, features: pd.DataFrame) -> np.ndarray:
        """Return raw margins (uncalibrated log-odds), the offset included."""
        raw = self.booster.predict(
            features[self.features], raw_score=True, num_iteration=self.best_iteration, num_threads=self.threads
        )
        return raw if self.offset is None else raw + self.offset(features)

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        """Return calibrated probabilities of the goal."""
        return self.calibration(self.margin(features))

    def contributions(self, features: pd.DataFrame) -> np.ndarray:
        """Return TreeSHAP contributions on the calibrated log-odds scale; the last column is the base value.

        Each row sums to the calibrated log-odds: ``slope * margin + intercept``.  The raw contributions are
        LightGBM's ``pred_contrib``, computed once per decision pattern of each tree (:mod:`customer_ai.treeshap`).
        """
        raw = treeshap.contributions(self.booster, features[self.features], self.best_iteration, threads=self.threads)
        if self.offset is not None:
            raw[:, self.features.index(self.offset.feature)] += self.offset(features) - self.offset.center
            raw[:, -1] += self.offset.center
        scaled = raw * self.calibration.slope
        scaled[:, -1] += self.calibration.intercept
        return scaled


def fit_model(
    train_x: pd.DataFrame,
    train_y: np.ndarray,
    valid_x: pd.DataFrame,
    valid_y: np.ndarray,
    *,
    seed: int = 42,
    params: dict | None = None,
    offset: Offset | None = None,
) -> TrainedModel:
    """Train LightGBM with early stopping on a held-out set, then calibrate on it (monotone Platt scaling).

    Class imbalance is handled with ``scale_pos_weight`` (negatives / positives in training); the weighting
    shifts the raw margins, which the calibration then maps back to honest probabilities.

    Parameters
    ----------
    train_x, valid_x : pandas.DataFrame
        Feature matrices with the same columns; ``category`` columns are LightGBM categoricals.
    train_y, valid_y : numpy.ndarray
        0/1 labels.
    seed : int, default 42
        Seed for LightGBM's bagging and feature sampling.
    params : dict, optional
        Overrides of :data:`DEFAULT_PARAMS`.
    offset : Offset, optional
        Start boosting from this model's log-odds instead of a constant (its ``center`` is set here).

    Returns
    -------
    TrainedModel
    """
    train_y = np.asarray(train_y, dtype="int8")
    valid_y = np.asarray(valid_y, dtype="int8")
    positives = int(train_y.sum())
    negatives = len(train_y) - positives
    settings = {
        **DEFAULT_PARAMS,
        "seed": seed,
        "min_data_in_leaf": int(min(DEFAULT_PARAMS["min_data_in_leaf"], max(5, len(train_y) // 50))),
        "scale_pos_weight": negatives / max(positives, 1),
        **(params or {}),
    }
    categorical = [c for c in train_x.columns if isinstance(train_x[c].dtype, pd.CategoricalDtype)]
    if offset is not None:
        offset = Offset(offset.feature, offset.sign, float(np.mean(offset(train_x))))
    start = (None, None) if offset is None else (offset(train_x), offset(valid_x))
    train_set = lgb.Dataset(
        train_x, label=train_y, init_score=start[0], categorical_feature=categorical or "auto", free_raw_data=False
    )
    valid_set = lgb.Dataset(valid_x, label=valid_y, init_score=start[1], reference=train_set, free_raw_data=False)
    booster = lgb.train(
        settings,
        train_set,
        num_boost_round=MAX_ROUNDS,
        valid_sets=[valid_set],
        valid_names=["validation"],
        callbacks=[lgb.early_stopping(EARLY_STOPPING_ROUNDS, first_metric_only=True, verbose=False)],
    )
    model = TrainedModel(
        booster=booster,
        calibration=PlattCalibration(1.0, 0.0),
        features=list(train_x.columns),
        categorical=categorical,
        params=settings,
        offset=offset,
    )
    model.calibration = fit_platt(model.margin(valid_x), valid_y)
    return model
