"""Back-tests: baselines' inputs, the open-window guard and the Markdown table."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from customer_ai.backtest import GoalWindowOpenError, backtest, baseline_signals, format_markdown
from customer_ai.bgnbd import fit_bgnbd, repeat_summary
from customer_ai.events import EventsError, canonicalize

from conftest import make_events, make_spec, ts

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
