"""History coverage: snapshot layout, detection of a short history, adaptation and refusal, at the boundaries."""

from __future__ import annotations

import pandas as pd
import pytest

from customer_ai.history import (
    InsufficientHistoryError,
    SnapshotPlan,
    configured_history_start,
    data_start,
    event_days,
    plan_snapshots,
)

from conftest import RETAIL_EVENTS, ts

AS_OF = ts("2011-12-11")
US = pd.Timedelta(microseconds=1)
CONFIG = {"window_days": 30, "lookback_days": 365, "snapshots": 6, "every_days": 30}


def plan(data_start: pd.Timestamp | None, **overrides: object) -> SnapshotPlan:
    return plan_snapshots(AS_OF, **{**CONFIG, **overrides}, data_start=data_start)  # type: ignore[arg-type]


def days(stamps: tuple[pd.Timestamp, ...] | list[pd.Timestamp]) -> list[str]:
    return [f"{s:%Y-%m-%d}" for s in stamps]


def test_configured_layout_validates_a_window_before_the_as_of_date_and_trains_a_window_before_that() -> None:
    full = plan(None)
    assert full.validation == AS_OF - pd.Timedelta(days=30)
    assert days(full.training) == ["2011-10-12", "2011-09-12", "2011-08-13", "2011-07-14", "2011-06-14"]
    assert full.lookback_days == 365
    assert full.history_start == ts("2010-06-14")
    assert full.notes == ()
    assert not full.adapted
    assert configured_history_start(AS_OF, **CONFIG) == full.history_start


def test_a_history_starting_exactly_at_the_needed_instant_is_covered() -> None:
    assert plan(ts("2010-06-14")).notes == ()
    assert plan(ts("2010-06-14")).lookback_days == 365


def test_a_history_starting_a_microsecond_late_is_adapted() -> None:
    late = plan(ts("2010-06-14") + US)
    assert late.adapted
    assert late.history_start >= ts("2010-06-14") + US
    assert late.lookback_days < 365 or late.every_days < 30 or len(late.training) < 5


def test_short_history_keeps_every_snapshot_and_covers_every_window() -> None:
    # the online-retail example: the events start on 2010-12-01, the configured plan reads from 2010-06-14
    start = ts("2010-12-01 08:26")
    adapted = plan(start)
    assert adapted.adapted
    assert adapted.validation == ts("2011-11-11")
    assert adapted.training[0] == ts("2011-10-12")  # the gap is kept
    assert adapted.history_start >= start  # no snapshot sees a window cut short by the data start
    # 314 whole days before 2011-10-12; at least 75% of them go to the lookback, the rest spaces the snapshots
    assert adapted.lookback_days >= 0.75 * 314
    assert (len(adapted.training), adapted.every_days) == (5, 19)
    assert adapted.lookback_days == 314 - 4 * 19
    assert adapted.notes[0].startswith("the events start on 2010-12-01, but the configured plan reads from 2010-06-14")
    assert "training snapshots: 5 every 19 days instead of 5 every 30 days" in adapted.notes
    assert any(n.startswith("features look back 238 days instead of 365") for n in adapted.notes)


def test_very_short_history_drops_snapshots_before_spacing_them_under_a_week() -> None:
    # 40 days before the latest training snapshot: at least 30 for the lookback, 10 days left: one week apart
    adapted = plan(ts("2011-10-12") - pd.Timedelta(days=40))
    assert adapted.every_days == 7
    assert len(adapted.training) == 2
    assert adapted.lookback_days == 33
    assert adapted.history_start == ts("2011-10-12") - pd.Timedelta(days=40)


