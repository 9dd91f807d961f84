"""The frozen evaluation split (examples/evaluation.yaml) and its runner (examples/evaluate.py)."""

from __future__ import annotations

import datetime as dt
import importlib.util
import math
import sys
from pathlib import Path

import pandas as pd
import pytest

from customer_ai.spec import SpecError

from conftest import ROOT

D = dt.date
SEPTEMBER = D(2011, 9, 1)


@pytest.fixture(scope="module")
def evaluate():
    spec = importlib.util.spec_from_file_location("evaluate", ROOT / "examples" / "evaluate.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["evaluate"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _goal(evaluate, *, window: int, tuning: tuple, reported: tuple, cutoff: dt.date = SEPTEMBER):
    return evaluate.Goal("retail", cutoff, Path("repurchase.yaml"), window, tuning, reported)


def test_the_shipped_split_keeps_every_tuning_window_before_every_reported_one(evaluate) -> None:
    goals = evaluate.load_split()
    assert evaluate.split_problems(goals) == []
    assert sorted({goal.data_set for goal in goals}) == ["cdnow", "online_retail", "ta_feng"]
    assert len(goals) == 7
    for data_set in ("cdnow", "online_retail", "ta_feng"):
        mine = [goal for goal in goals if goal.data_set == data_set]
        last_tuning_end = max(day + dt.timedelta(days=g.window_days) for g in mine for day in g.tuning)
        first_reported = min(day for g in mine for day in g.reported)
        assert last_tuning_end <= first_reported, data_set  # across goals, not only within one
    # the one check outside the rule: Ta-Feng's 30-day goal as of 2001-01-15 (2.5 months of history)
    assert [(g.instance.name, g.checks) for g in goals if g.checks] == [("repurchase_30d.yaml", (D(2001, 1, 15),))]
    # the repurchase goals are back-tested with the events' value, the churn goals without one
    assert [(g.data_set, g.instance.stem, g.value) for g in goals] == [
        ("online_retail", "repurchase_30d", "value"),
        ("online_retail", "churn_60d", None),
        ("cdnow", "repurchase_30d", "value"),
        ("cdnow", "churn_60d", None),
        ("ta_feng", "repurchase_14d", "value"),
        ("ta_feng", "churn_21d", None),
        ("ta_feng", "repurchase_30d", "value"),
    ]
    # and with output.timing, so their timing models are judged too
    assert [g.instance.stem for g in goals if g.timing] == [
        "repurchase_30d",
        "repurchase_30d",
        "repurchase_14d",
        "repurchase_30d",
    ]
    assert all(g.timing == (g.value is not None) for g in goals)


def test_a_goal_with_a_value_gets_it_in_its_spec_and_its_file_stays_as_it_is(evaluate) -> None:
    instance = ROOT / "instances" / "repurchase_30d.yaml"
    before = instance.read_bytes()
    plain, valued = evaluate.goal_spec(instance), evaluate.goal_spec(instance, "value")
    assert plain.goal.value is None
    assert valued.goal.value.field == "value"
    assert valued.model_dump(exclude={"goal"}) == plain.model_dump(exclude={"goal"})
    assert valued.goal.model_dump(exclude={"value"}) == plain.goal.model_dump(exclude={"value"})
    assert valued.base_dir == plain.base_dir  # its event file is found where the instance file says
    assert instance.read_bytes() == before
    with pytest.raises(SpecError, match=r"goal: value: a will_not_occur goal is reached when no goal event happens"):
        evaluate.goal_spec(ROOT / "instances" / "churn_60d.yaml", "value")


def test_a_goal_with_timing_gets_it_in_its_spec_and_a_churn_goal_refuses_it(evaluate) -> None:
    instance = ROOT / "instances" / "repurchase_30d.yaml"
    before = instance.read_bytes()
    plain, timed = evaluate.goal_spec(instance), evaluate.goal_spec(instance, timing=True)
    both = evaluate.goal_spec(instance, "value", timing=True)
    assert (plain.output.timing, timed.output.timing, both.output.timing) == (False, True, True)
    assert timed.model_dump(exclude={"output"}) == plain.model_dump(exclude={"output"})
    assert timed.output.model_dump(exclude={"timing"}) == plain.output.model_dump(exclude={"timing"})
    assert (both.goal.value.field, timed.goal.value) == ("value", None)
    assert instance.read_bytes() == before
    with pytest.raises(SpecError, match=r"timing"):
        evaluate.goal_spec(ROOT / "instances" / "churn_60d.yaml", timing=True)


def test_a_goal_timing_that_is_not_true_or_false_says_where(evaluate, tmp_path: Path) -> None:
    (tmp_path / "split.yaml").write_text(
        "retail:\n  cutoff: 2011-09-01\n  goals:\n    - instance: instances/repurchase_30d.yaml\n"
        "      timing: yes please\n      tuning: [2011-07-01]\n      reported: [2011-09-01]\n"
    )
    with pytest.raises(ValueError, match=r"^retail: goals\[0\]: timing: true or false, not 'yes please'$"):
        evaluate.load_split(tmp_path / "split.yaml", root=ROOT)


def test_a_goal_value_that_is_not_a_field_name_says_where(evaluate, tmp_path: Path) -> None:
    (tmp_path / "split.yaml").write_text(
        "retail:\n  cutoff: 2011-09-01\n  goals:\n    - instance: instances/repurchase_30d.yaml\n"
        "      value: 3\n      tuning: [2011-07-01]\n      reported: [2011-09-01]\n"
    )
    with pytest.raises(
        ValueError, match=r"^retail: goals\[0\]: value: the name of the events' field the goal is worth"
    ):
        evaluate.load_split(tmp_path / "split.yaml", root=ROOT)


def test_the_goals_chosen_by_data_set_dates_and_value(evaluate) -> None:
    goals = [
        _goal(evaluate, window=30, tuning=(D(2011, 7, 1),), reported=(D(2011, 9, 1),)),
        evaluate.Goal("retail", SEPTEMBER, Path("valued.yaml"), 30, (D(2011, 7, 1),), (), value="value"),
        evaluate.Goal("cdnow", SEPTEMBER, Path("other.yaml"), 30, (), (D(2011, 9, 1),), value="value", timing=True),
    ]
    names = lambda chosen: [goal.instance.stem for goal in chosen]  # noqa: E731
    assert names(evaluate.choose(goals, "tuning", None)) == ["repurchase", "valued"]
    assert names(evaluate.choose(goals, "reported", None)) == ["repurchase", "other"]
    assert names(evaluate.choose(goals, "reported", None, valued_only=True)) == ["other"]
    assert names(evaluate.choose(goals, "tuning", None, timed_only=True)) == []
    assert names(evaluate.choose(goals, "reported", None, timed_only=True)) == ["other"]
    assert names(evaluate.choose(goals, "tuning", ["cdnow"])) == []


def test_the_overlaps_of_the_earlier_split_are_refused(evaluate) -> None:
    # Ta-Feng: 2001-02-01 tuned the 14-day goal and was reported for the 21-day one
    goals = [
        _goal(evaluate, window=14, tuning=(D(2001, 2, 1),), reported=(D(2001, 2, 15),), cutoff=D(2001, 2, 1)),
        _goal(evaluate, window=21, tuning=(D(2001, 1, 11),), reported=(D(2001, 2, 1),), cutoff=D(2001, 2, 1)),
    ]
    assert evaluate.split_problems(goals) == [
        "retail: repurchase.yaml: tuning date 2001-02-01 has its outcome window end on 2001-02-15, after the cutoff "
        "2001-02-01"
    ]


def test_a_tuning_window_ending_on_the_cutoff_is_allowed_one_day_later_is_not(evaluate) -> None:
    on_it = _goal(evaluate, window=31, tuning=(D(2011, 8, 1),), reported=(D(2011, 9, 1),))
    past_it = _goal(evaluate, window=32, tuning=(D(2011, 8, 1),), reported=(D(2011, 9, 1),))
    assert evaluate.split_problems([on_it]) == []
    assert evaluate.split_problems([past_it]) == [
        "retail: repurchase.yaml: tuning date 2011-08-01 has its outcome window end on 2011-09-02, after the cutoff "
        "2011-09-01"
    ]


def test_reported_dates_before_the_cutoff_and_missing_dates_are_refused(evaluate) -> None:
    early = _goal(evaluate, window=30, tuning=(D(2011, 7, 1),), reported=(D(2011, 8, 31),))
    empty = _goal(evaluate, window=30, tuning=(), reported=(D(2011, 9, 1),))
    unjudged = _goal(evaluate, window=30, tuning=(D(2011, 7, 1),), reported=())
    assert evaluate.split_problems([early, empty, unjudged]) == [
        "retail: repurchase.yaml: reported date 2011-08-31 is before the cutoff 2011-09-01",
        "retail: repurchase.yaml: no tuning date",
        "retail: repurchase.yaml: no reported date",
    ]


def test_a_split_file_with_a_bad_date_says_where(evaluate, tmp_path: Path) -> None:
    (tmp_path / "split.yaml").write_text(
        "retail:\n  cutoff: 2011-09-01\n  goals:\n    - instance: instances/repurchase_30d.yaml\n"
        "      tuning: [2011-07-01, July]\n      reported: [2011-09-01]\n"
    )
    with pytest.raises(ValueError, match=r"^retail: goals\[0\]: tuning: not a date: 'July' \(use YYYY-MM-DD\)$"):
        evaluate.load_split(tmp_path / "split.yaml")


def _result(as_of: str, model: float, baselines: tuple[float, float, float], error: float) -> dict:
    result = {"as_of": as_of, "model": {"roc_auc": model, "calibration_error": error, "calibration_error_floor": 0.01}}
    for name, auc in zip(("recency", "frequency", "bgnbd"), baselines, strict=True):
        result[name] = {"roc_auc": auc}
    result["model_vs"] = {
        name: {"difference": model - auc, "low": model - auc - 0.01, "high": model - auc + 0.01}
        for name, auc in zip(("recency", "frequency", "bgnbd"), baselines, strict=True)
    }
    return result


def test_rows_are_judged_against_their_best_baseline_and_summed_up(evaluate) -> None:
    rows = [
        evaluate.row_summary("retail", "repurchase", _result("2011-07-01", 0.75, (0.6, 0.70, 0.74), 0.03)),
        evaluate.row_summary("retail", "repurchase", _result("2011-08-01", 0.70, (0.6, 0.72, 0.65), 0.01)),
    ]
    assert [(r["best_baseline"], round(r["gain"], 6)) for r in rows] == [("bgnbd", 0.01), ("frequency", -0.02)]
    assert rows[1]["best_baseline_roc_auc"] == 0.72
    totals = evaluate.aggregate(rows)
    assert {key: round(value, 6) for key, value in totals.items()} == {
        "rows": 2,
        "worst_gain": -0.02,
        "mean_gain": -0.005,
        "rows_gain_at_least_0_01": 1,
        "rows_above_best_baseline": 1,
        "mean_calibration_error": 0.02,
        "rows_calibration_error_at_most_0_02": 1,
    }


def test_a_split_that_breaks_its_rules_runs_nothing(evaluate, tmp_path: Path, capsys) -> None:
    (tmp_path / "split.yaml").write_text(
        "retail:\n  cutoff: 2011-09-01\n  goals:\n    - instance: instances/repurchase_30d.yaml\n"
        "      tuning: [2011-08-15]\n      reported: [2011-09-01]\n"
    )
    assert evaluate.main(["tuning", "--split", str(tmp_path / "split.yaml"), "--out", str(tmp_path / "out")]) == 2
    assert "tuning date 2011-08-15 has its outcome window end on 2011-09-14" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def _valued(as_of: str, model: float, margin: tuple[float, float, float], ratio: float, spend: tuple) -> dict:
    metrics = {"normalised_gini": model, "spearman": 0.4, "decile_error": 0.2, "total_ratio": ratio}
    value = {
        "eligible": 1000,
        "spenders": 250,
        "model": metrics,
        "last_year": {**metrics, "normalised_gini": model - margin[0]},
        "best_baseline": "last_year",
        "model_vs_best": dict(zip(("difference", "low", "high"), margin, strict=True)),
        "spend_per_profile": dict(zip(("calibration_window", "outcome_window"), spend, strict=True)),
    }
    return {"as_of": as_of, "value": value}


def test_value_rows_are_judged_against_the_targets_and_the_spend_that_moved(evaluate) -> None:
    rows = [
        evaluate.value_row_summary(
            "retail", "repurchase", _valued("2011-09-01", 0.8, (0.03, 0.01, 0.05), 0.8, (8, 10))
        ),
        evaluate.value_row_summary(
            "retail", "repurchase", _valued("2011-10-01", 0.7, (-0.01, -0.03, 0.0), 1.05, (5, 5))
        ),
    ]
    assert rows[0]["best_baseline"] == "last_year"
    assert rows[0]["best_baseline_gini"] == pytest.approx(0.77)
    assert (rows[0]["margin"], rows[0]["margin_low"], rows[0]["margin_high"]) == (0.03, 0.01, 0.05)
    # spend per profile rose from 8 to 10: a total right on the calibration window is 0.8 of the outcome's
    assert rows[0]["spend_ratio"] == 0.8
    assert rows[0]["total_ratio_over_spend_ratio"] == 1.0
    assert rows[0]["spend_moved"] == (
        "spend per profile moved from 8.00 to 10.00 (ratio r = 0.800): the total ratio 0.800 divided by r is 1.000"
    )
    totals = evaluate.value_aggregate(rows)
    assert {key: value if key == "total_ratios" else round(value, 6) for key, value in totals.items()} == {
        "rows": 2,
        "rows_margin_at_least_0_02": 1,
        "rows_above_best_baseline": 1,
        "worst_margin": -0.01,
        "mean_margin": 0.01,
        "total_ratios": [0.8, 1.05],
        "rows_total_ratio_in_0_9_1_1": 1,
    }


def _timed(as_of: str, model: float, best: tuple[str, float] | None, margin: tuple, share: float) -> dict:
    timing = {
        "eligible": 900,
        "bought": 300,
        "span_days": 61,
        "model": {"concordance": model, "bought_by_median": share, "counted": 120},
        "recency": {"concordance": 0.6},
        "best_baseline": None if best is None else best[0],
        "model_vs_best": None if best is None else dict(zip(("difference", "low", "high"), margin, strict=True)),
    }
    if best is not None:
        timing[best[0]] = {"concordance": best[1]}
    return {"as_of": as_of, "timing": timing}


def test_timing_rows_are_judged_against_the_targets(evaluate) -> None:
    rows = [
        evaluate.timing_row_summary(
            "cdnow", "repurchase", _timed("1998-04-01", 0.74, ("bgnbd", 0.72), (0.02, 0.01, 0.03), 0.5)
        ),
        evaluate.timing_row_summary(
            "cdnow", "repurchase", _timed("1998-05-01", 0.70, ("recency", 0.705), (-0.005, -0.01, 0.0), 0.6)
        ),
        evaluate.timing_row_summary(
            "cdnow", "repurchase", _timed("1998-06-01", 0.70, ("bgnbd_window", 0.695), (0.005, 0.0, 0.01), float("nan"))
        ),
    ]
    assert rows[0]["best_baseline_concordance"] == 0.72
    assert (rows[1]["margin"], rows[1]["margin_low"], rows[1]["margin_high"]) == (-0.005, -0.01, 0.0)
    assert math.isnan(rows[2]["bought_by_median"])
    assert rows[2]["counted"] == 120
    totals = evaluate.timing_aggregate(rows)
    shares = totals.pop("bought_by_median")
    assert shares[:2] == [0.5, 0.6]
    assert math.isnan(shares[2])
    assert {key: round(value, 6) for key, value in totals.items()} == {
        "rows": 3,
        "rows_margin_at_least_0_01": 1,
        "rows_above_best_baseline": 2,
        "worst_margin": -0.005,
        "mean_margin": 0.006667,
        "rows_bought_by_median_in_0_45_0_55": 1,
    }
    text = evaluate._format_timing(rows, evaluate.timing_aggregate(rows))
    assert (
        "| cdnow | repurchase | 1998-06-01 | 900 (300) | 61 | 0.700 | bgnbd_window | 0.695 | +0.005 [+0.000, +0.010] "
        "| n/a (120) |" in text
    )
    assert text.endswith(
        "3 timing rows: concordance at least the best baseline's + 0.01 in 1, above it in 2; margin worst -0.005, "
        "mean +0.007; bought by median 0.500, 0.600, n/a, within 0.45 - 0.55 in 1"
    )


def test_tuning_rows_read_no_event_after_the_cutoff(evaluate, monkeypatch, tmp_path: Path) -> None:
    stamps = pd.to_datetime(["2011-08-30 00:00", "2011-08-31 23:59", "2011-09-01 00:00", "2011-12-09 00:00"], utc=True)
    monkeypatch.setattr(evaluate, "load_events", lambda spec: pd.DataFrame({"timestamp": stamps}))
    monkeypatch.setattr(evaluate, "load_attributes", lambda spec: None)
    monkeypatch.setattr(evaluate, "check_attribute_join", lambda *args: None)
    monkeypatch.setattr(evaluate, "format_markdown", lambda spec, results: "")
    seen = []
    monkeypatch.setattr(
        evaluate, "backtest", lambda spec, events, as_of, attributes: seen.append(events["timestamp"].max()) or {}
    )
    spec = evaluate.goal_spec(ROOT / "instances" / "repurchase_30d.yaml")
    evaluate.run_backtests(spec, (D(2011, 7, 1),), tmp_path / "tuning.json", observed_until=SEPTEMBER)
    evaluate.run_backtests(spec, (D(2011, 9, 1),), tmp_path / "reported.json")
    assert seen == [pd.Timestamp("2011-08-31 23:59", tz="UTC"), pd.Timestamp("2011-12-09", tz="UTC")]
