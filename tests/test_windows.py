"""As-of dates, training snapshot layout and half-open windows."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from customer_ai.windows import as_of_timestamp, in_window, training_snapshots

from conftest import ts

US = pd.Timedelta(microseconds=1)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2011-09-01", "2011-09-01 00:00"),
        (dt.date(2011, 9, 1), "2011-09-01 00:00"),
        (dt.datetime(2011, 9, 1, 13, 30), "2011-09-01 13:30"),
        (pd.Timestamp("2011-09-01"), "2011-09-01 00:00"),
        ("2011-09-01T02:00:00+02:00", "2011-09-01 00:00"),
        (dt.datetime(2011, 9, 1, 2, tzinfo=dt.timezone(dt.timedelta(hours=2))), "2011-09-01 00:00"),
        (pd.Timestamp("2011-08-31 20:00", tz="America/New_York"), "2011-09-01 00:00"),
    ],
)
def test_as_of_timestamp_is_utc(value: object, expected: str) -> None:
    stamp = as_of_timestamp(value)  # type: ignore[arg-type]
    assert stamp == ts(expected)
    assert str(stamp.tz) == "UTC"
    assert stamp.tz_localize(None) == pd.Timestamp(expected)  # the wall clock is UTC, not the input's zone


@pytest.mark.parametrize("value", ["garbage", "", "2011-13-45", None, "yesterday-ish", 20110901, 1.5e9])
def test_as_of_timestamp_rejects_garbage(value: object) -> None:
    with pytest.raises(ValueError, match="not a date"):
        as_of_timestamp(value)  # type: ignore[arg-type]


def test_training_snapshots_exact_dates_latest_first() -> None:
    snapshots = training_snapshots(ts("2011-12-01"), window_days=30, snapshots=3, every_days=30)
    assert snapshots == [ts("2011-11-01"), ts("2011-10-02"), ts("2011-09-02")]


def test_training_snapshots_spacing_differs_from_window() -> None:
    snapshots = training_snapshots(ts("2011-12-01"), window_days=60, snapshots=4, every_days=7)
    assert snapshots == [ts("2011-10-02"), ts("2011-09-25"), ts("2011-09-18"), ts("2011-09-11")]


@pytest.mark.parametrize(("window", "count", "every"), [(30, 2, 30), (60, 6, 14), (1, 3, 365)])
def test_every_training_label_window_closes_by_as_of(window: int, count: int, every: int) -> None:
    as_of = ts("2011-12-09")
    snapshots = training_snapshots(as_of, window, count, every)
    assert len(snapshots) == count
    assert snapshots[0] + pd.Timedelta(days=window) == as_of  # the latest window ends exactly at as_of
    assert all(s + pd.Timedelta(days=window) <= as_of for s in snapshots)
    assert all(a - b == pd.Timedelta(days=every) for a, b in zip(snapshots, snapshots[1:], strict=False))


def test_in_window_is_half_open() -> None:
    start, end = ts("2011-09-01"), ts("2011-10-01")
    stamps = pd.Series([start - US, start, start + US, end - US, end, end + US])
    assert in_window(stamps, start, end).tolist() == [False, True, True, True, False, False]