def test_history_shorter_than_the_minimum_lookback_is_one_period_said_plainly() -> None:
    # before: refused ("which leaves 27 days of history; at least 28 are needed")
    start = ts("2011-10-12") - pd.Timedelta(days=27)
    single = plan(start)
    assert single.single_period
    assert single.training == ()
    assert single.snapshots == [ts("2011-11-11")] == [single.oldest]
    assert single.lookback_days == 27 + 30  # everything before the validation snapshot
    assert single.history_start == start
    assert single.notes[0] == (
        "the events start on 2011-09-15: training across time needs 28 days of history before the latest training "
        "snapshot 2011-10-12 and there are 27 (training.min_lookback_days)"
    )
    assert single.notes[1].startswith("trained and judged on one period: no check across time. The profiles of ")
    assert single.notes[2] == (
        "features read the whole history, from 2011-09-15, and count it per 57 days (the history before "
        "2011-11-11); scoring reads its longer history the same way"
    )
    across = plan(ts("2011-10-12") - pd.Timedelta(days=28))  # exactly the minimum: across time
    assert (across.single_period, across.lookback_days) == (False, 28)


def test_one_period_needs_the_goal_window_and_30_days_before_it() -> None:
    validation = ts("2011-11-11")
    assert plan(validation - pd.Timedelta(days=30)).lookback_days == 30
    with pytest.raises(InsufficientHistoryError) as info:
        plan(validation - pd.Timedelta(days=30) + US)
    assert str(info.value) == (
        "the events start on 2011-10-12: a model as of 2011-12-11 with a 30-day goal needs the goal window and 30 "
        "days of history before it, so events from 2011-10-12; it has 29 days before 2011-11-11. Use a later as-of "
        "date, a shorter goal window or more history."
    )


def test_a_history_that_starts_after_the_validation_snapshot_is_refused() -> None:
    with pytest.raises(InsufficientHistoryError, match="it has 0 days before 2011-11-11"):
        plan(ts("2011-11-20"))


def test_a_single_period_plan_round_trips_through_its_dict() -> None:
    single = plan(ts("2011-10-01"))
    assert single.to_dict()["single_period"] is True
    assert SnapshotPlan.from_dict(single.to_dict()) == single
    assert SnapshotPlan.from_dict({k: v for k, v in plan(None).to_dict().items() if k != "single_period"}) == plan(None)


def test_strict_history_refuses_instead_of_adapting() -> None:
    with pytest.raises(InsufficientHistoryError, match=r"needs them from 2010-06-14 .*training\.history: adapt"):
        plan(ts("2010-12-01"), adapt=False)
    assert plan(ts("2010-06-01"), adapt=False).lookback_days == 365  # covered: strict is fine


def test_a_goal_longer_than_the_spacing_keeps_the_gap() -> None:
    churn = plan(None, window_days=60)
    assert churn.validation == ts("2011-10-12")
    assert churn.training[0] == ts("2011-08-13")  # a whole goal window before validation
    assert all(t + pd.Timedelta(days=60) <= churn.validation for t in churn.training)


def test_two_snapshots_need_no_spacing() -> None:
    adapted = plan(ts("2011-06-01"), snapshots=2)
    assert len(adapted.training) == 1
    assert adapted.lookback_days == (ts("2011-10-12") - ts("2011-06-01")).days


def test_plan_round_trips_through_json_ready_data() -> None:
    adapted = plan(ts("2010-12-01 08:26"))
    data = adapted.to_dict()
    assert data["data_start"] == "2010-12-01T08:26:00+00:00"
    assert data["history_start"] == f"{adapted.history_start:%Y-%m-%d}"
    assert SnapshotPlan.from_dict(data) == adapted
    assert SnapshotPlan.from_dict(plan(None).to_dict()) == plan(None)


@pytest.mark.parametrize(("window", "count", "every"), [(30, 2, 30), (60, 6, 14), (1, 3, 365), (90, 4, 7)])
def test_every_label_window_closes_by_the_as_of_date_and_training_ones_by_validation(
    window: int, count: int, every: int
) -> None:
    layout = plan_snapshots(
        AS_OF, window_days=window, lookback_days=365, snapshots=count, every_days=every, data_start=None
    )
    label = pd.Timedelta(days=window)
    assert layout.validation + label == AS_OF  # the latest label window ends exactly at the as-of date
    assert layout.training[0] + label == layout.validation  # the gap: exactly one goal window
    assert len(layout.training) == count - 1
    spacing = pd.Timedelta(days=every)
    assert all(a - b == spacing for a, b in zip(layout.training, layout.training[1:], strict=False))


