"""BG/NBD: checked against the reference implementation (lifetimes) and the published estimates, on CDNOW."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.special import betaln, gammaln

from customer_ai.bgnbd import (
    BGNBD,
    BGNBDConvergenceError,
    CountsTally,
    _Histories,
    fit_bgnbd,
    fit_counts,
    fit_repeat_model,
    fit_summary,
    merge_counts,
    profile_rows,
    repeat_counts,
    repeat_summary,
    repeat_view,
)

from conftest import cdnow_transactions, stopped_optimiser, ts

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # lifetimes imports pkg_resources, which warns about itself
    from lifetimes import BetaGeoFitter
    from lifetimes.datasets import load_cdnow_summary
    from lifetimes.utils import summary_data_from_transaction_data


@pytest.fixture(scope="module")
def cdnow_summary() -> pd.DataFrame:
    """The 2,357 customers of Fader, Hardie & Lee (2005): frequency, recency and T in weeks."""
    return load_cdnow_summary(index_col=[0])


@pytest.fixture(scope="module")
def reference(cdnow_summary: pd.DataFrame) -> BetaGeoFitter:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return BetaGeoFitter(penalizer_coef=0.0).fit(
            cdnow_summary["frequency"], cdnow_summary["recency"], cdnow_summary["T"]
        )


@pytest.fixture(scope="module")
def ours(cdnow_summary: pd.DataFrame) -> BGNBD:
    return fit_bgnbd(cdnow_summary["frequency"], cdnow_summary["recency"], cdnow_summary["T"])


def test_fit_matches_lifetimes_and_the_published_estimates(ours: BGNBD, reference: BetaGeoFitter) -> None:
    theirs = reference.params_
    assert ours.r == pytest.approx(theirs["r"], rel=1e-3)
    assert ours.alpha == pytest.approx(theirs["alpha"], rel=1e-3)
    assert ours.a == pytest.approx(theirs["a"], rel=1e-3)
    assert ours.b == pytest.approx(theirs["b"], rel=1e-3)
    # Fader, Hardie & Lee (2005), section 5: r = 0.243, alpha = 4.414, a = 0.793, b = 2.426
    assert (round(ours.r, 3), round(ours.alpha, 3), round(ours.a, 3), round(ours.b, 3)) == (0.243, 4.414, 0.793, 2.426)


def test_log_likelihood_matches_lifetimes(ours: BGNBD, cdnow_summary: pd.DataFrame) -> None:
    x, t_x, big_t = (cdnow_summary[c].to_numpy(dtype="float64") for c in ("frequency", "recency", "T"))
    total = ours.log_likelihood(x, t_x, big_t).sum()
    params = np.log([ours.r, ours.alpha, ours.a, ours.b])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = -BetaGeoFitter._negative_log_likelihood(params, x, t_x, big_t, np.ones_like(x), 0.0) * len(x)
    assert total == pytest.approx(theirs, rel=1e-9)
    assert total == pytest.approx(-9582.4, abs=0.1)  # the paper's maximised log-likelihood


def test_conditional_predictions_match_lifetimes(ours: BGNBD, reference: BetaGeoFitter, cdnow_summary) -> None:
    x, t_x, big_t = (cdnow_summary[c].to_numpy(dtype="float64") for c in ("frequency", "recency", "T"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = reference.conditional_expected_number_of_purchases_up_to_time(39, x, t_x, big_t)
        alive = reference.conditional_probability_alive(x, t_x, big_t)
    np.testing.assert_allclose(ours.expected_purchases(39, x, t_x, big_t), expected, rtol=2e-4)
    np.testing.assert_allclose(ours.probability_alive(x, t_x, big_t), alive, rtol=2e-4)


def test_a_new_customers_chance_of_buying_matches_the_unconditional_model(reference: BetaGeoFitter) -> None:
    # with no history (x = t_x = T = 0) the conditional P(no purchase in t) is the model's P(X(t) = 0)
    ours = BGNBD(**{k: float(v) for k, v in reference.params_.items()})
    for t in (1.0, 10.0, 52.0):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            none = reference.probability_of_n_purchases_up_to_time(t, 0)
        assert ours.probability_of_purchase(t, np.zeros(1), np.zeros(1), np.zeros(1))[0] == pytest.approx(1 - none)


def test_chance_of_buying_is_bounded_by_being_alive_and_by_the_expected_count(ours: BGNBD, cdnow_summary) -> None:
    x, t_x, big_t = (cdnow_summary[c].to_numpy(dtype="float64") for c in ("frequency", "recency", "T"))
    chance = ours.probability_of_purchase(13, x, t_x, big_t)
    assert np.all(chance >= 0)
    assert np.all(chance <= ours.probability_alive(x, t_x, big_t) + 1e-12)
    assert np.all(chance <= ours.expected_purchases(13, x, t_x, big_t) + 1e-12)


def test_repeat_summary_matches_lifetimes_on_the_cdnow_transactions() -> None:
    raw = cdnow_transactions()
    end = pd.Timestamp("1997-09-30")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = summary_data_from_transaction_data(
            raw, "customer_id", "date", observation_period_end=end, freq="D"
        ).sort_index()
    purchases = pd.DataFrame({"profile_id": raw["customer_id"], "timestamp": raw["date"].dt.tz_localize("UTC")})
    # lifetimes' period end is inclusive; ours is the half-open as-of date one day later
    summary = repeat_summary(purchases, ts("1997-10-01"))
    assert len(summary) == len(theirs) == raw.loc[raw["date"] <= end, "customer_id"].nunique()
    np.testing.assert_array_equal(summary["x"].to_numpy(), theirs["frequency"].to_numpy())
    np.testing.assert_array_equal(summary["t_x"].to_numpy(), theirs["recency"].to_numpy())
    np.testing.assert_array_equal(summary["T"].to_numpy(), theirs["T"].to_numpy() + 1)


def test_repeat_summary_counts_purchase_days_before_the_as_of_date() -> None:
    purchases = pd.DataFrame(
        {
            "profile_id": ["a", "a", "a", "b", "b"],
            "timestamp": [
                ts("2011-01-01 10:00"),
                ts("2011-01-01 18:00"),  # the same day: one purchase day
                ts("2011-01-05 00:00"),
                ts("2011-01-09 23:59"),
                ts("2011-01-10 00:00"),  # at the as-of date: not seen
            ],
        }
    )
    summary = repeat_summary(purchases, ts("2011-01-10"), pd.Index(["a", "b", "c"]))
    assert summary.to_dict("index") == {
        "a": {"x": 1.0, "t_x": 4.0, "T": 9.0},
        "b": {"x": 0.0, "t_x": 0.0, "T": 1.0},
        "c": {"x": 0.0, "t_x": 0.0, "T": 0.0},
    }


def test_repeat_summary_sorts_profiles_takes_integer_codes_and_any_time_unit() -> None:
    stamps = pd.Series([ts("2011-01-03 05:00"), ts("2011-01-01 23:00"), ts("2011-01-01 01:00"), ts("2011-01-02")])
    for unit in ("ns", "us", "s"):
        purchases = pd.DataFrame({"profile_id": [7, 3, 7, 3], "timestamp": stamps.dt.as_unit(unit)})
        summary = repeat_summary(purchases, ts("2011-01-05 12:00"))
        assert list(summary.index) == [3, 7]  # sorted ids, whatever the order of the events
        assert summary.to_dict("index") == {
            3: {"x": 1.0, "t_x": 1.0, "T": 4.5},  # Jan 1 and Jan 2 (at midnight: its own day)
            7: {"x": 1.0, "t_x": 2.0, "T": 4.5},
        }
    empty = repeat_summary(purchases.iloc[:0], ts("2011-01-05"), pd.Index([3]))
    assert empty.to_dict("index") == {3: {"x": 0.0, "t_x": 0.0, "T": 0.0}}


def test_profile_rows_of_everyone_are_the_summary_of_those_profiles() -> None:
    purchases = pd.DataFrame(
        {
            "profile_id": ["b", "a", "b", "c", "a"],
            "timestamp": [ts(d) for d in ("2011-01-02", "2011-01-01", "2011-01-09", "2011-01-04", "2011-01-06")],
        }
    )
    everyone = repeat_summary(purchases, ts("2011-01-10"))
    wanted = pd.Index(["c", "z", "a"])
    pd.testing.assert_frame_equal(
        profile_rows(everyone, wanted), repeat_summary(purchases, ts("2011-01-10"), wanted), check_exact=True
    )
    assert profile_rows(everyone, wanted).loc["z"].tolist() == [0.0, 0.0, 0.0]


def test_fit_summary_and_view_are_fit_repeat_model_and_repeat_view() -> None:
    purchases = pd.DataFrame(
        {
            "profile_id": ["a", "a", "a", "b", "c", "c"],
            "timestamp": [
                ts(d) for d in ("2011-01-01", "2011-02-01", "2011-03-01", "2011-02-10", "2011-01-05", "2011-03-20")
            ],
        }
    )
    as_of, wanted = ts("2011-04-01"), pd.Index(["c", "d"])
    model = fit_summary(repeat_summary(purchases, as_of))
    assert model == fit_repeat_model(purchases, as_of)
    view = model.view(repeat_summary(purchases, as_of, wanted), 30)
    pd.testing.assert_frame_equal(view, repeat_view(purchases, as_of, wanted, 30), check_exact=True)
    assert view.loc["d", "alive"] == 1.0  # no purchase yet: a new customer
    assert view.loc["d", "chance"] == pytest.approx(model.probability_of_purchase(30, [0.0], [0.0], [0.0])[0])
    assert fit_summary(repeat_summary(purchases.iloc[[0, 3]], as_of)) is None  # nobody repeated


def test_a_fit_that_does_not_converge_is_said_and_left_out(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # before: only a fit whose loss was not finite raised; one the optimiser merely stopped at passed silently
    from customer_ai import bgnbd

    monkeypatch.setattr(bgnbd, "minimize", stopped_optimiser(4))
    with pytest.raises(
        BGNBDConvergenceError, match=r"^BG/NBD did not converge: ABNORMAL_TERMINATION_IN_LNSRCH \(after 7 iterations\)$"
    ):
        fit_bgnbd(np.array([1.0, 0.0]), np.array([5.0, 0.0]), np.array([10.0, 10.0]))
    summary = pd.DataFrame({"x": [1.0, 0.0], "t_x": [5.0, 0.0], "T": [10.0, 10.0]}, index=["a", "b"])
    assert fit_summary(summary) is None
    assert "the repeat-buying model is left out: BG/NBD did not converge: ABNORMAL_TERMINATION_IN_LNSRCH" in caplog.text


def test_fit_refuses_no_customers() -> None:
    with pytest.raises(ValueError, match="at least one customer"):
        fit_bgnbd(np.array([]), np.array([]), np.array([]))


def test_repeat_view_fits_on_everyone_and_needs_a_repeat() -> None:
    purchases = pd.DataFrame(
        {
            "profile_id": ["a", "a", "a", "b", "c", "c"],
            "timestamp": [
                ts(d) for d in ("2011-01-01", "2011-02-01", "2011-03-01", "2011-02-10", "2011-01-05", "2011-03-20")
            ],
        }
    )
    view = repeat_view(purchases, ts("2011-04-01"), pd.Index(["a", "b", "d"]), 30)
    assert list(view.columns) == ["chance", "expected", "alive"]
    assert list(view.index) == ["a", "b", "d"]
    alone = repeat_view(purchases, ts("2011-04-01"), pd.Index(["b"]), 30)
    assert alone.loc["b", "chance"] == pytest.approx(view.loc["b", "chance"], rel=1e-12)  # the fit uses everyone
    assert view.loc["d", "alive"] == 1.0  # no purchase yet: a new customer
    assert repeat_view(purchases.iloc[[0, 3]], ts("2011-04-01"), pd.Index(["a"]), 30) is None  # nobody repeated


def test_likelihood_by_distinct_values_is_the_elementwise_one_to_the_bit():
    rng = np.random.default_rng(3)
    x = rng.integers(0, 12, 500).astype("float64")
    T = rng.integers(1, 365, 500).astype("float64")  # noqa: N806
    t_x = np.where(x > 0, np.floor(T * rng.random(500)), 0.0)
    for r, alpha, a, b in rng.uniform(0.05, 40.0, (20, 4)):
        survived = betaln(a, b + x) - (r + x) * np.log(alpha + T)
        dropped = np.full_like(x, -np.inf)
        repeat = x > 0
        dropped[repeat] = betaln(a + 1, b + x[repeat] - 1) - (r + x[repeat]) * np.log(alpha + t_x[repeat])
        elementwise = gammaln(r + x) - gammaln(r) + r * np.log(alpha) - betaln(a, b) + np.logaddexp(survived, dropped)
        assert np.array_equal(_Histories(x, t_x, T).log_likelihood(np.array([r, alpha, a, b])), elementwise)


def _counts(rows: list[tuple[float, float, float, int, str]]) -> pd.DataFrame:
    """A repeat_counts table written out: (x, t_x, T, customers, first) per row."""
    frame = pd.DataFrame(rows, columns=["x", "t_x", "T", "customers", "first"])
    return frame.astype({"x": "float64", "t_x": "float64", "T": "float64", "customers": "int64", "first": "str"})


@pytest.fixture(scope="module")
def simulated() -> tuple[pd.DataFrame, pd.Timestamp]:
    """Purchases of 3,000 profiles drawn from BG/NBD (r = 0.6, alpha = 15 days, a = 0.8, b = 2.5) over a year."""
    rng = np.random.default_rng(7)
    n, origin, horizon = 3000, ts("2011-01-01"), 365.0
    rate, drop = rng.gamma(0.6, 1 / 15.0, n), rng.beta(0.8, 2.5, n)
    when = rng.uniform(0.0, horizon, n)  # the first purchase
    alive = np.ones(n, dtype=bool)
    profiles, days = [np.arange(n)], [when]
    for _ in range(80):
        alive &= rng.random(n) >= drop  # after each purchase the customer may leave for good
        when = when + rng.exponential(1 / rate)
        buys = alive & (when < horizon)
        profiles.append(np.flatnonzero(buys))
        days.append(when[buys])
    ids = np.char.add("p", np.concatenate(profiles).astype(str))
    purchases = pd.DataFrame({"profile_id": ids, "timestamp": origin + pd.to_timedelta(np.concatenate(days), "D")})
    return purchases.sample(frac=1.0, random_state=1, ignore_index=True), origin + pd.Timedelta(days=horizon)


def test_repeat_counts_are_the_customers_of_each_distinct_history_by_its_first_profile() -> None:
    summary = pd.DataFrame(
        {
            "x": [2.0, 0.0, 2.0, 1.0, 0.0, 0.0],
            "t_x": [30.0, 0.0, 30.0, 4.0, 0.0, 0.0],
            "T": [40.0, 9.0, 40.0, 40.0, 12.0, 9.0],
        },
        index=pd.Index(["f", "e", "d", "c", "b", "a"], name="profile_id"),
    )
    expected = _counts(
        [(0.0, 0.0, 9.0, 2, "a"), (0.0, 0.0, 12.0, 1, "b"), (1.0, 4.0, 40.0, 1, "c"), (2.0, 30.0, 40.0, 2, "d")]
    )
    pd.testing.assert_frame_equal(repeat_counts(summary), expected, check_exact=True)
    pd.testing.assert_frame_equal(repeat_counts(summary.iloc[::-1]), expected, check_exact=True)
    early = summary.rename(index={"f": "0"})  # the history of "f" now comes first
    assert repeat_counts(early)[["x", "first"]].values.tolist() == [[2.0, "0"], [0.0, "a"], [0.0, "b"], [1.0, "c"]]


def test_merge_counts_adds_the_customers_of_each_history_and_keeps_its_first_profile() -> None:
    first = _counts([(0.0, 0.0, 9.0, 2, "b"), (1.0, 4.0, 40.0, 1, "k")])
    second = _counts([(0.0, 0.0, 3.0, 5, "a"), (1.0, 4.0, 40.0, 3, "c"), (2.0, 30.0, 40.0, 1, "z")])
    expected = _counts(
        [(0.0, 0.0, 3.0, 5, "a"), (0.0, 0.0, 9.0, 2, "b"), (1.0, 4.0, 40.0, 4, "c"), (2.0, 30.0, 40.0, 1, "z")]
    )
    pd.testing.assert_frame_equal(merge_counts([first, second]), expected, check_exact=True)
    pd.testing.assert_frame_equal(merge_counts(iter([second, first])), expected, check_exact=True)


@pytest.mark.parametrize("merge_rows", [1, 2, 100_000])
def test_a_tally_merged_along_the_way_is_the_merge_of_every_table(monkeypatch, merge_rows: int) -> None:
    monkeypatch.setattr(CountsTally, "MERGE_ROWS", merge_rows)
    rng = np.random.default_rng(3)
    tables = []
    for part in range(12):
        histories = rng.integers(0, 4, size=(rng.integers(0, 6), 3)).astype("float64")
        rows = [(x, t, t + T, int(rng.integers(1, 4)), f"p{part:02d}-{k}") for k, (x, t, T) in enumerate(histories)]
        tables.append(_counts(rows))
    tally, merges = CountsTally(), []
    for table in tables:
        tally.add(table)
        merges.append(len(tally._tables))
    pd.testing.assert_frame_equal(tally.total(), merge_counts(tables), check_exact=True)
    if merge_rows == 100_000:
        assert merges == list(range(1, 13))  # small tables are kept until the end
    else:  # merged along the way
        assert any(later < earlier for earlier, later in zip(merges, merges[1:], strict=False))
    assert CountsTally().total().empty


def test_merge_counts_of_nothing_is_an_empty_table_of_counts() -> None:
    empty = _counts([])
    pd.testing.assert_frame_equal(merge_counts([]), empty, check_exact=True)
    pd.testing.assert_frame_equal(merge_counts([empty, empty]), empty, check_exact=True)
    only = _counts([(1.0, 4.0, 40.0, 3, "p")])
    pd.testing.assert_frame_equal(merge_counts([empty, only]), only, check_exact=True)
    assert fit_counts(merge_counts([])) is None
    assert fit_counts(_counts([(0.0, 0.0, 9.0, 4, "p")])) is None  # nobody repeated


def test_fit_of_merged_partition_counts_is_the_fit_of_everyone_to_the_bit(simulated) -> None:
    purchases, as_of = simulated
    whole = fit_repeat_model(purchases, as_of)
    summary = repeat_summary(purchases, as_of)
    assert whole is not None
    assert whole == fit_summary(summary) == fit_counts(repeat_counts(summary))
    assert whole == fit_bgnbd(summary["x"], summary["t_x"], summary["T"])
    hashed = pd.util.hash_array(purchases["profile_id"].to_numpy()) % 3
    once = repeat_summary(purchases, as_of)
    never = once.index[once["x"] == 0]  # a part without a repeat buyer
    rest = ~purchases["profile_id"].isin(never).to_numpy()
    splits = {
        "by hash": [hashed == part for part in range(3)],
        "with a part of one-time buyers and an empty one": [
            ~rest,
            rest & (hashed == 0),
            rest & (hashed != 0),
            np.zeros(len(purchases), dtype=bool),
        ],
    }
    for name, masks in splits.items():
        parts = [repeat_summary(purchases[mask], as_of) for mask in masks]  # each partition on its own
        assert sum(len(part) for part in parts) == len(summary), name
        merged = merge_counts(repeat_counts(part) for part in parts)
        pd.testing.assert_frame_equal(merged, repeat_counts(summary), check_exact=True)
        assert fit_counts(merged) == whole, name
    assert fit_counts(repeat_counts(repeat_summary(purchases[~rest], as_of))) is None


def test_the_fit_takes_the_histories_in_the_order_of_their_first_profiles(simulated) -> None:
    purchases, as_of = simulated
    summary = repeat_summary(purchases, as_of)
    whole = fit_summary(summary)
    shuffled = summary.sample(frac=1.0, random_state=5)
    assert fit_counts(repeat_counts(shuffled)) == whole  # the counts know each history's first profile
    # the likelihood's sum is taken in that order: another order of the same histories is another sum
    backward = summary.iloc[::-1]
    assert fit_bgnbd(backward["x"], backward["t_x"], backward["T"]) != whole


def test_purchase_timing_is_the_curve_of_probability_of_purchase(ours: BGNBD, cdnow_summary: pd.DataFrame) -> None:
    x, t_x, big_t = (cdnow_summary[c].to_numpy(dtype="float64") for c in ("frequency", "recency", "T"))
    horizon = 52.0  # weeks, as the summary's
    mean, median = ours.purchase_timing(horizon, x, t_x, big_t)
    # the area under 1 - P(a purchase within t) by the trapezoid rule on a fine grid
    fine = np.linspace(0.0, horizon, 20001)
    chance = np.stack([ours.probability_of_purchase(t, x, t_x, big_t) for t in fine], axis=1)
    area = (fine[1] - fine[0]) * ((1 - chance[:, 1:]) + (1 - chance[:, :-1])).sum(axis=1) / 2
    np.testing.assert_allclose(mean, area, rtol=1e-6)  # the trapezoid rule's own error is below that
    # where a median is given the chance there is one half; elsewhere even odds are not reached within the horizon
    given = np.isfinite(median)
    assert 0 < given.sum() < len(x)
    at_median = ours.probability_of_purchase(median[given], x[given], t_x[given], big_t[given])
    np.testing.assert_allclose(at_median, 0.5, rtol=1e-9)
    assert (ours.probability_of_purchase(horizon, x[~given], t_x[~given], big_t[~given]) < 0.5 + 1e-12).all()


def test_purchase_timing_of_a_shape_of_one_and_of_a_customer_likelier_dead_than_alive() -> None:
    model = BGNBD(r=1.0, alpha=10.0, a=0.5, b=2.0)
    mean, median = model.purchase_timing(30.0, np.array([0.0]), np.array([0.0]), np.array([0.0]))
    # new customer: alive for sure, P(none within t) = 10 / (10 + t): area 10 log(4), median 10 days
    assert mean[0] == pytest.approx(10 * np.log(4.0), rel=1e-12)
    assert median[0] == pytest.approx(10.0, rel=1e-12)
    # bought twice long ago: P(alive) below one half, so no median whatever the horizon
    x, t_x, big_t = np.array([2.0]), np.array([5.0]), np.array([400.0])
    assert model.probability_alive(x, t_x, big_t)[0] < 0.5
    assert model.purchase_timing(1e6, x, t_x, big_t)[1][0] == np.inf
