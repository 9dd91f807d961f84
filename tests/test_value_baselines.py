"""The value baselines (BG/NBD x Gamma-Gamma, last year's spend, last window's spend) and the margin over them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from customer_ai.bgnbd import fit_repeat_model, repeat_summary
from customer_ai.gamma_gamma import fit_gamma_gamma, spend_summary
from customer_ai.value_baselines import best_baseline, gini_margin, goal_amounts, spend_between, value_baselines

from conftest import make_events, make_spec, ts

T = ts("2011-06-01")
GOAL = make_spec().goal  # purchase within 30 days


def test_goal_amounts_keep_goal_events_with_missing_amounts_as_zero() -> None:
    events = make_events(
        [("a", "2011-05-10", "purchase", 60.0), ("a", "2011-05-11", "visit", 9.0), ("b", "2011-05-12", "purchase")]
    )
    amounts = goal_amounts(events, GOAL, "value")
    assert amounts["profile_id"].tolist() == ["a", "b"]
    assert amounts["value"].tolist() == [60.0, 0.0]
    assert spend_between(amounts, ts("2011-05-11"), T, pd.Index(["a", "b", "z"])).tolist() == [0.0, 0.0, 0.0]
    assert spend_between(amounts, ts("2011-05-10"), T, pd.Index(["z", "a"])).tolist() == [0.0, 60.0]


def test_last_year_and_last_window_add_up_goal_spend_before_the_date_only() -> None:
    events = make_events(
        [
            ("a", "2011-03-01", "purchase", 30.0),
            ("a", "2011-05-10", "purchase", 60.0),  # in the last 30 days
            ("a", "2011-06-01", "purchase", 500.0),  # at the as-of date: not seen
            ("b", "2011-04-15", "purchase"),  # no amount: adds nothing
            ("b", "2011-05-20", "visit", 99.0),  # not a goal event
            ("c", "2010-12-01", "purchase", 1000.0),  # before the data start: outside the year read
        ]
    )
    profiles = pd.Index(["a", "b", "c", "d"])
    got = value_baselines(events, GOAL, T, profiles, field="value", data_start=ts("2011-01-01"))
    assert list(got.columns) == ["bgnbd_gamma_gamma", "last_year", "last_window"]
    assert got.index.equals(profiles)
    # the year is cut at the data start: 151 days from 2011-01-01 to 2011-06-01
    assert got["last_year"].tolist() == [90.0 * 30 / 151, 0.0, 0.0, 0.0]
    assert got["last_window"].tolist() == [60.0, 0.0, 0.0, 0.0]
    # only a repeats a purchase: Gamma-Gamma needs two such profiles, so there is no BG/NBD x Gamma-Gamma
    assert got["bgnbd_gamma_gamma"].isna().all()


def test_a_full_year_is_365_days_and_the_window_its_own_length() -> None:
    events = make_events([("a", "2010-06-01", "purchase", 73.0), ("a", "2011-05-25", "purchase", 10.0)])
    spec = make_spec(goal={**GOAL.model_dump(), "window_days": 5})
    got = value_baselines(events, spec.goal, T, pd.Index(["a"]), field="value", data_start=ts("2009-01-01"))
    assert got["last_year"].tolist() == [83.0 * 5 / 365]
    assert got["last_window"].tolist() == [0.0]  # 2011-05-25 is 7 days back


def test_bgnbd_gamma_gamma_is_expected_purchases_times_spend_per_purchase() -> None:
    rows = []
    for number, (days, amount) in enumerate([((0, 40, 90), 20.0), ((10, 20, 30, 100), 35.0), ((5,), 50.0)]):
        rows += [(f"p{number}", ts("2011-01-01") + pd.Timedelta(days=d), "purchase", amount + d) for d in days]
    rows += [("p3", "2011-02-01", "purchase", 15.0), ("p3", "2011-05-01", "purchase", 25.0)]
    events = make_events(rows)
    profiles = pd.Index(["p0", "p1", "p2", "p3", "new"])
    got = value_baselines(events, GOAL, T, profiles, field="value", data_start=ts("2011-01-01"))
    bgnbd = fit_repeat_model(events[["profile_id", "timestamp"]], T)
    spend = spend_summary(events, T, profiles)
    gamma = fit_gamma_gamma(spend["x"].to_numpy(), spend["m_x"].to_numpy())
    summary = repeat_summary(events, T, profiles)
    x, t_x, big_t = (summary[c].to_numpy() for c in ("x", "t_x", "T"))
    expected = bgnbd.expected_purchases(30, x, t_x, big_t) * gamma.conditional_expected_average_spend(
        x, spend["m_x"].fillna(0.0).to_numpy()
    )
    assert got["bgnbd_gamma_gamma"].tolist() == expected.tolist()
    assert (got["bgnbd_gamma_gamma"] > 0).all()  # a profile never seen is a new customer, worth the mean spend


def test_the_best_baseline_ranks_spend_best_and_one_not_fitted_is_left_out() -> None:
    realised = np.array([5.0, 1.0, 0.0])
    baselines = {"up": np.array([3.0, 2.0, 1.0]), "down": np.array([1.0, 2.0, 3.0]), "none": np.full(3, np.nan)}
    assert best_baseline(baselines, realised) == "up"
    assert best_baseline({"down": baselines["down"]}, realised) == "down"
    assert best_baseline({"none": baselines["none"]}, realised) is None
    assert best_baseline(baselines, np.zeros(3)) is None  # nobody spent: no Gini


def test_the_margin_is_paired_on_each_draw() -> None:
    realised = np.array([5.0, 1.0, 0.0, 2.0])
    perfect, reversed_ = np.array([4.0, 2.0, 1.0, 3.0]), np.array([1.0, 3.0, 4.0, 2.0])
    # every draw orders its profiles as they spent (Gini 1) or the other way (-1); draws without spend are left out
    margin = gini_margin(perfect, reversed_, realised)
    assert margin == pytest.approx({"difference": 2.0, "low": 2.0, "high": 2.0}, abs=1e-12)
    assert gini_margin(perfect, perfect, realised) == {"difference": 0.0, "low": 0.0, "high": 0.0}