# --- where the history starts --------------------------------------------------------------------------------


def stamps(*groups: tuple[str, int]) -> pd.Series:
    """Return UTC timestamps: ``count`` events at noon of each ``(day, count)``."""
    days = [ts(day) + pd.Timedelta(hours=12) for day, count in groups for _ in range(count)]
    return pd.Series(pd.DatetimeIndex(days).as_unit("us"))


def retail_with(day: str, count: int) -> pd.Series:
    """Return the real online-retail timestamps plus ``count`` events dated ``day`` (a broken date)."""
    real = pd.read_parquet(RETAIL_EVENTS, columns=["timestamp"])["timestamp"]
    return pd.concat([pd.Series([ts(day)] * count, dtype=real.dtype), real], ignore_index=True)


def test_the_start_of_clean_data_is_its_first_event() -> None:
    found = data_start(pd.read_parquet(RETAIL_EVENTS, columns=["timestamp"])["timestamp"])
    assert found.start == ts("2010-12-01 08:26")  # the first event, as before
    assert (found.events, found.before, found.describe(), found.to_dict()) == (22_190, 0, None, None)


def test_a_few_rows_with_a_broken_date_do_not_move_the_start() -> None:
    # before: 20 events dated 1900-01-01 made 111 years of history, and the plan was not adapted
    found = data_start(retail_with("1900-01-01", 20), "events.parquet")
    assert found.start == ts("2010-12-01 08:26")
    assert (found.events, found.before, found.acceptable) == (22_210, 20, True)
    assert found.first_before == found.last_before == ts("1900-01-01")
    assert found.describe() == (
        "events.parquet: 20 of 22,210 events (0.09%), dated 1900-01-01, lie before 40,510 days without any event; "
        "the history starts after them, on 2010-12-01 (at least 99.9% of the events lie on or after that day): the "
        "snapshots and the feature lookback are planned from there; correct or filter those rows if their dates "
        "are wrong"
    )
    assert found.to_dict() == {
        "events": 20,
        "of": 22_210,
        "share": 20 / 22_210,
        "first": "1900-01-01T00:00:00+00:00",
        "last": "1900-01-01T00:00:00+00:00",
        "message": found.describe(),
    }
    clean = plan(data_start(retail_with("1900-01-01", 0)).start)
    assert plan(found.start) == clean
    assert (len(clean.training), clean.every_days, clean.lookback_days) == (5, 19, 238)  # as the README says


def test_more_than_a_thousandth_before_a_year_without_events_is_not_acceptable() -> None:
    found = data_start(retail_with("1970-01-01", 1_200), "events.parquet")
    assert found.start == ts("2010-12-01 08:26")
    assert (found.before, found.acceptable, found.empty_days) == (1_200, False, 14_943)
    assert found.describe() == (
        "events.parquet: 1,200 of 23,390 events (5.1%), dated 1970-01-01, lie before 14,943 days without any "
        "event; the events really start on 2010-12-01. At most 0.1% of the events may lie before the start (they "
        "are then left out of the history with a warning): correct the dates of those rows or filter them out of "
        "the events (1900-01-01 and 1970-01-01 are the usual stand-ins for a missing date)"
    )


def test_the_thousandth_rule_at_its_boundary() -> None:
    one = data_start(stamps(("2011-01-01", 1), ("2011-03-01", 999)))  # 1 of 1,000 before: exactly 0.1%
    assert (one.start, one.before, one.acceptable) == (ts("2011-03-01 12:00"), 1, True)
    assert one.empty_days == 58  # the days without any event that set it apart
    two = data_start(stamps(("2011-01-01", 2), ("2011-03-01", 998)))  # 2 of 1,000 would be 0.2%: they count
    assert (two.start, two.before) == (ts("2011-01-01 12:00"), 0)
    few = data_start(stamps(("2011-01-01", 1), ("2011-02-01", 1), ("2011-03-03", 998)))
    assert (few.start, few.before) == (ts("2011-02-01 12:00"), 1)  # the latest day that leaves at most 0.1%


