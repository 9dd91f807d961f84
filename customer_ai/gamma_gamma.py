"""The Gamma-Gamma model of monetary value, as a baseline for the value a customer will spend.

Fader, Hardie & Lee (2005), "RFM and CLV: Using Iso-Value Curves for Customer Base Analysis", Journal of
Marketing Research 42(4); Fader & Hardie (2013), "The Gamma-Gamma Model of Monetary Value".
A customer's spend per purchase is ``Gamma(p, nu)`` around their own mean ``p / nu``, and ``nu ~ Gamma(q, v)``
across customers (the paper's ``gamma`` is ``v`` here, as in ``lifetimes``).  A history is summarised as ``x``
(repeat purchases after the first) and ``m_x`` (their mean value); the first purchase is left out, as in the
papers.  Time is in days and purchases are counted per day (several orders on one day are one purchase of their
summed value), as :func:`customer_ai.bgnbd.repeat_summary` counts them and ``lifetimes`` does with ``freq="D"``.

The expected spend in a window is BG/NBD's expected purchases times the conditional expected spend per purchase
(:meth:`GammaGamma.expected_value`, the "RFM and CLV" product without discounting).  Fitting maximises the
likelihood over the logarithms of the three parameters with L-BFGS-B, as :func:`customer_ai.bgnbd.fit_bgnbd`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import gammaln

from customer_ai.bgnbd import BGNBD, repeat_summary
from customer_ai.progress import logger

__all__ = ["GammaGamma", "fit_gamma_gamma", "spend_summary"]


@dataclass(frozen=True)
class GammaGamma:
    """A fitted Gamma-Gamma model of the spend per purchase (``q > 1``, so that the mean exists).

    Attributes
    ----------
    p : float
        Shape of the gamma distribution of one customer's spend per purchase.
    q, v : float
        Shape and rate of the gamma distribution of that distribution's rate across customers.
    """

    p: float
    q: float
    v: float

    def conditional_expected_average_spend(self, x: np.ndarray, m_x: np.ndarray) -> np.ndarray:
        """Return E[spend per purchase | x, m_x] (Fader & Hardie 2013, equation 5).

        Parameters
        ----------
        x : numpy.ndarray
            Repeat purchases (days) per customer.
        m_x : numpy.ndarray
            Their mean value; ignored (may be NaN) where ``x == 0``.

        Returns
        -------
        numpy.ndarray
            The population mean ``v * p / (q - 1)`` weighted by ``q - 1`` against the customer's own ``m_x``
            weighted by ``p * x``; the population mean where ``x == 0``.
        """
        x, m_x = np.asarray(x, dtype="float64"), np.asarray(m_x, dtype="float64")
        p, q, v = self.p, self.q, self.v
        mean = v * p / (q - 1)
        conditional = (q - 1) / (p * x + q - 1) * mean + p * x / (p * x + q - 1) * m_x
        return np.where(x > 0, conditional, mean)

    def log_likelihood(self, x: np.ndarray, m_x: np.ndarray) -> np.ndarray:
        """Return each customer's log-likelihood of ``m_x`` given ``x`` (Fader & Hardie 2013, equation 1a).

        A customer without repeat purchases (``x == 0``) has no spend to explain and gets 0.
        """
        x, m_x = np.asarray(x, dtype="float64"), np.asarray(m_x, dtype="float64")
        repeat = x > 0
        values = np.zeros_like(x)
        values[repeat] = _log_likelihood(np.array([self.p, self.q, self.v]), x[repeat], m_x[repeat])
        return values

    def expected_value(
        self,
        bgnbd: BGNBD,
        t: float,
        x: np.ndarray,
        t_x: np.ndarray,
        T: np.ndarray,  # noqa: N803
        *,
        m_x: np.ndarray,
    ) -> np.ndarray:
        """Return the expected spend in ``(T, T + t]``: BG/NBD's expected purchases times the expected spend of one.

        Parameters
        ----------
        bgnbd : BGNBD
            The repeat-buying model, fitted on the same histories.
        t : float
            Length of the window (days).
        x, t_x, T : numpy.ndarray
            Per customer: repeat purchases, time of the last purchase and length of the observation (days).
        m_x : numpy.ndarray
            Mean value of the repeat purchases (ignored where ``x == 0``); by name, so that it cannot be taken for
            one of the four arrays before it.

        Returns
        -------
        numpy.ndarray
            ``bgnbd.expected_purchases(t, x, t_x, T) * conditional_expected_average_spend(x, m_x)``, undiscounted.
        """
        return bgnbd.expected_purchases(t, x, t_x, T) * self.conditional_expected_average_spend(x, m_x)


def _log_likelihood(params: np.ndarray, x: np.ndarray, m_x: np.ndarray) -> np.ndarray:
    """Return the log-likelihood of customers with ``x > 0`` and ``m_x > 0`` under ``(p, q, v)``."""
    p, q, v = params
    px = p * x
    return (
        gammaln(px + q)
        - gammaln(px)
        - gammaln(q)
        + q * np.log(v)
        + (px - 1) * np.log(m_x)
        + px * np.log(x)
        - (px + q) * np.log(x * m_x + v)
    )


def spend_summary(purchases: pd.DataFrame, as_of: pd.Timestamp, profiles: pd.Index | None = None) -> pd.DataFrame:
    """Return ``x`` and ``m_x`` per profile from purchase events strictly before ``as_of``.

    Parameters
    ----------
    purchases : pandas.DataFrame
        ``profile_id``, ``timestamp`` (UTC) and ``value`` of the purchases; a missing value counts as 0, as in
        ``lifetimes``' sums.
    as_of : pandas.Timestamp
        End of the observation; purchases at or after it are ignored.
    profiles : pandas.Index, optional
        Rows of the result; a profile without purchases gets ``x = 0`` and ``m_x`` NaN.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``profile_id`` like :func:`customer_ai.bgnbd.repeat_summary`: ``x`` (purchase days after the
        first) and ``m_x`` (the mean over those days of each day's summed value; NaN where ``x == 0``).
    """
    summary = repeat_summary(purchases, as_of, profiles)[["x"]]
    seen = purchases.loc[(purchases["timestamp"] < as_of).to_numpy(), ["profile_id", "timestamp", "value"]]
    day = seen["timestamp"].dt.tz_convert("UTC").dt.floor("D")
    daily = seen["value"].astype("float64").groupby([seen["profile_id"], day]).sum()  # by profile, then day
    repeat_days = daily[daily.groupby(level=0).cumcount().to_numpy() > 0]  # every purchase day but the first
    spent = repeat_days.groupby(level=0).sum().reindex(summary.index).to_numpy()
    x = summary["x"].to_numpy()
    return summary.assign(m_x=np.where(x > 0, spent / np.maximum(x, 1.0), np.nan))


def fit_gamma_gamma(x: np.ndarray, m_x: np.ndarray) -> GammaGamma | None:
    """Fit Gamma-Gamma by maximum likelihood on the customers with ``x > 0`` and ``m_x > 0``.

    The spends are divided by their mean for the fit and ``v`` multiplied back, so the fit does not depend on the
    unit of money; the search starts from ``p = q = 1`` and ``v`` the mean spend.

    Parameters
    ----------
    x : numpy.ndarray
        Repeat purchases (days) per customer.
    m_x : numpy.ndarray
        Their mean value (NaN or anything where ``x == 0``).

    Returns
    -------
    GammaGamma or None
        None when fewer than two customers have a repeat purchase of positive value, and, said in the log, when
        the optimiser does not converge or the fit has ``q <= 1`` (no mean spend per purchase to predict with).
    """
    x, m_x = np.asarray(x, dtype="float64"), np.asarray(m_x, dtype="float64")
    used = (x > 0) & (m_x > 0) & np.isfinite(m_x)
    if used.sum() < 2:
        return None
    x, m_x = x[used], m_x[used]
    scale = float(m_x.mean())
    scaled = m_x / scale

    def loss(log_params: np.ndarray) -> float:
        value = -np.mean(_log_likelihood(np.exp(log_params), x, scaled))
        return float(value) if np.isfinite(value) else 1e12

    result = minimize(loss, x0=np.zeros(3), method="L-BFGS-B", bounds=[(-12.0, 12.0)] * 3)
    if not result.success or not np.isfinite(result.fun) or result.fun >= 1e12:  # 1e12: the loss of a failed evaluation
        logger.warning(
            "the monetary-value model is left out: Gamma-Gamma did not converge: %s (after %d iterations)",
            result.message,
            result.nit,
        )
        return None
    p, q, v = np.exp(result.x)
    if q <= 1:
        logger.warning(
            "the monetary-value model is left out: Gamma-Gamma fitted q = %.4g <= 1, so spend per purchase has no "
            "mean (its spread across customers is too heavy-tailed)",
            q,
        )
        return None
    return GammaGamma(p=float(p), q=float(q), v=float(v * scale))
