"""Did it come true: realised goal rates of a past run's profiles, by bucket and decile, on hand-built events."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from customer_ai import artifacts
from customer_ai.outcomes import (
    OUTCOME_COLUMNS,
    OUTCOMES_FILE,
    VALUE_COLUMNS,
    OutcomeTally,
    closed_window_dates,
    decile_of,
    outcome_rates,
    read_tracked,
    realised_outcomes,
    tracked_frame,
)

from conftest import make_events, make_spec, ts

P = ts("2011-09-01")


def _scores(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["profile_id", "probability", "percentile", "bucket"])


def test_deciles_put_the_highest_percentiles_first() -> None:
    assert decile_of(np.array([100, 91, 90, 81, 11, 10, 1])).tolist() == [1, 1, 2, 2, 9, 10, 10]


def test_a_window_is_closed_only_when_it_ended_by_the_as_of_date_and_the_events_reach_its_last_day() -> None:
    dates = ["2011-09-01", "2011-09-08", "2011-08-01", "2011-09-01"]
    # window 30 days: 2011-09-01 closes 2011-10-01, 2011-09-08 closes 2011-10-08
    assert closed_window_dates(dates, 30, ts("2011-10-01"), ts("2011-09-30 23:00")) == ["2011-08-01", "2011-09-01"]
    assert closed_window_dates(dates, 30, ts("2011-09-30"), ts("2011-09-29")) == ["2011-08-01"]
    # the events stop early: a window whose last day has no data yet is not closed
    assert closed_window_dates(dates, 30, ts("2011-12-01"), ts("2011-09-29")) == ["2011-08-01"]
    assert closed_window_dates(dates, 30, ts("2011-12-01"), None) == []


def test_realised_rates_per_group_count_only_goal_events_inside_the_half_open_window() -> None:
    spec = make_spec()  # goal: a purchase within 30 days
    events = make_events(
        [
            ("a", "2011-09-01 00:00", "purchase"),  # first instant of the window: counts
            ("b", "2011-09-30 23:59:59", "purchase"),  # last instant: counts
            ("c", "2011-10-01 00:00", "purchase"),  # the window's end is excluded
            ("d", "2011-08-31 23:59:59", "purchase"),  # before the as-of date
            ("e", "2011-09-10", "visit"),  # not a goal event
        ]
    )
    scores = _scores(
        [
            ("a", 0.8, 100, "high"),
            ("b", 0.6, 80, "high"),
            ("c", 0.3, 60, "medium"),
            ("d", 0.2, 40, "low"),
            ("e", 0.1, 20, "low"),
        ]
    )
    out = realised_outcomes(spec, events, P, scores)
    assert list(out.columns) == [*OUTCOME_COLUMNS, *VALUE_COLUMNS]
    assert out[list(VALUE_COLUMNS)].isna().all().all()  # a run without a value
    rows = {(r.grouping, r.group): (r.profiles, round(r.predicted_rate, 6), r.realised_rate) for r in out.itertuples()}
    assert rows == {
        ("all", "all"): (5, 0.4, 0.4),
        ("bucket", "low"): (2, 0.15, 0.0),
        ("bucket", "medium"): (1, 0.3, 0.0),
        ("bucket", "high"): (2, 0.7, 1.0),
        ("decile", "1"): (1, 0.8, 1.0),
        ("decile", "3"): (1, 0.6, 1.0),
        ("decile", "5"): (1, 0.3, 0.0),
        ("decile", "7"): (1, 0.2, 0.0),
        ("decile", "9"): (1, 0.1, 0.0),
    }
    assert out["group"].tolist() == ["all", "low", "medium", "high", "1", "3", "5", "7", "9"]


def test_a_will_not_occur_goal_comes_true_when_the_goal_events_do_not_happen() -> None:
    goal = {
        "occurrence": "will_not_occur",
        "match": "any",
        "events": [{"where": [{"field": "event_type", "op": "eq", "value": "purchase"}]}],
        "window_days": 60,
    }
    spec = make_spec(goal=goal)
    events = make_events([("a", "2011-10-30", "purchase"), ("b", "2011-10-31", "purchase")])
    scores = _scores([("a", 0.9, 100, "high"), ("b", 0.5, 50, "medium"), ("c", 0.4, 1, "low")])
    out = realised_outcomes(spec, events, P, scores).set_index(["grouping", "group"])
    # a bought on day 59 (inside the 60 days): did not churn; b bought on day 60 (outside): churned; c churned
    assert out.loc[("all", "all"), "realised_rate"] == pytest.approx(2 / 3)
    assert out.loc[("bucket", "high"), "realised_rate"] == 0.0
    assert out.loc[("bucket", "medium"), "realised_rate"] == 1.0
    assert out.loc[("decile", "10"), "realised_rate"] == 1.0


def test_a_run_that_scored_nobody_has_one_empty_overall_row() -> None:
    out = realised_outcomes(make_spec(), make_events([("a", "2011-09-02", "purchase")]), P, _scores([]))
    assert out["group"].tolist() == ["all"]
    assert out["profiles"].tolist() == [0]
    assert np.isnan(out["realised_rate"].iloc[0])


# --- what a run tracked, in its folder's outcomes.parquet -------------------------------------------------------

TRACKED_COLUMNS = [
    "as_of",
    "grouping",
    "group",
    "profiles",
    "predicted_rate",
    "realised_rate",
    "predicted_value",
    "realised_value",
    "tracked_at",
]


def _tracked(as_of: str, rows: list[tuple], tracked_at: str = "2011-10-08T06:00:00Z") -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(OUTCOME_COLUMNS))
    return frame.assign(as_of=as_of, tracked_at=tracked_at)


def test_nothing_tracked_is_an_empty_frame_of_the_files_columns() -> None:
    empty = tracked_frame([])
    assert list(empty.columns) == TRACKED_COLUMNS
    assert len(empty) == 0
    kinds = {c: str(t) for c, t in empty.dtypes.items()}
    assert kinds == {
        "as_of": "str",
        "grouping": "str",
        "group": "str",
        "profiles": "int64",
        "predicted_rate": "float64",
        "realised_rate": "float64",
        "predicted_value": "float64",
        "realised_value": "float64",
        "tracked_at": "str",
    }
    # the same columns and types as a frame of tracked outcomes: both write the same Parquet schema
    full = tracked_frame([_tracked("2011-09-01", [("all", "all", 2, 0.5, 0.5)])])
    assert full.dtypes.to_dict() == empty.dtypes.to_dict()


def test_tracked_outcomes_keep_their_columns_in_order_with_the_group_as_text() -> None:
    first = _tracked(
        "2011-09-01", [("all", "all", 3, 0.4, 1 / 3), ("decile", 1, 1, 0.8, 1.0), ("decile", 10, 2, 0.2, 0.0)]
    )
    second = _tracked("2011-09-08", [("all", "all", 0, float("nan"), float("nan"))], "2011-10-09T06:00:00Z")
    frame = tracked_frame([first.astype({"profiles": "int32"}), second])
    assert list(frame.columns) == TRACKED_COLUMNS
    assert frame["group"].tolist() == ["all", "1", "10", "all"]
    assert frame["profiles"].dtype == "int64"
    assert frame["as_of"].tolist() == ["2011-09-01"] * 3 + ["2011-09-08"]
    assert frame["tracked_at"].tolist() == ["2011-10-08T06:00:00Z"] * 3 + ["2011-10-09T06:00:00Z"]


def test_tracked_outcomes_read_back_by_date_exactly(tmp_path) -> None:
    assert read_tracked(tmp_path) == {}  # a folder without the file tracked nothing
    first = _tracked("2011-09-01", [("all", "all", 3, 0.4, 1 / 3), ("bucket", "high", 1, 0.8, 1.0)])
    second = _tracked("2011-08-25", [("all", "all", 0, float("nan"), float("nan"))], "2011-10-09T06:00:00Z")
    artifacts.write_frame(tmp_path / OUTCOMES_FILE, tracked_frame([first, second]))
    tracked = read_tracked(tmp_path)
    assert list(tracked) == ["2011-08-25", "2011-09-01"]
    expected = pd.DataFrame(
        {
            "grouping": ["all", "bucket"],
            "group": ["all", "high"],
            "profiles": [3, 1],
            "predicted_rate": [0.4, 0.8],
            "realised_rate": [1 / 3, 1.0],
            "predicted_value": [float("nan")] * 2,
            "realised_value": [float("nan")] * 2,
            "tracked_at": ["2011-10-08T06:00:00Z"] * 2,
        }
    ).astype({"grouping": "str", "group": "str", "tracked_at": "str"})
    pd.testing.assert_frame_equal(tracked["2011-09-01"], expected, check_exact=True)
    empty_run = tracked["2011-08-25"]
    assert empty_run[["grouping", "group", "profiles", "tracked_at"]].values.tolist() == [
        ["all", "all", 0, "2011-10-09T06:00:00Z"]
    ]
    assert empty_run[["predicted_rate", "realised_rate"]].isna().all().all()
    artifacts.write_frame(tmp_path / OUTCOMES_FILE, tracked_frame([]))
    assert read_tracked(tmp_path) == {}  # tracked nothing: the file is there, with no rows


def test_outcomes_added_up_a_part_at_a_time_are_those_of_all_at_once():
    spec = make_spec()
    scores = pd.DataFrame(
        {
            "probability": [0.9, 0.8, 0.3, 0.2, 0.1, 0.05],
            "percentile": [100, 84, 67, 50, 34, 17],
            "bucket": ["high", "high", "medium", "low", "low", "low"],
        }
    )
    reached = np.array([True, False, True, False, False, True])
    whole = outcome_rates(spec, scores, reached)
    assert whole.pop("predicted_value").isna().all()
    assert whole.pop("realised_value").isna().all()
    predicted = whole.pop("predicted_rate").tolist()
    assert whole.to_dict("list") == {
        "grouping": ["all", "bucket", "bucket", "bucket", "decile", "decile", "decile", "decile", "decile", "decile"],
        "group": ["all", "low", "medium", "high", "1", "2", "4", "6", "7", "9"],
        "profiles": [6, 3, 1, 2, 1, 1, 1, 1, 1, 1],
        "realised_rate": [0.5, 1 / 3, 1.0, 0.5, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0],
    }
    assert predicted == pytest.approx([2.35 / 6, 0.35 / 3, 0.3, 0.85, 0.9, 0.8, 0.3, 0.2, 0.1, 0.05], rel=1e-15)
    whole.insert(3, "predicted_rate", predicted)
    tally = OutcomeTally(spec)
    for rows in ([4, 0], [], [2, 5, 1, 3]):
        tally.add(scores.iloc[rows], reached[rows])
    pd.testing.assert_frame_equal(tally.rates().drop(columns=list(VALUE_COLUMNS)), whole, check_exact=False, rtol=1e-12)


def test_a_valued_runs_outcomes_hold_each_groups_mean_expected_and_realised_value() -> None:
    scores = pd.DataFrame(
        {
            "probability": [0.9, 0.8, 0.3, 0.2],
            "percentile": [100, 75, 50, 25],
            "bucket": ["high", "high", "medium", "low"],
            "expected_value": [120.0, 80.0, 20.0, 4.0],
        }
    )
    reached = np.array([True, False, True, False])
    worth = np.array([100.0, 0.0, 50.0, 0.0])
    out = outcome_rates(make_spec(), scores, reached, worth).set_index(["grouping", "group"])
    assert out.loc[("all", "all"), ["predicted_value", "realised_value"]].tolist() == [56.0, 37.5]
    assert out.loc[("bucket", "high"), ["predicted_value", "realised_value"]].tolist() == [100.0, 50.0]
    assert out.loc[("bucket", "low"), ["predicted_value", "realised_value"]].tolist() == [4.0, 0.0]
    assert out.loc[("decile", "1"), ["predicted_value", "realised_value"]].tolist() == [120.0, 100.0]
    # without what the profiles spent, nothing is said of the value
    assert outcome_rates(make_spec(), scores, reached)[list(VALUE_COLUMNS)].isna().all().all()
