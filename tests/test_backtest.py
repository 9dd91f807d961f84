"""Back-tests: baselines' inputs, the open-window guard and the Markdown table."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from customer_ai.backtest import (
    GoalWindowOpenError,
    backtest,
    baseline_signals,
    format_markdown,
    held_out_value_baselines,
    spend_moved,
)
from customer_ai.bgnbd import fit_bgnbd, fit_repeat_model, repeat_summary
from customer_ai.estimator import PropensityModel
from customer_ai.events import EventsError, canonicalize
from customer_ai.history import run_window
from customer_ai.outcome_metrics import concordance, normalised_gini
from customer_ai.value_baselines import value_baselines
from customer_ai.value_model import value_verdict

from conftest import BASE_SPEC, make_events, make_spec, ts

T = ts("2011-06-01")


def test_baseline_signals_use_goal_events_before_the_as_of_date_only() -> None:
    events = make_events(
        [
            ("a", "2011-05-22", "purchase"),
            ("a", "2011-05-29", "purchase"),
            ("a", "2011-06-01", "purchase"),  # at T: not seen
            ("b", "2010-04-27", "purchase"),  # 400 days before T: outside the lookback
            ("c", "2011-05-31", "visit"),  # not a goal event
        ]
    )
    signals = baseline_signals(events, make_spec(), T, pd.Index(["a", "b", "c"]))
    assert signals["recency"].tolist() == pytest.approx([-math.log1p(3), -math.log1p(366), -math.log1p(366)])
    assert signals["frequency"].tolist() == pytest.approx([math.log1p(2), 0.0, 0.0])
    # BG/NBD sees every goal event before T (b's purchase 400 days ago too), fitted on all of them
    history = repeat_summary(events.loc[events["event_type"] == "purchase"], T)
    model = fit_bgnbd(history["x"], history["t_x"], history["T"])
    summary = repeat_summary(events.loc[events["event_type"] == "purchase"], T, pd.Index(["a", "b", "c"]))
    chance = model.probability_of_purchase(30, summary["x"], summary["t_x"], summary["T"])
    assert signals["bgnbd"].tolist() == pytest.approx(np.log(chance / (1 - chance)).tolist())


def test_backtest_refuses_a_date_whose_goal_window_is_still_open() -> None:
    events = make_events([("a", "2011-05-01", "purchase"), ("a", "2011-06-20", "purchase")])
    with pytest.raises(GoalWindowOpenError, match="its goal window ends 2011-07-01 but the events end 2011-06-20"):
        backtest(make_spec(), events, T)


def test_format_markdown_has_a_row_per_date_and_scorer() -> None:
    metrics = {
        "roc_auc": 0.75,
        "pr_auc": 0.5,
        "log_loss": 0.5,
        "brier": 0.2,
        "calibration_error": 0.01,
        "top_decile_lift": 2.5,
        "positive_rate": 0.3,
        "mean_probability": 0.31,
        "calibration_error_floor": 0.008,
    }
    gain = {"difference": 0.05, "low": 0.01, "high": 0.09}
    results = [
        {
            "as_of": "2011-09-01",
            "eligible": 1234,
            "model": metrics,
            "recency": metrics,
            "frequency": metrics,
            "bgnbd": metrics,
            "model_vs": {"recency": gain, "frequency": gain, "bgnbd": gain},
            "history": {"training": ["a", "b"], "every_days": 19, "lookback_days": 238, "notes": ["adapted"]},
            "base_rate": {"validation_window": 0.25, "outcome_window": 0.3},
            "boosting_start": "constant",
        }
    ]
    results[0]["model"] = {**metrics, "calibration_error_level_known": 0.004}
    table = format_markdown(make_spec(), results)
    lines = table.splitlines()
    assert lines[0] == "### unit: purchase occurs within 30 days"
    assert lines[4] == (
        "| 2011-09-01 | **model** | 1,234 | 0.750 | 0.500 | 0.500 | 0.200 | 0.010 | 0.008 | 2.50 | 0.300 | 0.310 |"
    )
    assert [line.split(" | ")[1] for line in lines[4:8]] == [
        "**model**",
        "baseline: recency",
        "baseline: frequency",
        "baseline: BG/NBD",
    ]
    assert lines[-5] == (
        "- 2011-09-01: recency +0.050 [+0.010, +0.090], frequency +0.050 [+0.010, +0.090], "
        "BG/NBD +0.050 [+0.010, +0.090]"
    )
    assert lines[-1] == (
        "- 2011-09-01: 2 training snapshots 19 days apart, features looking back 238 days (adapted to the "
        "history), boosted from a constant; base rate 0.250 in the calibration window, 0.300 in the outcome "
        "window; calibration error 0.010, 0.004 once the base rate is known"
    )
    single = {**results[0], "history": {"training": [], "every_days": 30, "lookback_days": 31, "notes": ["short"]}}
    single["history"].update(single_period=True, validation="2000-12-02")
    said = format_markdown(make_spec(), [single]).splitlines()[-1]
    assert said.startswith(
        "- 2011-09-01: one period (2000-12-02: parts for fitting, calibration and evaluation), features "
        "reading the whole history counted per 31 days, boosted from a constant; "
    )


def test_backtest_scores_every_eligible_profile_against_real_outcomes() -> None:
    rng = np.random.default_rng(3)
    rows = []
    for customer in range(300):
        rate = rng.gamma(0.8, 1 / 30)
        for day in np.sort(rng.uniform(0, 540, size=rng.poisson(rate * 540))):
            rows.append((f"c{customer}", ts("2010-01-01") + pd.Timedelta(days=float(day)), "purchase", 10.0))
    events = make_events(rows)
    spec = make_spec(training={"snapshots": 4, "min_positives": 20, "min_negatives": 20})
    as_of = ts("2011-05-01")
    result = backtest(spec, events, as_of)
    eligible = events[(events.timestamp < as_of) & (events.timestamp >= as_of - pd.Timedelta(days=365))]
    assert result["eligible"] == eligible["profile_id"].nunique()
    assert set(result) == {
        "as_of",
        "eligible",
        "history",
        "validation",
        "boosting_start",
        "base_rate",
        "model",
        "recency",
        "frequency",
        "bgnbd",
        "model_vs",
    }
    gain = result["model_vs"]["recency"]
    assert gain["low"] <= gain["difference"] <= gain["high"]
    assert gain["difference"] == pytest.approx(result["model"]["roc_auc"] - result["recency"]["roc_auc"])
    assert result["model"]["n"] == result["recency"]["n"] == result["bgnbd"]["n"] == result["eligible"]
    assert result["model"]["roc_auc"] > 0.6
    assert result["base_rate"]["outcome_window"] == pytest.approx(result["model"]["positive_rate"])
    assert 0 <= result["model"]["calibration_error_level_known"] <= 1


def _repeat_buyers() -> pd.DataFrame:
    """Purchases of 300 customers buying at steady personal rates from 2010-01-01 on, for 540 days."""
    rng = np.random.default_rng(3)
    rows = []
    for customer in range(300):
        rate = rng.gamma(0.8, 1 / 30)
        for day in np.sort(rng.uniform(0, 540, size=rng.poisson(rate * 540))):
            rows.append((f"c{customer}", ts("2010-01-01") + pd.Timedelta(days=float(day)), "purchase", 10.0))
    return make_events(rows)


def _dated(events: pd.DataFrame, day: str, count: int) -> pd.DataFrame:
    """Return ``events`` with copies of its first ``count`` rows dated ``day`` (a broken date)."""
    broken = events.head(count).assign(timestamp=pd.Series([ts(day)] * count, dtype=events["timestamp"].dtype))
    return canonicalize(pd.concat([broken, events], ignore_index=True), source="inline")


def test_a_backtest_plans_from_where_a_run_says_the_events_start(caplog: pytest.LogCaptureFixture) -> None:
    # before: the back-test took the first event, 1900-01-01, as the start of the history and did not adapt
    events = _repeat_buyers()
    spec = make_spec(training={"snapshots": 4, "min_positives": 20, "min_negatives": 20})
    as_of = ts("2011-05-01")
    clean = backtest(spec, events, as_of)
    assert clean["history"]["notes"]  # the configured plan reads from before 2010-01-01: adapted
    with caplog.at_level("WARNING", logger="customer_ai"):
        broken = backtest(spec, _dated(events, "1900-01-01", 2), as_of)
    assert broken["history"] == clean["history"]
    assert any(m.startswith(f"instance unit: 2 of {len(events) + 2:,} events") for m in caplog.messages)
    with pytest.raises(EventsError) as info:
        backtest(spec, _dated(events, "1970-01-01", 300), as_of)
    assert str(info.value).startswith(
        f"instance unit: 300 of {len(events) + 300:,} events (7%), dated 1970-01-01, lie before 14,609 days without "
        "any event; the events really start on 2010-01-01."
    )


def _spenders() -> pd.DataFrame:
    """Purchases of 200 customers at steady personal rates and amounts from 2010-01-01 on, for 540 days."""
    rng = np.random.default_rng(5)
    rows = []
    for customer in range(200):
        rate, amount = rng.gamma(0.8, 1 / 30), rng.gamma(2, 20)
        for day in np.sort(rng.uniform(0, 540, size=rng.poisson(rate * 540))):
            rows.append((f"c{customer}", ts("2010-01-01") + pd.Timedelta(days=float(day)), "purchase", amount))
    return make_events(rows)


def test_a_goal_with_a_value_is_judged_on_what_each_eligible_profile_spent() -> None:
    events = _spenders()
    spec = make_spec(
        goal={**BASE_SPEC["goal"], "value": {"field": "value"}},
        training={"snapshots": 3, "min_positives": 20, "min_negatives": 20},
    )
    as_of = ts("2011-05-01")
    result = backtest(spec, events, as_of)
    value = result["value"]
    assert set(value) == {
        "field",
        "eligible",
        "spenders",
        "total_realised",
        "trees",
        "model",
        "bgnbd_gamma_gamma",
        "last_year",
        "last_window",
        "best_baseline",
        "model_vs_best",
        "spend_per_profile",
        "gate",
    }
    json.dumps(result)  # the command writes it as JSON
    start, _ = run_window(spec, as_of)
    seen = events.loc[(events["timestamp"] >= start) & (events["timestamp"] < as_of)]
    assert start > events["timestamp"].min()  # a run reads part of the history only
    eligible = pd.Index(sorted(seen.loc[seen["timestamp"] >= as_of - pd.Timedelta(days=365), "profile_id"].unique()))
    window = events.loc[(events["timestamp"] >= as_of) & (events["timestamp"] < as_of + pd.Timedelta(days=30))]
    spent = window.groupby("profile_id")["value"].sum().reindex(eligible).fillna(0.0)
    assert (value["eligible"], value["spenders"]) == (result["eligible"], int((spent > 0).sum()))
    assert value["total_realised"] == pytest.approx(spent.sum(), rel=1e-12)
    assert value["spend_per_profile"]["outcome_window"] == pytest.approx(spent.mean(), rel=1e-12)
    # the baselines are fitted on the history a run reads and judged on the same profiles
    baselines = value_baselines(seen, spec.goal, as_of, eligible, field="value", data_start=ts("2010-01-01"))
    for name in ("bgnbd_gamma_gamma", "last_year", "last_window"):
        assert value[name]["normalised_gini"] == pytest.approx(normalised_gini(baselines[name], spent), rel=1e-12)
    best = max(("bgnbd_gamma_gamma", "last_year", "last_window"), key=lambda n: value[n]["normalised_gini"])
    assert value["best_baseline"] == best
    margin = value["model_vs_best"]
    assert margin["difference"] == value["model"]["normalised_gini"] - value[best]["normalised_gini"]
    assert margin["low"] <= margin["difference"] <= margin["high"]
    # the model's total was scaled on the calibration rows: their spend per profile is the level it starts from
    training_set = PropensityModel(spec).build_training_set(seen, as_of, data_start=ts("2010-01-01"))
    calibration = training_set.values[training_set.rows("calibration")]
    assert value["spend_per_profile"]["calibration_window"] == pytest.approx(calibration.mean(), rel=1e-12)
    assert value["model"]["total_predicted"] == pytest.approx(value["model"]["total_ratio"] * spent.sum())
    # what a run's gate said at that date: against every value baseline on its own evaluation half
    gate = value["gate"]
    assert set(gate["baselines"]) == {"past_spend", "bgnbd_gamma_gamma", "last_year", "last_window"}
    assert gate["status"] in ("ok", "poor")
    assert gate["reason"].startswith(f"the value model's normalised Gini {gate['normalised_gini']:.3f} is ")


def test_a_run_judges_its_value_model_against_every_value_baseline_on_the_evaluation_half() -> None:
    events = _spenders()
    spec = make_spec(
        goal={**BASE_SPEC["goal"], "value": {"field": "value"}},
        training={"snapshots": 3, "min_positives": 20, "min_negatives": 20},
    )
    as_of, started = ts("2011-05-01"), ts("2010-01-01")
    seen = events.loc[events["timestamp"] < as_of]
    estimator = PropensityModel(spec)
    training_set = estimator.build_training_set(seen, as_of, data_start=started)
    estimator.fit_training_set(training_set)
    assert set(estimator.value_metrics_["baselines"]) == {"past_spend"}  # what the fit alone can measure
    baselines = held_out_value_baselines(spec, training_set, seen, data_start=started)
    rows = training_set.frame.index[training_set.rows("evaluation")]
    validation = training_set.snapshot_plan.validation
    assert set(rows.get_level_values("as_of")) == {validation}
    profiles = pd.Index(rows.get_level_values("profile_id"), name="profile_id")
    expected = value_baselines(seen, spec.goal, validation, profiles, field="value", data_start=started)
    pd.testing.assert_frame_equal(baselines, expected)
    realised = training_set.values.to_numpy()[training_set.rows("evaluation")]
    estimator.judge_value(training_set, baselines.assign(last_window=np.nan))  # a baseline not fitted: left out
    measured = estimator.value_metrics_["baselines"]
    assert set(measured) == {"past_spend", "bgnbd_gamma_gamma", "last_year"}
    for name in ("bgnbd_gamma_gamma", "last_year"):
        assert measured[name]["normalised_gini"] == normalised_gini(baselines[name].to_numpy(), realised)
    best = max(measured, key=lambda name: measured[name]["normalised_gini"])
    assert (
        value_verdict(estimator.value_metrics_)[1].split(" above ")[1].split(" 0.")[0]
        == {
            "past_spend": "the past spend rate's",
            "bgnbd_gamma_gamma": "BG/NBD x Gamma-Gamma's",
            "last_year": "the last year's spend's",
        }[best]
    )


def test_a_goal_with_timing_is_judged_on_when_each_eligible_profile_bought_next() -> None:
    events = _spenders()  # the last purchase is on 2011-06-24: observed for 55 days after 2011-05-01
    spec = make_spec(output={"timing": True}, training={"snapshots": 3, "min_positives": 20, "min_negatives": 20})
    as_of = ts("2011-05-01")
    result = backtest(spec, events, as_of)
    timing = result["timing"]
    json.dumps(result)
    last = events["timestamp"].max()
    assert f"{last:%Y-%m-%d}" == timing["data_end"] == "2011-06-24"
    assert (timing["horizon_days"], timing["span_days"]) == (90, 55)  # the data ends before the horizon
    start, _ = run_window(spec, as_of)
    seen = events.loc[(events["timestamp"] >= start) & (events["timestamp"] < as_of)]
    eligible = pd.Index(sorted(seen.loc[seen["timestamp"] >= as_of - pd.Timedelta(days=365), "profile_id"].unique()))
    later = events.loc[events["timestamp"] >= as_of].groupby("profile_id")["timestamp"].min().reindex(eligible)
    happened = later.notna().to_numpy()
    observed = np.where(happened, ((later - as_of) / pd.Timedelta(days=1)).to_numpy(), 55.0)
    assert (timing["eligible"], timing["bought"]) == (result["eligible"], int(happened.sum()))
    # recency: the days since each profile's last purchase order them; BG/NBD's curve from its own fit
    since = (as_of - seen.groupby("profile_id")["timestamp"].max().reindex(eligible)) / pd.Timedelta(days=1)
    assert timing["recency"]["concordance"] == pytest.approx(concordance(since.to_numpy(), observed, happened))
    summary = repeat_summary(seen, as_of, eligible)
    mean, median = fit_repeat_model(seen[["profile_id", "timestamp"]], as_of).purchase_timing(
        90.0, *(summary[c].to_numpy() for c in ("x", "t_x", "T"))
    )
    assert timing["bgnbd"]["concordance"] == pytest.approx(concordance(mean, observed, happened), rel=1e-12)
    assert timing["bgnbd"]["concordance_median"] == pytest.approx(concordance(median, observed, happened), rel=1e-12)
    assert timing["bgnbd"]["finite_median"] == pytest.approx(np.isfinite(median).mean())
    names = ("recency", "bgnbd_window", "bgnbd")
    best = max(names, key=lambda name: timing[name]["concordance"])
    assert timing["best_baseline"] == best
    margin = timing["model_vs_best"]
    assert margin["difference"] == pytest.approx(timing["model"]["concordance"] - timing[best]["concordance"])
    assert margin["low"] <= margin["difference"] <= margin["high"]
    assert 0.5 < timing["model"]["concordance"] < 1
    assert timing["model"]["span_days"] == 55
    # the same curves anchored on probabilities moved to the outcome window's base rate
    assert 0 <= timing["model"]["bought_by_median_level_known"] <= 1
    assert timing["model"]["counted_level_known"] > 0
    # what a run's gate said of it at that date, on its own evaluation half
    assert set(timing["gate"]["baselines"]) == {"recency", "bgnbd"}
    assert timing["gate"]["reason"].startswith(
        f"the timing model's concordance {timing['gate']['concordance']:.3f} is "
    )
    assert "value" not in result


def _value_result(as_of: str) -> dict:
    metrics = {"normalised_gini": 0.7, "spearman": 0.4, "decile_error": 0.25, "total_ratio": 0.9}
    return {
        "as_of": as_of,
        "value": {
            "field": "value",
            "eligible": 1234,
            "spenders": 321,
            "model": metrics,
            "bgnbd_gamma_gamma": {**metrics, "normalised_gini": 0.65},
            "last_year": {**metrics, "normalised_gini": 0.68},
            "last_window": dict.fromkeys(metrics, float("nan")),
            "best_baseline": "last_year",
            "model_vs_best": {"difference": 0.02, "low": -0.005, "high": 0.041},
            "spend_per_profile": {"calibration_window": 12.5, "outcome_window": 10.0},
        },
    }


def test_the_value_table_has_a_row_per_date_and_scorer_and_says_how_far_spend_moved() -> None:
    propensity = {
        "roc_auc": 0.75,
        "pr_auc": 0.5,
        "log_loss": 0.5,
        "brier": 0.2,
        "calibration_error": 0.01,
        "top_decile_lift": 2.5,
        "positive_rate": 0.3,
        "mean_probability": 0.31,
        "calibration_error_floor": 0.008,
    }
    result = {
        **_value_result("2011-09-01"),
        "eligible": 1234,
        **dict.fromkeys(("model", "recency", "frequency", "bgnbd"), propensity),
        "model_vs": dict.fromkeys(("recency", "frequency", "bgnbd"), {"difference": 0.0, "low": 0.0, "high": 0.0}),
        "history": {"training": ["a"], "every_days": 30, "lookback_days": 365, "notes": []},
    }
    lines = format_markdown(make_spec(), [result]).splitlines()
    start = lines.index(
        "| as of | scorer | eligible (spent) | normalised Gini | against the best baseline [95% CI] "
        "| Spearman | decile error | total ratio |"
    )
    assert lines[start - 2].startswith("Predicted value (the goal events' value in the window) against what each")
    assert lines[start + 2 : start + 6] == [
        "| 2011-09-01 | **model** | 1,234 (321) | 0.700 | +0.020 [-0.005, +0.041] | 0.400 | 0.250 | 0.900 |",
        "| 2011-09-01 | baseline: BG/NBD x Gamma-Gamma | 1,234 (321) | 0.650 |  | 0.400 | 0.250 | 0.900 |",
        "| 2011-09-01 | baseline: last year's spend | 1,234 (321) | 0.680 | best baseline | 0.400 | 0.250 | 0.900 |",
        "| 2011-09-01 | baseline: last window's spend | 1,234 (321) | nan |  | nan | nan | nan |",
    ]
    assert lines[-1] == (
        "- 2011-09-01: spend per profile moved from 12.50 to 10.00 (ratio r = 1.250): the total ratio 0.900 "
        "divided by r is 0.720"
    )
    without = {key: item for key, item in result.items() if key != "value"}
    assert "Predicted value" not in format_markdown(make_spec(), [without])


def test_the_timing_table_has_a_row_per_date_and_scorer() -> None:
    propensity = dict.fromkeys(
        ("roc_auc", "pr_auc", "log_loss", "brier", "calibration_error", "top_decile_lift", "positive_rate"), 0.5
    )
    propensity.update(mean_probability=0.5, calibration_error_floor=0.01)
    median = {"concordance_median": 0.61, "bought_by_median": 0.482, "counted": 1500, "finite_median": 0.4}
    result = {
        "as_of": "2011-09-01",
        "eligible": 4000,
        **dict.fromkeys(("model", "recency", "frequency", "bgnbd"), propensity),
        "model_vs": dict.fromkeys(("recency", "frequency", "bgnbd"), {"difference": 0.0, "low": 0.0, "high": 0.0}),
        "history": {"training": ["a"], "every_days": 30, "lookback_days": 365, "notes": []},
        "base_rate": {"validation_window": 0.25, "outcome_window": 0.3},
        "timing": {
            "horizon_days": 90.0,
            "span_days": 69,
            "eligible": 4000,
            "bought": 1800,
            "model": {
                "concordance": 0.731,
                **median,
                "bought_by_median_level_known": 0.51,
                "counted_level_known": 1600,
            },
            "recency": {"concordance": 0.7},
            "bgnbd_window": {"concordance": 0.72},
            "bgnbd": {"concordance": 0.725, **median, "bought_by_median": float("nan"), "counted": 0},
            "best_baseline": "bgnbd",
            "model_vs_best": {"difference": 0.006, "low": -0.001, "high": 0.013},
        },
    }
    lines = format_markdown(make_spec(), [result]).splitlines()
    start = lines.index(
        "| as of | scorer | eligible (bought) | span / horizon | concordance | against the best baseline [95% CI] | "
        "C median | bought by median (counted) | median given |"
    )
    assert lines[start - 2].startswith("When the next goal event came, observed up to the horizon or the end of")
    assert lines[start + 2 :] == [
        "| 2011-09-01 | **model** | 4,000 (1,800) | 69 / 90 | 0.731 | +0.006 [-0.001, +0.013] | 0.610 "
        "| 0.482 (1,500) | 0.40 |",
        "| 2011-09-01 | baseline: recency | 4,000 (1,800) | 69 / 90 | 0.700 |  |  |  |  |",
        "| 2011-09-01 | baseline: BG/NBD's chance within the window | 4,000 (1,800) | 69 / 90 | 0.720 |  |  |  |  |",
        "| 2011-09-01 | baseline: BG/NBD's curve | 4,000 (1,800) | 69 / 90 | 0.725 | best baseline | 0.610 "
        "| none counted | 0.40 |",
        "",
        "Where the share bought by the median comes from (the curves are anchored on the probabilities):",
        "",
        "- 2011-09-01: base rate 0.250 in the calibration window, 0.300 in the outcome window; bought by the median "
        "0.482 (1,500), 0.510 (1,600) once the outcome window's base rate is known",
    ]
    without = {key: item for key, item in result.items() if key != "timing"}
    assert "When the next goal event came" not in format_markdown(make_spec(), [without])


def test_spend_that_vanished_leaves_the_ratio_undefined() -> None:
    value = _value_result("2011-09-01")["value"]
    value["spend_per_profile"]["outcome_window"] = 0.0
    assert spend_moved(value) == (
        "spend per profile moved from 12.50 to 0.00 (ratio r = nan): the total ratio 0.900 divided by r is nan"
    )
