"""The predicted value of a goal: the expected sum of its events' amounts in the window, per profile.

One LightGBM model with a Tweedie objective (variance power 1.5) fits what each training row's goal events were
worth in its window (:attr:`customer_ai.estimator.TrainingSet.values`, zero included) from the run's features.  Its
log link makes the prediction ``exp(margin)``, so TreeSHAP contributions add up exactly on the log of the expected
value.  Boosting starts from the profile's past spend: the log of its spend per 30 days of the history read
(``goal_value_per_30d``) scaled to the window, plus a floor (the mean value of the training rows that spent nothing
before), so the trees learn corrections to the past rate rather than everything from a constant (:class:`ValueStart`).
Early stopping reads the calibration half of the validation snapshot, and the predictions are then scaled so that
their total on those rows equals what those profiles really spent (the issue's calibration of totals).

Chosen by measurement on the tuning dates of docs/evaluation.md (``bench/value_models.py``, which fits with this
module): against chance x a gamma regression of the amount and chance x past spend, and the baselines BG/NBD x
Gamma-Gamma, the last year's spend and the last window's.  Starting from the past spend put the model above the best
baseline on 6 of the 8 tuning rows (5 from a constant), mean margin +0.009 normalised Gini (+0.002), worst -0.022
(-0.030).
"""

from __future__ import annotations

from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import pandas as pd

from customer_ai import treeshap
from customer_ai.outcome_metrics import (
    MarginGate,
    decile_error,
    decile_table,
    normalised_gini,
    spearman,
    total_ratio,
)

__all__ = [
    "VALUE_BASELINE_NAMES",
    "VALUE_BASELINE_WORDS",
    "VALUE_GATE",
    "VALUE_PARAMS",
    "ValueModel",
    "ValueStart",
    "fit_value_model",
    "value_quality",
    "value_verdict",
]

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


@dataclass(frozen=True)
class ValueStart:
    """Where boosting starts: ``log(feature * per_window + floor)``, the past spend rate scaled to the window.

    Attributes
    ----------
    feature : str
        The column of the spend rate (``goal_value_per_30d``).
    per_window : float
        What turns the rate into the window's amount (window days / 30).
    floor : float
        Added to every amount, so a profile without past spend starts from what such profiles spent (the mean
        value of the training rows whose rate is 0).
    center : float
        The start's mean over the training rows: in the contributions, a row's start minus it is the feature's
        share and it goes to the base value, so each row still sums to the log of its expected value.
    """

    feature: str
    per_window: float
    floor: float
    center: float = 0.0

    def __call__(self, features: pd.DataFrame) -> np.ndarray:
        """Return the start (log of an amount) of each row."""
        rate = np.nan_to_num(features[self.feature].to_numpy(dtype="float64"), nan=0.0)
        return np.log(np.maximum(rate, 0.0) * self.per_window + self.floor)

    @classmethod
    def fitted(cls, features: pd.DataFrame, values: np.ndarray, feature: str, per_window: float) -> ValueStart:
        """Return the start of the training rows ``features`` with their ``values`` (the floor and center set)."""
        rate = np.nan_to_num(features[feature].to_numpy(dtype="float64"), nan=0.0)
        spent_nothing = rate <= 0
        floor = float(values[spent_nothing].mean()) if spent_nothing.any() else float(values.mean())
        start = cls(feature, float(per_window), max(floor, _MIN_FLOOR))
        center = float(start(features).mean()) if len(features) else 0.0
        return cls(start.feature, start.per_window, start.floor, center)


_MIN_FLOOR = 1e-6  # keeps the logarithm finite where no training row spent anything


@dataclass
class ValueModel:
    """A fitted value model: a Tweedie booster, where it started and the factor that makes its total right.

    Attributes
    ----------
    booster : lightgbm.Booster
        The trees; ``predict`` gives ``exp(start + margin)``.
    scale : float
        What every prediction is multiplied by (calibration rows' realised total over their predicted one).
    features : list of str
        The feature columns, in order.
    start : ValueStart, optional
        Where boosting started (None: from a constant, LightGBM's own average).
    """

    booster: lgb.Booster
    scale: float
    features: list[str]
    start: ValueStart | None = None

    @property
    def best_iteration(self) -> int:
        """Return the number of trees kept (early stopping's best; all of a booster read from its file)."""
        kept = self.booster.best_iteration  # 0 without early stopping, -1 on a booster loaded from a file
        return int(kept) if kept and kept > 0 else int(self.booster.current_iteration())

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        """Return the expected value in the goal window of each row of ``features`` (never negative)."""
        if len(features) == 0:
            return np.zeros(0)
        margin = self.booster.predict(features[self.features], raw_score=True, num_iteration=self.best_iteration)
        start = 0.0 if self.start is None else self.start(features)
        return self.scale * np.exp(np.asarray(margin, dtype="float64") + start)

    def contributions(self, features: pd.DataFrame) -> np.ndarray:
        """Return TreeSHAP contributions on the log of the expected value; the last column is the base value.

        Each row sums to ``log(predict(row))``: LightGBM's ``pred_contrib`` on the margin (the log link), the
        start's part on its feature's column (see :class:`ValueStart`) and the scale's logarithm on the base value.
        """
        raw = treeshap.contributions(self.booster, features[self.features], self.best_iteration, threads=1)
        if self.start is not None:
            raw[:, self.features.index(self.start.feature)] += self.start(features) - self.start.center
            raw[:, -1] += self.start.center
        raw[:, -1] += np.log(self.scale)
        return raw


