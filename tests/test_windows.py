"""As-of dates and half-open windows (the snapshot layout is tested in test_history.py)."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from customer_ai.windows import as_of_timestamp, in_window

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


def test_in_window_is_half_open() -> None:
    start, end = ts("2011-09-01"), ts("2011-10-01")
    stamps = pd.Series([start - US, start, start + US, end - US, end, end + US])
    assert in_window(stamps, start, end).tolist() == [False, True, True, True, False, False]