def test_the_earliest_events_of_data_that_starts_slowly_are_no_outliers() -> None:
    # before the rule asked for days without events to set them apart, evenly spread data lost its first 0.1% and
    # warned on every run: 5 million events over 9.5 years started 3 days late
    slow = data_start(stamps(*((f"2011-01-{day:02d}", 1) for day in range(1, 29)), ("2011-01-29", 9_972)))
    assert (slow.start, slow.before, slow.empty_days, slow.describe()) == (ts("2011-01-01 12:00"), 0, None, None)
    close = data_start(stamps(("2011-01-01", 1), ("2011-01-30", 999)))  # 28 days without events: not apart
    assert (close.start, close.before) == (ts("2011-01-01 12:00"), 0)
    apart = data_start(stamps(("2011-01-01", 1), ("2011-01-31", 999)))  # 29 days
    assert (apart.start, apart.before) == (ts("2011-01-01 12:00"), 0)
    far = data_start(stamps(("2011-01-01", 1), ("2011-02-01", 999)))  # 30 days: set apart
    assert (far.start, far.before, far.empty_days) == (ts("2011-02-01 12:00"), 1, 30)


def test_a_stretch_without_events_counts_when_longer_than_a_year_and_followed_by_a_thousandth() -> None:
    year = data_start(stamps(("2010-01-01", 10), ("2011-01-02", 990)))  # 365 days without events: no stretch
    assert (year.start, year.before) == (ts("2010-01-01 12:00"), 0)
    longer = data_start(stamps(("2010-01-01", 10), ("2011-01-03", 990)))  # 366 days without events
    assert (longer.start, longer.before, longer.empty_days, longer.acceptable) == (
        ts("2011-01-03 12:00"),
        10,
        366,
        False,
    )
    stray = data_start(stamps(("2010-01-01", 1_999), ("2013-01-01", 1)))  # under 0.1% after it: starts nothing
    assert (stray.start, stray.before) == (ts("2010-01-01 12:00"), 0)
    thousandth = data_start(stamps(("2010-01-01", 999), ("2013-01-01", 1)))  # 0.1% after it: the real start
    assert (thousandth.start, thousandth.before, thousandth.acceptable) == (ts("2013-01-01 12:00"), 999, False)
    late = data_start(stamps(("2005-01-01", 5), ("2010-01-01", 990), ("2013-01-01", 5)))
    assert (late.start, late.before, late.first_before, late.last_before) == (
        ts("2013-01-01 12:00"),
        995,
        ts("2005-01-01 12:00"),
        ts("2010-01-01 12:00"),
    )


def test_event_days_count_each_utc_day_in_any_order_and_any_century() -> None:
    texts = ["2011-01-02 23:59", "1500-06-01 00:00", "2011-01-02 00:00", "2011-01-01 12:00"]
    moments = pd.Series([pd.Timestamp(t) for t in texts], dtype="datetime64[us]")
    days = event_days(moments.dt.tz_localize("UTC"))
    assert days["day"].tolist() == [ts("1500-06-01"), ts("2011-01-01"), ts("2011-01-02")]
    assert days["events"].tolist() == [1, 1, 2]
    assert days["first"].tolist() == [ts("1500-06-01"), ts("2011-01-01 12:00"), ts("2011-01-02 00:00")]
    assert days["last"].tolist() == [ts("1500-06-01"), ts("2011-01-01 12:00"), ts("2011-01-02 23:59")]
    assert data_start(moments.iloc[:0].dt.tz_localize("UTC")).start is None