def fit_value_model(
    train_x: pd.DataFrame,
    train_y: np.ndarray,
    valid_x: pd.DataFrame,
    valid_y: np.ndarray,
    *,
    seed: int = 42,
    start: tuple[str, float] | None = None,
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
    start : (str, float), optional
        The past spend rate's column and what scales it to the window: boosting starts from it (see
        :class:`ValueStart`).  None: from a constant.

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
    begin = None if start is None else ValueStart.fitted(train_x, train_y, *start)
    train_init, valid_init = (None, None) if begin is None else (begin(train_x), begin(valid_x))
    categorical = [c for c in train_x.columns if isinstance(train_x[c].dtype, pd.CategoricalDtype)]
    train_set = lgb.Dataset(
        train_x, label=train_y, init_score=train_init, categorical_feature=categorical or "auto", free_raw_data=False
    )
    valid_set = lgb.Dataset(valid_x, label=valid_y, init_score=valid_init, reference=train_set, free_raw_data=False)
    booster = lgb.train(
        {**VALUE_PARAMS, "seed": seed},
        train_set,
        num_boost_round=MAX_ROUNDS,
        valid_sets=[valid_set],
        valid_names=["validation"],
        callbacks=[lgb.early_stopping(EARLY_STOPPING_ROUNDS, verbose=False)],
    )
    model = ValueModel(booster=booster, scale=1.0, features=list(train_x.columns), start=begin)
    predicted = model.predict(valid_x).sum()
    model.scale = float(valid_y.sum() / predicted) if predicted > 0 else 1.0
    return model


def value_quality(predicted: np.ndarray, realised: np.ndarray, baselines: dict[str, np.ndarray]) -> dict:
    """Return how well ``predicted`` amounts match ``realised`` ones, beside each baseline's normalised Gini.

    Returns
    -------
    dict
        ``normalised_gini``, ``spearman``, ``decile_error``, ``total_ratio`` (see
        :mod:`customer_ai.outcome_metrics`), ``deciles`` (the rows of :func:`decile_table`: ``group``, 1 the
        highest predicted, ``profiles``, ``mean_predicted``, ``mean_realised``; None for an empty group's means),
        ``total_predicted``, ``total_realised`` and ``baselines``: each baseline's ``normalised_gini``.
    """
    deciles = decile_table(predicted, realised)
    return {
        "normalised_gini": normalised_gini(predicted, realised),
        "spearman": spearman(predicted, realised),
        "decile_error": decile_error(predicted, realised),
        "total_ratio": total_ratio(predicted, realised),
        "total_predicted": float(np.sum(predicted)),
        "total_realised": float(np.sum(realised)),
        "deciles": [
            {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in row.items()}
            for row in deciles.astype(object).to_dict("records")
        ],
        "baselines": {
            name: {"normalised_gini": normalised_gini(values, realised)} for name, values in baselines.items()
        },
    }


VALUE_BASELINE_NAMES = {  # the baselines of the held-out measures, in words
    "past_spend": "the past spend rate",
    "bgnbd_gamma_gamma": "BG/NBD x Gamma-Gamma",
    "last_year": "the last year's spend",
    "last_window": "the last window's spend",
}
VALUE_BASELINE_WORDS = {name: f"{words}'s" for name, words in VALUE_BASELINE_NAMES.items()}  # as the gate says them


VALUE_GATE = MarginGate(
    "normalised_gini",
    "the value model's normalised Gini",
    VALUE_BASELINE_WORDS,
    "training.min_value_gini_gain",
    "the value model's normalised Gini is undefined (no held-out profile spent anything)",
)


def value_verdict(metrics: dict, min_gain: float = 0.0) -> tuple[str, str]:
    """Return ``("ok" | "poor", reason)``: whether the value model ranks spend better than its best baseline.

    ``metrics`` are :func:`value_quality`'s on the evaluation half (with the baselines a run adds, see
    :meth:`customer_ai.estimator.PropensityModel.judge_value`).  The model is ``poor`` when its normalised Gini is
    not above the best baseline's by more than ``min_gain`` (``training.min_value_gini_gain``), or is undefined
    (nobody among the held-out profiles spent anything): :data:`VALUE_GATE`.
    """
    return VALUE_GATE.verdict(metrics, min_gain)
