"""The baselines a predicted value is judged against, and the margin over the best of them.

Each baseline gives every profile an expected spend in the goal window ``[as_of, as_of + window_days)`` from the
goal events strictly before ``as_of`` (their amounts in the goal's value field; a missing amount adds nothing):

- **BG/NBD x Gamma-Gamma** (Fader, Hardie & Lee 2005, "RFM and CLV: Using Iso-Value Curves for Customer Base
  Analysis"): BG/NBD's expected purchases in the window times Gamma-Gamma's expected spend per purchase, BG/NBD
  fitted on every profile's goal events (:mod:`customer_ai.bgnbd`), Gamma-Gamma on the profiles scored
  (:mod:`customer_ai.gamma_gamma`);
- **the last year's spend**: what the profile spent in the year before ``as_of`` (or since the data start, if
  later), scaled to the window;
- **the last window's spend**: what it spent in the window's length before ``as_of``.

The back-test (:func:`customer_ai.backtest.backtest`) and ``bench/value_models.py`` judge the value model against
them, by normalised Gini with a paired bootstrap interval of the margin (:func:`gini_margin`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from customer_ai.bgnbd import fit_repeat_model, repeat_summary
from customer_ai.conditions import patterns_mask
from customer_ai.gamma_gamma import fit_gamma_gamma, spend_summary
from customer_ai.outcome_metrics import normalised_gini, paired_margin
from customer_ai.spec import Goal
from customer_ai.windows import in_window, rows_where

__all__ = ["VALUE_BASELINES", "best_baseline", "gini_margin", "goal_amounts", "spend_between", "value_baselines"]

VALUE_BASELINES = {
    "bgnbd_gamma_gamma": "BG/NBD's expected goal events in the window times Gamma-Gamma's expected spend per event",
    "last_year": "the spend of the last year (or since the data start, if later) scaled to the window",
    "last_window": "the spend of the last window",
}
_YEAR = pd.Timedelta(days=365)
_DAY = pd.Timedelta(days=1)


def goal_amounts(events: pd.DataFrame, goal: Goal, field: str) -> pd.DataFrame:
    """Return the goal events as ``profile_id, timestamp, value``: ``field`` as a number, 0 where missing.

    An event matching several of the goal's patterns is one row, as :func:`customer_ai.labels.goal_value` counts it.
    """
    rows = rows_where(events[["profile_id", "timestamp", field]], patterns_mask(events, goal.events))
    amounts = pd.to_numeric(rows[field], errors="coerce").fillna(0.0).to_numpy(dtype="float64")
    return rows[["profile_id", "timestamp"]].assign(value=amounts)


def spend_between(amounts: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp, profiles: pd.Index) -> np.ndarray:
    """Return what each of ``profiles`` spent in ``[start, end)`` (0 for none), from :func:`goal_amounts` rows."""
    inside = amounts.loc[in_window(amounts["timestamp"], start, end)]
    return inside.groupby("profile_id")["value"].sum().reindex(profiles).fillna(0.0).to_numpy(dtype="float64")


def value_baselines(
    events: pd.DataFrame,
    goal: Goal,
    as_of: pd.Timestamp,
    profiles: pd.Index,
    *,
    field: str,
    data_start: pd.Timestamp,
) -> pd.DataFrame:
    """Return each baseline's expected spend in the goal window per profile, from the goal events before ``as_of``.

    Parameters
    ----------
    events : pandas.DataFrame
        The events a run at ``as_of`` reads (those at or after ``as_of`` are never used).
    goal : Goal
        The goal: its events, and its window's length.
    as_of : pandas.Timestamp
        Where the window starts.
    profiles : pandas.Index
        The rows of the result.
    field : str
        The events' column of amounts.
    data_start : pandas.Timestamp
        Where the data starts: the last year is cut there when it is shorter.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``profiles``, one column per baseline of :data:`VALUE_BASELINES`; ``bgnbd_gamma_gamma`` is NaN
        when BG/NBD or Gamma-Gamma cannot be fitted (nobody repeated a goal event, or spent on a repeat).
    """
    window = goal.window_days
    amounts = goal_amounts(events, goal, field)
    year_start = max(as_of - _YEAR, data_start)
    year_days = max((as_of - year_start) / _DAY, 1.0)
    out = {
        "bgnbd_gamma_gamma": _bgnbd_gamma_gamma(amounts, as_of, profiles, window),
        "last_year": spend_between(amounts, year_start, as_of, profiles) * window / year_days,
        "last_window": spend_between(amounts, as_of - pd.Timedelta(days=window), as_of, profiles),
    }
    return pd.DataFrame(out, index=profiles)


def _bgnbd_gamma_gamma(amounts: pd.DataFrame, as_of: pd.Timestamp, profiles: pd.Index, window: int) -> np.ndarray:
    """Return BG/NBD's expected goal events in the window times Gamma-Gamma's spend per event (NaN: no fit)."""
    times = amounts[["profile_id", "timestamp"]]
    bgnbd = fit_repeat_model(times, as_of)
    spend = spend_summary(amounts, as_of, profiles)
    gamma = fit_gamma_gamma(spend["x"].to_numpy(), spend["m_x"].to_numpy())
    if bgnbd is None or gamma is None:
        return np.full(len(profiles), np.nan)
    summary = repeat_summary(times, as_of, profiles)
    x, t_x, big_t = (summary[c].to_numpy(dtype="float64") for c in ("x", "t_x", "T"))
    m_x = spend["m_x"].reindex(summary.index).to_numpy(dtype="float64")
    return np.nan_to_num(gamma.expected_value(bgnbd, window, x, t_x, big_t, m_x=np.nan_to_num(m_x)))


def best_baseline(baselines: Mapping[str, np.ndarray], realised: np.ndarray) -> str | None:
    """Return the baseline of highest normalised Gini on ``realised`` (None when none can be measured).

    A baseline holding NaN (not fitted) is left out, and so is one whose Gini is undefined.
    """
    measured = {
        name: normalised_gini(values, realised) for name, values in baselines.items() if not np.isnan(values).any()
    }
    measured = {name: gini for name, gini in measured.items() if np.isfinite(gini)}
    return max(measured, key=measured.__getitem__) if measured else None


def gini_margin(
    predicted: np.ndarray, baseline: np.ndarray, realised: np.ndarray, *, draws: int = 200, seed: int = 0
) -> dict:
    """Return the normalised Gini of ``predicted`` minus the baseline's, with a paired bootstrap 95% interval.

    The profiles are resampled with replacement, both predictions on the same draw: whether a margin of 0.02 can
    be told apart from none on these profiles, whose spend is dominated by a few large buyers.

    Returns
    -------
    dict
        ``difference`` (on all the profiles), ``low`` and ``high`` (the 2.5th and 97.5th percentiles of the
        draws' differences; a draw without any spend is left out).
    """
    return paired_margin(normalised_gini, predicted, baseline, realised, draws=draws, seed=seed)
