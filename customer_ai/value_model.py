"""The predicted value of a goal: the expected sum of its events' amounts in the window, per profile.

One LightGBM model with a Tweedie objective (variance power 1.5) fits what each training row's goal events were
worth in its window (:attr:`customer_ai.estimator.TrainingSet.values`, zero included) from the run's features.  Its
log link makes the prediction ``exp(margin)``, so TreeSHAP contributions add up exactly on the log of the expected
value.  Early stopping reads the calibration half of the validation snapshot, and the predictions are then scaled
so that their total on those rows equals what those profiles really spent (the issue's calibration of totals).

Chosen by measurement on the tuning dates of docs/evaluation.md (``bench/value_models.py``, which fits with this
module): against chance x a gamma regression of the amount and chance x past spend, and the baselines BG/NBD x
Gamma-Gamma, the last year's spend and the last window's.
"""

from __future__ import annotations

from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import pandas as pd

from customer_ai.outcome_metrics import decile_error, normalised_gini, spearman, total_ratio

__all__ = ["VALUE_PARAMS", "ValueModel", "fit_value_model", "value_quality"]

# measured on the tuning dates (bench/value_models.py): variance power 1.2-1.8, 7 leaves, 100 rows per leaf and a
# slower rate moved normalised Gini by 0.01 at most
VALUE_PARAMS: dict = {
    "objective": "tweedie",
    "tweedie_variance_power": 1.5,
    "metric": ["tweedie"],
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_data_in_leaf": 20,
    "deterministic": True,
    "force_col_wise": True,
    "num_threads": 1,  # as the propensity model: more threads spin-wait on a busy 2-core machine
    "verbosity": -1,
}
MAX_ROUNDS = 1000
EARLY_STOPPING_ROUNDS = 50


@dataclass
class ValueModel:
    """A fitted value model: a Tweedie booster and the factor that makes its calibration total right.

    Attributes
    ----------
    booster : lightgbm.Booster
        The trees; ``predict`` gives ``exp(margin)``.
    scale : float
        What every prediction is multiplied by (calibration rows' realised total over their predicted one).
    features : list of str
        The feature columns, in order.
    """

    booster: lgb.Booster
    scale: float
    features: list[str]

    @property
    def best_iteration(self) -> int:
        """Return the number of trees kept (early stopping's best)."""
        return int(self.booster.best_iteration or self.booster.current_iteration())

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        """Return the expected value in the goal window of each row of ``features`` (never negative)."""
        if len(features) == 0:
            return np.zeros(0)
        raw = self.booster.predict(features[self.features], num_iteration=self.best_iteration)
        return self.scale * np.asarray(raw, dtype="float64")


def fit_value_model(
    train_x: pd.DataFrame,
    train_y: np.ndarray,
    valid_x: pd.DataFrame,
    valid_y: np.ndarray,
    *,
    seed: int = 42,
) -> ValueModel:
    """Fit the Tweedie model on the training rows, stop early and scale its total on the validation rows.

    Parameters
    ----------
    train_x, valid_x : pandas.DataFrame
        Feature matrices with the same columns; ``category`` columns are LightGBM categoricals.
    train_y, valid_y : numpy.ndarray
        What each row's goal events were worth in its window (0 for none; never negative).
    seed : int, default 42
        LightGBM's seed.

    Returns
    -------
    ValueModel
        Scaled by ``valid_y.sum() / predicted total`` on ``valid_x`` (1 when it predicts nothing there).

    Raises
    ------
    ValueError
        When an amount is negative or not finite: the Tweedie model's amounts are at least 0.
    """
    train_y, valid_y = (np.asarray(y, dtype="float64") for y in (train_y, valid_y))
    for name, amounts in (("training", train_y), ("validation", valid_y)):
        bad = ~np.isfinite(amounts) | (amounts < 0)
        if bad.any():
            raise ValueError(
                f"{int(bad.sum()):,} {name} rows have a negative or missing value: a goal's value adds up amounts "
                "of at least 0 (refunds are events of their own)"
            )
    categorical = [c for c in train_x.columns if isinstance(train_x[c].dtype, pd.CategoricalDtype)]
    train_set = lgb.Dataset(train_x, label=train_y, categorical_feature=categorical or "auto", free_raw_data=False)
    valid_set = lgb.Dataset(valid_x, label=valid_y, reference=train_set, free_raw_data=False)
    booster = lgb.train(
        {**VALUE_PARAMS, "seed": seed},
        train_set,
        num_boost_round=MAX_ROUNDS,
        valid_sets=[valid_set],
        valid_names=["validation"],
        callbacks=[lgb.early_stopping(EARLY_STOPPING_ROUNDS, verbose=False)],
    )
    model = ValueModel(booster=booster, scale=1.0, features=list(train_x.columns))
    predicted = model.predict(valid_x).sum()
    model.scale = float(valid_y.sum() / predicted) if predicted > 0 else 1.0
    return model


def value_quality(predicted: np.ndarray, realised: np.ndarray, baselines: dict[str, np.ndarray]) -> dict:
    """Return how well ``predicted`` amounts match ``realised`` ones, beside each baseline's normalised Gini.

    Returns
    -------
    dict
        ``normalised_gini``, ``spearman``, ``decile_error``, ``total_ratio`` (see
        :mod:`customer_ai.outcome_metrics`), and ``baselines``: each baseline's ``normalised_gini``.
    """
    return {
        "normalised_gini": normalised_gini(predicted, realised),
        "spearman": spearman(predicted, realised),
        "decile_error": decile_error(predicted, realised),
        "total_ratio": total_ratio(predicted, realised),
        "baselines": {
            name: {"normalised_gini": normalised_gini(values, realised)} for name, values in baselines.items()
        },
    }
