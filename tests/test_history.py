"""History coverage: snapshot layout, detection of a short history, adaptation and refusal, at the boundaries."""

from __future__ import annotations

import pandas as pd
import pytest

from customer_ai.history import (
    InsufficientHistoryError,
    SnapshotPlan,
    configured_history_start,
    plan_snapshots,
)

from conftest import ts

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


def test_history_shorter_than_the_minimum_lookback_is_refused_with_the_reason() -> None:
    start = ts("2011-10-12") - pd.Timedelta(days=27)
    with pytest.raises(InsufficientHistoryError) as info:
        plan(start)
    message = str(info.value)
    assert "the events start on 2011-09-15" in message
    assert "validates on 2011-11-11 and trains on 2011-10-12 at the latest, which leaves 27 days" in message
    assert "at least 28 are needed (training.min_lookback_days)" in message
    assert plan(ts("2011-10-12") - pd.Timedelta(days=28)).lookback_days == 28  # exactly the minimum: accepted


def test_a_history_that_starts_after_the_latest_training_snapshot_is_refused() -> None:
    with pytest.raises(InsufficientHistoryError, match="which leaves 0 days of history"):
        plan(ts("2011-11-01"))


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
