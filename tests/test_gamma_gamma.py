"""Gamma-Gamma: hand-computed values, and checks against the reference implementation (lifetimes) on CDNOW."""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats

from customer_ai.bgnbd import BGNBD
from customer_ai.gamma_gamma import GammaGamma, fit_gamma_gamma, spend_summary

from conftest import cdnow_transactions, stopped_optimiser, ts

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # lifetimes imports pkg_resources, which warns about itself
    from lifetimes import GammaGammaFitter
    from lifetimes.datasets import load_cdnow_summary_data_with_monetary_value
    from lifetimes.utils import summary_data_from_transaction_data

# Both optimisers stop on the flat ridge of the likelihood (p, q and v move together): at the optimum the
# parameters agree to about 3e-5 relative, whichever starting point, gradient or unit of money, so 1e-4 leaves
# a margin of three while catching any other likelihood, data or formula.
RTOL = 1e-4


@pytest.fixture(scope="module")
def cdnow() -> pd.DataFrame:
    """The 2,357 CDNOW customers of Fader & Hardie: frequency, recency, T (weeks) and monetary_value."""
    return load_cdnow_summary_data_with_monetary_value()


@pytest.fixture(scope="module")
def reference(cdnow: pd.DataFrame) -> GammaGammaFitter:
    repeat = cdnow[cdnow["frequency"] > 0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return GammaGammaFitter(penalizer_coef=0.0).fit(repeat["frequency"], repeat["monetary_value"])


@pytest.fixture(scope="module")
def ours(cdnow: pd.DataFrame) -> GammaGamma:
    model = fit_gamma_gamma(cdnow["frequency"], cdnow["monetary_value"])  # the one-time buyers are left out
    assert model is not None
    return model


def test_conditional_expected_average_spend_by_hand() -> None:
    model = GammaGamma(p=2.0, q=3.0, v=10.0)  # population mean v * p / (q - 1) = 10
    x = np.array([0.0, 1.0, 3.0, 0.0])
    m_x = np.array([np.nan, 20.0, 4.0, 50.0])
    # x = 1: (2 / 4) * 10 + (2 / 4) * 20; x = 3: (2 / 8) * 10 + (6 / 8) * 4; x = 0: the mean, whatever m_x
    assert model.conditional_expected_average_spend(x, m_x).tolist() == [10.0, 15.0, 5.5, 10.0]
    many = model.conditional_expected_average_spend(np.array([1e9]), np.array([7.0]))[0]
    assert many == pytest.approx(7.0, rel=1e-8)  # a long history speaks for itself
    assert many != 7.0


def test_log_likelihood_is_the_density_of_the_mean_spend() -> None:
    # the mean of x spends Gamma(p, rate nu) is Gamma(p x, rate nu x); nu ~ Gamma(q, rate v): integrate nu out
    model = GammaGamma(p=2.5, q=3.5, v=12.0)
    x, m_x = np.array([1.0, 4.0, 0.0]), np.array([8.0, 3.0, np.nan])

    def density(x: float, m: float) -> float:
        def joint(nu: float) -> float:
            spend = stats.gamma.pdf(m, a=model.p * x, scale=1 / (nu * x))
            return spend * stats.gamma.pdf(nu, a=model.q, scale=1 / model.v)

        return integrate.quad(joint, 0, np.inf, epsabs=0, epsrel=1e-12)[0]

    expected = [np.log(density(1.0, 8.0)), np.log(density(4.0, 3.0)), 0.0]  # no repeat: nothing to explain
    np.testing.assert_allclose(model.log_likelihood(x, m_x), expected, rtol=1e-9)


def test_fit_matches_lifetimes_and_its_published_estimates(ours: GammaGamma, reference: GammaGammaFitter) -> None:
    theirs = reference.params_
    assert ours.p == pytest.approx(theirs["p"], rel=RTOL)
    assert ours.q == pytest.approx(theirs["q"], rel=RTOL)
    assert ours.v == pytest.approx(theirs["v"], rel=RTOL)
    # lifetimes' README: "fitted with 946 subjects, p: 6.25, q: 3.74, v: 15.45"
    assert (round(ours.p, 2), round(ours.q, 2), round(ours.v, 2)) == (6.25, 3.74, 15.45)


def test_log_likelihood_matches_lifetimes(ours: GammaGamma, cdnow: pd.DataFrame) -> None:
    x, m_x = cdnow["frequency"].to_numpy(dtype="float64"), cdnow["monetary_value"].to_numpy(dtype="float64")
    repeat = x > 0
    total = ours.log_likelihood(x, m_x).sum()
    params = np.log([ours.p, ours.q, ours.v])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nll = GammaGammaFitter._negative_log_likelihood(params, x[repeat], m_x[repeat], np.ones(repeat.sum()), 0.0)
    assert total == pytest.approx(-nll * repeat.sum(), rel=1e-12)
    assert repeat.sum() == 946


def test_conditional_expected_average_spend_matches_lifetimes(
    ours: GammaGamma, reference: GammaGammaFitter, cdnow: pd.DataFrame
) -> None:
    x, m_x = cdnow["frequency"].to_numpy(dtype="float64"), cdnow["monetary_value"].to_numpy(dtype="float64")
    theirs = reference.conditional_expected_average_profit(x, m_x)  # m_x = 0 (lifetimes' NaN) where x = 0
    np.testing.assert_allclose(ours.conditional_expected_average_spend(x, m_x), theirs, rtol=RTOL)
    # and with the same parameters, to the rounding
    same = GammaGamma(**{k: float(v) for k, v in reference.params_.items()})
    np.testing.assert_allclose(same.conditional_expected_average_spend(x, np.where(x > 0, m_x, np.nan)), theirs)


def test_the_fit_does_not_depend_on_the_unit_of_money(ours: GammaGamma, cdnow: pd.DataFrame) -> None:
    # v is a rate of money: in cents (or a currency of large numbers) it is 100 (1e5) times larger, beyond the
    # bounds on log-parameters if they were searched in the data's unit
    for unit in (100.0, 1e5):
        model = fit_gamma_gamma(cdnow["frequency"], cdnow["monetary_value"] * unit)
        assert model is not None
        assert (model.p, model.q, model.v / unit) == pytest.approx((ours.p, ours.q, ours.v), rel=RTOL)


def test_expected_value_is_expected_purchases_times_expected_spend() -> None:
    spend, repeats = GammaGamma(p=2.0, q=3.0, v=10.0), BGNBD(r=0.25, alpha=4.0, a=0.8, b=2.5)
    x, t_x, big_t = np.array([0.0, 1.0, 3.0]), np.array([0.0, 20.0, 60.0]), np.array([5.0, 40.0, 90.0])
    m_x = np.array([np.nan, 20.0, 4.0])  # as spend_summary gives it: no mean without a repeat
    value = spend.expected_value(repeats, 30.0, x, t_x, big_t, m_x=m_x)
    purchases = repeats.expected_purchases(30.0, x, t_x, big_t)
    np.testing.assert_array_equal(value, purchases * np.array([10.0, 15.0, 5.5]))
    assert np.all(np.isfinite(value))  # the NaN mean of a customer without a repeat is not used
    assert np.all(value > 0)


def test_spend_summary_sums_each_day_and_leaves_out_the_first_day_and_the_as_of_date() -> None:
    purchases = pd.DataFrame(
        {
            "profile_id": ["a", "a", "a", "a", "a", "b", "c", "c", "c"],
            "timestamp": [
                ts("2011-01-01 10:00"),
                ts("2011-01-01 23:00"),  # the first day, both orders: left out
                ts("2011-01-03 09:00"),
                ts("2011-01-03 20:00"),  # the same day: one purchase of 10 + 4
                ts("2011-01-07 00:00"),
                ts("2011-01-02 12:00"),  # a one-time buyer
                ts("2011-01-04 08:00"),
                ts("2011-01-09 23:59"),
                ts("2011-01-10 00:00"),  # at the as-of date: not seen
            ],
            "value": [5.0, 7.0, 10.0, 4.0, 8.0, 30.0, 6.0, 9.0, 100.0],
        }
    )
    as_of = ts("2011-01-10")
    summary = spend_summary(purchases, as_of, pd.Index(["a", "b", "c", "d"]))
    assert list(summary.columns) == ["x", "m_x"]
    assert summary["x"].tolist() == [2.0, 0.0, 1.0, 0.0]
    assert summary.loc[["a", "c"], "m_x"].tolist() == [11.0, 9.0]  # (14 + 8) / 2, and 9 without the 100
    assert summary.loc[["b", "d"], "m_x"].isna().all()
    # lifetimes' period end is inclusive: the day before our half-open as-of date
    naive = purchases.assign(timestamp=purchases["timestamp"].dt.tz_localize(None))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = summary_data_from_transaction_data(
            naive, "profile_id", "timestamp", monetary_value_col="value", observation_period_end="2011-01-09", freq="D"
        ).sort_index()
    everyone = spend_summary(purchases, as_of)
    assert list(everyone.index) == list(theirs.index) == ["a", "b", "c"]
    assert everyone["x"].tolist() == theirs["frequency"].tolist()
    assert everyone["m_x"].fillna(0.0).tolist() == theirs["monetary_value"].tolist()  # lifetimes writes 0 for NaN


def test_spend_summary_matches_lifetimes_on_the_cdnow_transactions() -> None:
    raw = cdnow_transactions()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = summary_data_from_transaction_data(
            raw, "customer_id", "date", monetary_value_col="amount", observation_period_end="1997-09-30", freq="D"
        ).sort_index()
    purchases = pd.DataFrame(
        {"profile_id": raw["customer_id"], "timestamp": raw["date"].dt.tz_localize("UTC"), "value": raw["amount"]}
    )
    ours = spend_summary(purchases, ts("1997-10-01"))
    assert list(ours.index) == list(theirs.index)
    assert (ours["x"] > 0).sum() > 1000  # enough repeat buyers for the comparison to mean something
    np.testing.assert_array_equal(ours["x"].to_numpy(), theirs["frequency"].to_numpy())
    # the same sums of cents, added in another order
    np.testing.assert_allclose(ours["m_x"].fillna(0.0).to_numpy(), theirs["monetary_value"].to_numpy(), rtol=1e-12)


def test_fit_needs_two_customers_with_a_repeat_of_positive_value() -> None:
    assert fit_gamma_gamma(np.array([]), np.array([])) is None
    # one repeat buyer; the others bought once, spent nothing or have no value
    assert fit_gamma_gamma(np.array([2.0, 0.0, 1.0, 3.0]), np.array([10.0, np.nan, 0.0, np.nan])) is None
    assert fit_gamma_gamma(np.array([2.0, 0.0, 1.0, 3.0]), np.array([10.0, np.nan, 5.0, np.nan])) is not None


def test_a_fit_without_a_mean_spend_is_said_and_left_out(caplog: pytest.LogCaptureFixture) -> None:
    # customers' mean spends 3 / nu with nu ~ Gamma(q = 0.8): too heavy-tailed across customers to have a mean
    rng = np.random.default_rng(1)
    x = 1 + rng.poisson(2.0, 3000)
    nu = rng.gamma(0.8, 1 / 10.0, 3000)
    m_x = np.array([rng.gamma(3.0, 1 / rate, n).mean() for rate, n in zip(nu, x, strict=True)])
    with caplog.at_level(logging.WARNING, logger="customer_ai"):
        assert fit_gamma_gamma(x, m_x) is None
    assert "the monetary-value model is left out: Gamma-Gamma fitted q = 0.7" in caplog.text
    # the same customers with q = 3 have a mean, and the fit finds it
    m_x = np.array(
        [rng.gamma(3.0, 1 / rate, n).mean() for rate, n in zip(rng.gamma(3.0, 1 / 10.0, 3000), x, strict=True)]
    )
    model = fit_gamma_gamma(x, m_x)
    assert model is not None
    assert (model.p, model.q, model.v) == pytest.approx((3.0, 3.0, 10.0), rel=0.15)


def test_a_fit_that_does_not_converge_is_said_and_left_out(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from customer_ai import gamma_gamma

    monkeypatch.setattr(gamma_gamma, "minimize", stopped_optimiser(3))
    with caplog.at_level(logging.WARNING, logger="customer_ai"):
        assert fit_gamma_gamma(np.array([1.0, 2.0]), np.array([10.0, 20.0])) is None
    assert "Gamma-Gamma did not converge: ABNORMAL_TERMINATION_IN_LNSRCH (after 7 iterations)" in caplog.text
