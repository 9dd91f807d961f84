"""The BG/NBD model of repeat buying (Fader, Hardie & Lee, 2005), as a baseline and as a source of features.

"Counting your customers the easy way: an alternative to the Pareto/NBD model", Marketing Science 24(2).
While alive, a customer buys at a Poisson rate ``lambda ~ Gamma(r, alpha)``; after each purchase they drop out
with probability ``p ~ Beta(a, b)``.  A customer's history is summarised as ``x`` (repeat purchases after the
first), ``t_x`` (time of the last purchase, from the first) and ``T`` (time from the first purchase to the
end of the observation).  Time here is in days and purchases are counted per day (several orders on one day are
one purchase day), as ``lifetimes`` does with ``freq="D"``; the tests check both against ``lifetimes``.

Everything is vectorised over customers; fitting maximises the log-likelihood (the paper's equation 6) over
the logarithms of the four parameters with L-BFGS-B.

The fit depends on the customers only through how many share each distinct ``(x, t_x, T)`` and which profile id is
the first (smallest) to have it (:func:`repeat_counts`): the counts of separate partitions of the profiles add up
(:func:`merge_counts`) to those of all of them, and :func:`fit_counts` of the sum is :func:`fit_summary` of
everyone to the bit (the histories enter the likelihood's sum in the order of their first profiles, as they do when
every profile is fitted at once).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import betaln, gammaln, hyp2f1

from customer_ai.progress import logger

__all__ = [
    "BGNBD",
    "BGNBDConvergenceError",
    "CountsTally",
    "fit_bgnbd",
    "fit_counts",
    "fit_repeat_model",
    "fit_summary",
    "merge_counts",
    "profile_rows",
    "repeat_counts",
    "repeat_summary",
    "repeat_view",
]

_DAY = pd.Timedelta(days=1)
_HISTORY = ["x", "t_x", "T"]  # a customer's history, in the order its distinct values are sorted by


def repeat_summary(purchases: pd.DataFrame, as_of: pd.Timestamp, profiles: pd.Index | None = None) -> pd.DataFrame:
    """Return ``x``, ``t_x`` and ``T`` (days) per profile from purchase events strictly before ``as_of``.

    Parameters
    ----------
    purchases : pandas.DataFrame
        ``profile_id`` and ``timestamp`` (UTC) of the purchases.
    as_of : pandas.Timestamp
        End of the observation (midnight UTC); purchases at or after it are ignored.
    profiles : pandas.Index, optional
        Rows of the result; a profile without purchases gets ``x = t_x = T = 0`` (nothing is known of it).

    Returns
    -------
    pandas.DataFrame
        Indexed by ``profile_id`` (sorted when ``profiles`` is not given): ``x`` (distinct purchase days after
        the first), ``t_x`` (days from the first purchase day to the last), ``T`` (days from the first purchase
        day to ``as_of``).
    """
    before = np.flatnonzero((purchases["timestamp"] < as_of).to_numpy())
    timestamps = purchases["timestamp"].iloc[before]
    codes, ids = pd.factorize(purchases["profile_id"].iloc[before], sort=True)
    wall = timestamps.dt.tz_convert("UTC").dt.tz_localize(None)
    unit = np.datetime_data(wall.dtype)[0]
    day_length = int(np.timedelta64(1, "D").astype(f"timedelta64[{unit}]").view("int64"))
    # distinct (profile, day) pairs, in (profile, day) order: the purchase days of each profile, oldest first
    days = wall.to_numpy().view("int64") // day_length
    origin = int(days.min()) if len(days) else 0
    span = int(days.max()) - origin + 1 if len(days) else 1
    pairs = np.sort(codes.astype("int64") * span + (days - origin))
    pairs = pairs[np.r_[True, pairs[1:] != pairs[:-1]]] if len(pairs) else pairs
    pair_codes = pairs // span
    firsts = np.r_[True, pair_codes[1:] != pair_codes[:-1]] if len(pairs) else np.zeros(0, dtype=bool)
    lasts = np.r_[firsts[1:], True] if len(pairs) else firsts
    first_day = pd.DatetimeIndex(((pairs[firsts] % span + origin) * day_length).astype(f"datetime64[{unit}]"))
    last_day = pd.DatetimeIndex(((pairs[lasts] % span + origin) * day_length).astype(f"datetime64[{unit}]"))
    first_day, last_day = first_day.tz_localize("UTC"), last_day.tz_localize("UTC")
    summary = pd.DataFrame(
        {
            "x": (np.bincount(pair_codes, minlength=len(ids)) - 1).astype("float64"),
            "t_x": np.asarray((last_day - first_day) / _DAY, dtype="float64"),
            "T": np.asarray((as_of - first_day) / _DAY, dtype="float64"),
        },
        index=pd.Index(ids, name="profile_id"),
    )
    return summary if profiles is None else profile_rows(summary, profiles)


def profile_rows(summary: pd.DataFrame, profiles: pd.Index) -> pd.DataFrame:
    """Return the rows of ``profiles`` in a :func:`repeat_summary` of every profile (zeros for one without purchases).

    ``profile_rows(repeat_summary(purchases, as_of), profiles)`` is ``repeat_summary(purchases, as_of, profiles)``
    without summarising the purchases again.
    """
    return summary.reindex(pd.Index(profiles, name="profile_id")).fillna(0.0).astype("float64")


class BGNBDConvergenceError(ValueError):
    """The BG/NBD likelihood's optimiser stopped without converging."""


