"""The frozen evaluation split (examples/evaluation.yaml) and its runner (examples/evaluate.py)."""

from __future__ import annotations

import datetime as dt
import importlib.util
import sys
from pathlib import Path

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
        evaluate.Goal("cdnow", SEPTEMBER, Path("other.yaml"), 30, (), (D(2011, 9, 1),), value="value"),
    ]
    names = lambda chosen: [goal.instance.stem for goal in chosen]  # noqa: E731
    assert names(evaluate.choose(goals, "tuning", None)) == ["repurchase", "valued"]
    assert names(evaluate.choose(goals, "reported", None)) == ["repurchase", "other"]
    assert names(evaluate.choose(goals, "reported", None, valued_only=True)) == ["other"]
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
