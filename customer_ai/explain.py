"""Influential factors: the top signed TreeSHAP contributions of each profile, in words.

Contributions come from LightGBM's ``pred_contrib`` (exact TreeSHAP) scaled onto the calibrated log-odds, so
a profile's contributions plus the base value add up to the log-odds of the probability it is shown.
``importance`` says how much one factor moves the odds: ``high`` when it multiplies or divides them by at
least 1.5, ``medium`` by at least 1.15, ``low`` otherwise.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from customer_ai.features import FeatureInfo

__all__ = ["HIGH_ODDS_FACTOR", "MEDIUM_ODDS_FACTOR", "importance_of", "top_factors"]

HIGH_ODDS_FACTOR = 1.5
MEDIUM_ODDS_FACTOR = 1.15


def importance_of(contribution: float) -> str:
    """Return ``low``/``medium``/``high`` for a contribution on the log-odds scale."""
    size = abs(contribution)
    if size >= math.log(HIGH_ODDS_FACTOR):
        return "high"
    if size >= math.log(MEDIUM_ODDS_FACTOR):
        return "medium"
    return "low"


def _plain(value: object) -> object:
    """Return a JSON-ready scalar (None for missing)."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, (np.floating, float)):
        return round(float(value), 4)
    if isinstance(value, (np.integer, int)):
        return int(value)
    return str(value)


def top_factors(
    features: pd.DataFrame, contributions: np.ndarray, infos: list[FeatureInfo], k: int
) -> list[list[dict]]:
    """Return, per profile, its ``k`` factors with the largest absolute contributions.

    Parameters
    ----------
    features : pandas.DataFrame
        The profiles' feature values, columns in the order of ``infos``.
    contributions : numpy.ndarray
        ``(n_profiles, n_features + 1)``, as from :meth:`TrainedModel.contributions` (last column: base value).
    infos : list of FeatureInfo
        Descriptions of the columns.
    k : int
        Factors per profile.

    Returns
    -------
    list of list of dict
        Each factor: ``feature``, ``description``, ``value``, ``contribution`` (signed, calibrated log-odds;
        positive raises the probability of the goal), ``importance``.  Factors with a zero contribution are
        left out.
    """
    per_feature = np.asarray(contributions)[:, :-1]
    k = min(k, per_feature.shape[1])
    if k == 0 or len(per_feature) == 0:
        return [[] for _ in range(len(per_feature))]
    # stable argsort on -|c| keeps feature order among equal contributions, so output is deterministic
    order = np.argsort(-np.abs(per_feature), axis=1, kind="stable")[:, :k]
    values = features.to_numpy(dtype=object)
    result = []
    for row, chosen in enumerate(order):
        factors = []
        for column in chosen:
            contribution = float(per_feature[row, column])
            if contribution == 0.0:
                continue
            info, value = infos[column], values[row, column]
            factors.append(
                {
                    "feature": info.name,
                    "description": info.describe(value),
                    "value": _plain(value),
                    "contribution": round(contribution, 4),
                    "importance": importance_of(contribution),
                }
            )
        result.append(factors)
    return result