@dataclass(frozen=True)
class BGNBD:
    """A fitted BG/NBD model (time in days).

    Attributes
    ----------
    r, alpha : float
        Shape and scale of the gamma distribution of purchase rates.
    a, b : float
        Shape parameters of the beta distribution of drop-out probabilities.
    """

    r: float
    alpha: float
    a: float
    b: float

    def view(self, summary: pd.DataFrame, window_days: float) -> pd.DataFrame:
        """Return ``chance``, ``expected`` (within ``window_days``) and ``alive`` per :func:`repeat_summary` row."""
        x, t_x, big_t = summary["x"].to_numpy(), summary["t_x"].to_numpy(), summary["T"].to_numpy()
        return pd.DataFrame(
            {
                "chance": self.probability_of_purchase(window_days, x, t_x, big_t),
                "expected": self.expected_purchases(window_days, x, t_x, big_t),
                "alive": self.probability_alive(x, t_x, big_t),
            },
            index=summary.index,
        )

    def log_likelihood(self, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:  # noqa: N803
        """Return each customer's log-likelihood (Fader, Hardie & Lee 2005, equation 6)."""
        return _log_likelihood(np.array([self.r, self.alpha, self.a, self.b]), x, t_x, T)

    def probability_alive(self, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:  # noqa: N803
        """Return P(alive at ``T`` | history) (equation 11 of the authors' note)."""
        x, t_x, T = (np.asarray(v, dtype="float64") for v in (x, t_x, T))  # noqa: N806
        ratio = np.exp(np.log(self.a) - np.log(np.maximum(self.b + x - 1, 1e-300)))
        odds = np.where(x > 0, ratio * ((self.alpha + T) / (self.alpha + t_x)) ** (self.r + x), 0.0)
        return 1.0 / (1.0 + odds)

    def expected_purchases(self, t: float, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:  # noqa: N803
        """Return E[purchases in ``(T, T + t]`` | history] (equation 10)."""
        x, t_x, T = (np.asarray(v, dtype="float64") for v in (x, t_x, T))  # noqa: N806
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        head = (a + b + x - 1) / (a - 1)
        tail = 1 - ((alpha + T) / (alpha + T + t)) ** (r + x) * hyp2f1(r + x, b + x, a + b + x - 1, t / (alpha + T + t))
        return head * tail * self.probability_alive(x, t_x, T)

    def probability_of_purchase(self, t: float, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:  # noqa: N803
        """Return P(at least one purchase in ``(T, T + t]`` | history).

        An alive customer's rate has the posterior ``Gamma(r + x, alpha + T)`` and cannot drop out without
        buying, so ``P(none | alive) = ((alpha + T) / (alpha + T + t)) ** (r + x)``.
        """
        x, T = np.asarray(x, dtype="float64"), np.asarray(T, dtype="float64")  # noqa: N806
        none_if_alive = ((self.alpha + T) / (self.alpha + T + t)) ** (self.r + x)
        return self.probability_alive(x, t_x, T) * (1.0 - none_if_alive)

    def purchase_timing(
        self,
        horizon_days: float,
        x: np.ndarray,
        t_x: np.ndarray,
        T: np.ndarray,  # noqa: N803
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return each customer's expected days without a purchase in ``[0, horizon_days)`` and median days to one.

        Alive with probability ``p``, a customer's chance of no purchase within ``t`` days is ``(A / (A + t)) ** k``
        (``A = alpha + T``, ``k = r + x``; see :meth:`probability_of_purchase`), so both are exact:

        - the median solves ``p (1 - (A / (A + t)) ** k) = 1/2``: ``A ((1 - 1 / (2p)) ** (-1 / k) - 1)``; ``inf``
          when it lies beyond the horizon or when ``p <= 1/2`` (then even odds are never reached);
        - the restricted mean is the area under ``1 - P(a purchase within t)`` over the horizon:
          ``H - p (H - I)`` with ``I`` the area under ``(A / (A + t)) ** k``, ``A (1 - (A / (A + H)) ** (k - 1)) /
          (k - 1)`` (``A log(1 + H / A)`` where ``k = 1``).

        Returns
        -------
        (numpy.ndarray, numpy.ndarray)
            The restricted mean and the median, in days, per customer.
        """
        x, T = np.asarray(x, dtype="float64"), np.asarray(T, dtype="float64")  # noqa: N806
        alive = self.probability_alive(x, t_x, T)
        scale, shape, horizon = self.alpha + T, self.r + x, float(horizon_days)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            near_one = np.abs(shape - 1.0) < 1e-9
            area = np.where(
                near_one,
                scale * np.log1p(horizon / scale),
                scale * (1.0 - (scale / (scale + horizon)) ** (shape - 1.0)) / (shape - 1.0),
            )
            median = scale * ((1.0 - 0.5 / alive) ** (-1.0 / shape) - 1.0)
        median = np.where((alive > 0.5) & (median <= horizon), median, np.inf)
        return horizon - alive * (horizon - area), median


def _log_likelihood(params: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:  # noqa: N803
    return _Histories(x, t_x, T).log_likelihood(params)


class _Histories:
    """Customers' ``(x, t_x, T)`` with each column's distinct values, for evaluating the likelihood many times.

    The special functions (``gammaln``, ``betaln``, ``log``) depend on one column each, and a column holds few
    distinct values (whole days, purchase counts), so they are evaluated once per distinct value and gathered:
    every element gets the value the elementwise call would give, and the likelihood is the same to the bit.
    """

    def __init__(self, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> None:  # noqa: N803
        self.x = x
        self.repeat = x > 0
        self.x_values, self.x_at = np.unique(x, return_inverse=True)
        self.repeat_x_values, self.repeat_x_at = np.unique(x[self.repeat], return_inverse=True)
        self.t_x_values, self.t_x_at = np.unique(t_x[self.repeat], return_inverse=True)
        self.T_values, self.T_at = np.unique(T, return_inverse=True)

    def log_likelihood(self, params: np.ndarray) -> np.ndarray:
        """Return each customer's log-likelihood under ``(r, alpha, a, b)``."""
        r, alpha, a, b = params
        x, repeat = self.x, self.repeat
        common = gammaln(r + self.x_values)[self.x_at] - gammaln(r) + r * np.log(alpha) - betaln(a, b)
        survived = betaln(a, b + self.x_values)[self.x_at] - (r + x) * np.log(alpha + self.T_values)[self.T_at]
        dropped = np.full_like(x, -np.inf)
        dropped[repeat] = (
            betaln(a + 1, b + self.repeat_x_values - 1)[self.repeat_x_at]
            - (r + x[repeat]) * np.log(alpha + self.t_x_values)[self.t_x_at]
        )
        return common + np.logaddexp(survived, dropped)


def fit_bgnbd(
    x: np.ndarray,
    t_x: np.ndarray,
    T: np.ndarray,
    weights: np.ndarray | None = None,  # noqa: N803
) -> BGNBD:
    """Fit BG/NBD by maximum likelihood.

    Parameters
    ----------
    x, t_x, T : numpy.ndarray
        Per customer: repeat purchases, time of the last purchase and length of the observation (days).
    weights : numpy.ndarray, optional
        How many customers share each ``(x, t_x, T)`` row (1 each by default).

    Returns
    -------
    BGNBD
        Identical histories are fitted once with their weights summed, in the order of their first rows: rows
        given in the same order of histories give the same fit to the bit, however they are grouped.

    Raises
    ------
    ValueError
        Without customers.
    BGNBDConvergenceError
        When the optimiser stops without converging (the parameters it reached are not a fit).
    """
    x, t_x, T = (np.asarray(v, dtype="float64") for v in (x, t_x, T))  # noqa: N806
    if len(x) == 0:
        raise ValueError("BG/NBD needs at least one customer")
    triples = pd.DataFrame({"x": x, "t_x": t_x, "T": T, "w": 1.0 if weights is None else weights})
    rows = triples.groupby(_HISTORY, sort=False, as_index=False)["w"].sum()  # identical histories once
    x, t_x, T, w = (rows[c].to_numpy(dtype="float64") for c in (*_HISTORY, "w"))  # noqa: N806
    total = w.sum()
    histories = _Histories(x, t_x, T)

    def loss(log_params: np.ndarray) -> float:
        value = -np.sum(w * histories.log_likelihood(np.exp(log_params))) / total
        return float(value) if np.isfinite(value) else 1e12

    result = minimize(loss, x0=np.zeros(4), method="L-BFGS-B", bounds=[(-12.0, 12.0)] * 4)
    if not result.success or not np.isfinite(result.fun) or result.fun >= 1e12:  # 1e12: the loss of a failed evaluation
        raise BGNBDConvergenceError(f"BG/NBD did not converge: {result.message} (after {result.nit} iterations)")
    r, alpha, a, b = np.exp(result.x)
    return BGNBD(r=float(r), alpha=float(alpha), a=float(a), b=float(b))


def fit_repeat_model(purchases: pd.DataFrame, as_of: pd.Timestamp) -> BGNBD | None:
    """Return BG/NBD fitted on every profile's purchases before ``as_of``; None when nobody has repeated one.

    The fit sees only how many profiles share each history (:func:`repeat_counts`), so the same purchases give the
    same fit to the last bit, however the rows are ordered or split into partitions of profiles.
    """
    return fit_summary(repeat_summary(purchases, as_of))


def fit_summary(summary: pd.DataFrame) -> BGNBD | None:
    """Return BG/NBD fitted on a :func:`repeat_summary` (every row a customer); None when nobody repeated.

    A fit that does not converge is said in the log and gives None too: its features are then missing for that
    date (the model does without them, and boosting starts from even odds), rather than resting on parameters the
    optimiser merely stopped at.
    """
    return fit_counts(repeat_counts(summary))


def repeat_counts(summary: pd.DataFrame) -> pd.DataFrame:
    """Return how many customers of a :func:`repeat_summary` share each history: all that BG/NBD is fitted on.

    Parameters
    ----------
    summary : pandas.DataFrame
        ``x``, ``t_x`` and ``T`` per customer, indexed by profile id (text, or integer codes that sort as the ids).

    Returns
    -------
    pandas.DataFrame
        One row per distinct ``(x, t_x, T)`` (float64) with ``customers`` (int64) and ``first`` (the smallest
        profile id having it), in the order of ``first``, with a plain ``RangeIndex``; :func:`merge_counts` adds
        such tables and :func:`fit_counts` fits one.
    """
    columns = {c: summary[c].to_numpy(dtype="float64") for c in _HISTORY}
    rows = pd.DataFrame({**columns, "customers": np.ones(len(summary), dtype="int64"), "first": summary.index})
    return _summed(rows)


def merge_counts(counts: Iterable[pd.DataFrame]) -> pd.DataFrame:
    """Return the :func:`repeat_counts` of the union of disjoint sets of customers, from the counts of each set.

    Parameters
    ----------
    counts : iterable of pandas.DataFrame
        :func:`repeat_counts` tables, e.g. one per partition of the profiles; none, or empty ones, are allowed.

    Returns
    -------
    pandas.DataFrame
        In the form of :func:`repeat_counts`: each distinct ``(x, t_x, T)`` once, with its ``customers`` summed
        and its smallest ``first`` over the tables, in the order of ``first``.
    """
    tables = [table[[*_HISTORY, "customers", "first"]] for table in counts if len(table)]
    if not tables:
        return repeat_counts(pd.DataFrame({c: [] for c in _HISTORY}, index=pd.Index([], dtype="str")))
    return _summed(pd.concat(tables, ignore_index=True))


class CountsTally:
    """:func:`repeat_counts` tables of disjoint sets of customers, added up as they come (:func:`merge_counts`).

    The tables added are merged whenever their rows outnumber those merged so far (and :data:`MERGE_ROWS`), so
    memory follows the number of distinct histories, not the number of tables (one per partition of a run), at
    a cost that stays proportional to the rows added.  Merging is exact in any grouping: :meth:`total` is
    ``merge_counts`` of every table added.
    """

    MERGE_ROWS = 100_000

    def __init__(self) -> None:
        self._tables: list[pd.DataFrame] = []
        self._merged = 0  # rows of the first table, the merge so far
        self._pending = 0  # rows added since

    def add(self, counts: pd.DataFrame) -> None:
        """Add the counts of customers not added before."""
        self._tables.append(counts)
        self._pending += len(counts)
        if self._pending > max(self._merged, self.MERGE_ROWS):
            self._tables = [merge_counts(self._tables)]
            self._merged, self._pending = len(self._tables[0]), 0

    def total(self) -> pd.DataFrame:
        """Return the counts of every customer added (:func:`merge_counts` of the tables)."""
        return merge_counts(self._tables)


def fit_counts(counts: pd.DataFrame) -> BGNBD | None:
    """Return BG/NBD fitted on :func:`repeat_counts` (or :func:`merge_counts`); None when nobody repeated.

    ``fit_counts(repeat_counts(summary))`` is ``fit_summary(summary)`` to the bit, and so is the fit of the merged
    counts of the parts of any split of the summary's rows. A fit that does not converge is said in the log and
    gives None, as in :func:`fit_summary`.
    """
    if counts.empty or not (counts["x"] > 0).any():
        return None
    try:
        return fit_bgnbd(counts["x"], counts["t_x"], counts["T"], counts["customers"].to_numpy(dtype="float64"))
    except BGNBDConvergenceError as exc:
        logger.warning("the repeat-buying model is left out: %s; its features are missing for this date", exc)
        return None


def _summed(rows: pd.DataFrame) -> pd.DataFrame:
    """Return each distinct history of ``rows`` once: its customers summed, its smallest first id, by first id."""
    grouped = rows.groupby(_HISTORY, sort=False).agg(customers=("customers", "sum"), first=("first", "min"))
    ordered = grouped.reset_index().sort_values("first", kind="stable", ignore_index=True)
    return ordered.astype(dict.fromkeys(_HISTORY, "float64") | {"customers": "int64"})


def repeat_view(
    purchases: pd.DataFrame,
    as_of: pd.Timestamp,
    profiles: pd.Index,
    window_days: float,
    *,
    model: BGNBD | None = None,
) -> pd.DataFrame | None:
    """Return BG/NBD's view of ``profiles`` at ``as_of``, fitted on every profile's purchases before it.

    The fit uses every profile in ``purchases``, not only ``profiles``, so a subset gets the same values; a
    profile without a purchase is a customer with no purchase yet (``x = t_x = T = 0``).

    Parameters
    ----------
    purchases : pandas.DataFrame
        ``profile_id`` and ``timestamp`` of the purchases: every profile's when ``model`` is not given, else at
        least those of ``profiles``.
    as_of : pandas.Timestamp
        End of the observation.
    profiles : pandas.Index
        The rows of the result.
    window_days : float
        The horizon of ``chance`` and ``expected``.
    model : BGNBD, optional
        The model fitted beforehand (:func:`fit_repeat_model` on every profile's purchases); fitted here when
        not given.

    Returns
    -------
    pandas.DataFrame or None
        Indexed like ``profiles``: ``chance`` (of at least one purchase within ``window_days``), ``expected``
        (purchases within ``window_days``) and ``alive`` (probability of still being a customer); None when no
        profile has repeated a purchase before ``as_of`` (nothing to fit).
    """
    history = repeat_summary(purchases, as_of)
    model = model if model is not None else fit_summary(history)
    return None if model is None else model.view(profile_rows(history, profiles), window_days)
