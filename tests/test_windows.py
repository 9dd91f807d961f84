"""As-of dates and half-open windows (the snapshot layout is tested in test_history.py)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from customer_ai.windows import EventIndex, as_of_timestamp, in_window, rows_where

from conftest import make_events, ts

US = pd.Timedelta(microseconds=1)


@pytest.mark.parametrize(
    "value",
    [
        "2011-09-01",
        dt.date(2011, 9, 1),
        dt.datetime(2011, 9, 1),
        pd.Timestamp("2011-09-01"),
        dt.datetime(2011, 9, 1, 2, tzinfo=dt.timezone(dt.timedelta(hours=2))),  # midnight UTC
        pd.Timestamp("2011-08-31 20:00", tz="America/New_York"),  # midnight UTC
    ],
)
def test_as_of_timestamp_is_midnight_utc(value: object) -> None:
    stamp = as_of_timestamp(value)  # type: ignore[arg-type]
    assert stamp == ts("2011-09-01")
    assert str(stamp.tz) == "UTC"


@pytest.mark.parametrize(
    "value",
    # before: all of these were accepted (words and partial dates guessed, 11/12/2011 read as 12 November,
    # times of day kept and crashing a run later)
    [
        "now",
        "today",
        "2011",
        "2011-12",
        "11/12/2011",
        "20111209",
        "2011-12-09T23:00",
        "2011-12-09 00:00",
        " 2011-12-09",
        "2011-12-09\n",
        "garbage",
        "",
        None,
        20110901,
        1.5e9,
        True,
    ],
)
def test_as_of_timestamp_refuses_anything_but_a_date(value: object) -> None:
    with pytest.raises(ValueError, match=r"not a date: .*\(use YYYY-MM-DD, for example 2011-12-09\)"):
        as_of_timestamp(value)  # type: ignore[arg-type]


def test_as_of_timestamp_refuses_a_day_that_does_not_exist() -> None:
    with pytest.raises(ValueError, match="no such day in the calendar"):
        as_of_timestamp("2011-02-29")


@pytest.mark.parametrize(
    "value",
    [dt.datetime(2011, 12, 9, 23), pd.Timestamp("2011-12-09 00:00:01", tz="UTC"), dt.datetime(2011, 9, 1, 13, 30)],
)
def test_as_of_timestamp_refuses_a_time_of_day_and_names_both_days(value: object) -> None:
    stamp = pd.Timestamp(value)
    with pytest.raises(ValueError, match=f"has a time of day .* \\(use {stamp:%Y-%m-%d} or "):
        as_of_timestamp(value)  # type: ignore[arg-type]


def test_in_window_is_half_open() -> None:
    start, end = ts("2011-09-01"), ts("2011-10-01")
    stamps = pd.Series([start - US, start, start + US, end - US, end, end + US])
    assert in_window(stamps, start, end).tolist() == [False, True, True, True, False, False]


# --- the encoded events ---------------------------------------------------------------------------------------------


def test_event_index_sorts_by_profile_then_time_and_windows_are_half_open() -> None:
    events = make_events(
        [
            ("b", ts("2011-09-01") - US, "view"),  # last instant before the end
            ("a", ts("2011-08-31"), "view"),  # first instant of the window
            ("Zoë", ts("2011-08-31"), "view"),
            ("a", ts("2011-08-31") - US, "view"),  # before it
            ("b", ts("2011-08-31 12:00"), "buy"),
            ("a", ts("2011-09-01"), "view"),  # at the end: outside
        ]
    )
    index = EventIndex(events)
    assert list(index.profile_ids) == ["Zoë", "a", "b"]  # codes follow the ids' sorted order
    assert index.codes.tolist() == [0, 1, 1, 1, 2, 2]
    in_order = events.iloc[index.order]
    assert list(zip(in_order["profile_id"], in_order["timestamp"], strict=True)) == [
        ("Zoë", ts("2011-08-31")),
        ("a", ts("2011-08-31") - US),
        ("a", ts("2011-08-31")),
        ("a", ts("2011-09-01")),
        ("b", ts("2011-08-31 12:00")),
        ("b", ts("2011-09-01") - US),
    ]
    rows = index.window(ts("2011-08-31"), ts("2011-09-01"))
    picked = events.iloc[rows].sort_values(["profile_id", "timestamp"])
    assert list(zip(picked["profile_id"], picked["timestamp"], strict=True)) == [
        ("Zoë", ts("2011-08-31")),
        ("a", ts("2011-08-31")),
        ("b", ts("2011-08-31 12:00")),
        ("b", ts("2011-09-01") - US),
    ]
    assert index.codes_of(pd.Index(["b", "nobody", "Zoë"])).tolist() == [2, -1, 0]
    assert index.instant(ts("2011-09-01")) - index.instant(ts("2011-08-31")) == index.day_length()
    assert index.row_codes.tolist() == [index.profile_ids.get_loc(p) for p in events["profile_id"]]


def test_event_index_refuses_events_without_a_profile() -> None:
    events = make_events([("a", ts("2011-08-31"), "view"), ("b", ts("2011-08-31"), "view")])
    events.loc[1, "profile_id"] = None
    with pytest.raises(ValueError, match="'profile_id' has missing values"):
        EventIndex(events)


def test_the_events_of_some_profiles_keep_their_order_and_get_a_fresh_index() -> None:
    events = make_events(
        [
            ("b", ts("2011-01-03"), "view", None),
            ("a", ts("2011-01-01"), "purchase", 5.0),
            ("c", ts("2011-01-02"), "view", None),
            ("a", ts("2011-01-04"), "view", None),
        ]
    )
    own = EventIndex(events).events_of(["b", "a", "nobody"])  # in time order, as the events are
    assert own["profile_id"].tolist() == ["a", "b", "a"]
    assert own["timestamp"].tolist() == [ts("2011-01-01"), ts("2011-01-03"), ts("2011-01-04")]
    assert own.index.tolist() == [0, 1, 2]
    assert EventIndex(events).events_of([]).empty


def test_rows_where_selects_like_a_boolean_mask_column_by_column() -> None:
    import pyarrow as pa  # noqa: PLC0415

    text = pa.chunked_array([["x", None], ["y"], [], ["z", "w"]], type=pa.large_string())  # several chunks
    frame = pd.DataFrame(
        {
            "profile_id": pd.array(text, dtype="str"),
            "timestamp": [ts("2011-01-01"), ts("2011-01-02"), ts("2011-01-03"), ts("2011-01-04"), ts("2011-01-05")],
            "value": [1.0, float("nan"), 3.0, 4.0, 5.0],
            "note": pd.Series(["p", None, "q", "r", "s"], dtype=object),
        },
        index=[10, 11, 12, 13, 14],
    )
    mask = np.array([False, True, True, False, True])
    selected = rows_where(frame, mask)
    pd.testing.assert_frame_equal(selected, frame[mask].reset_index(drop=True), check_exact=True)
    assert selected["profile_id"].isna().tolist() == [True, False, False]
    assert selected["profile_id"].iloc[1:].tolist() == ["y", "w"]
    assert rows_where(frame, np.zeros(5, dtype=bool)).shape == (0, 4)


@pytest.mark.parametrize(
    "value",
    # before: "0001-01-01" gave pandas' "strftime not yet supported" traceback (or the store's "as-of date
    # '1-01-01' is not a date"), "9999-12-31" a run over windows that pandas cannot hold
    [
        "0001-01-01",
        "1677-09-21",
        "1799-12-31",
        "2200-01-01",
        "2262-04-11",
        "9999-12-31",
        dt.date(1, 1, 1),
        dt.datetime(3000, 1, 1),
        dt.datetime(1, 1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=2))),  # before the calendar's first day in UTC
        dt.datetime(9999, 12, 31, 23, tzinfo=dt.timezone(dt.timedelta(hours=-2))),  # after its last day in UTC
    ],
)
def test_as_of_timestamp_refuses_a_date_outside_the_supported_range(value: object) -> None:
    with pytest.raises(ValueError, match="is outside the as-of dates") as raised:
        as_of_timestamp(value)  # type: ignore[arg-type]
    assert str(raised.value) == (
        f"{value!r} is outside the as-of dates customer-ai supports, 1800-01-01 to 2199-12-31 (every window around "
        "the date, up to 90 years back and 10 years ahead, must lie within 1677-09-21 .. 2262-04-11, the timestamps "
        "pandas holds)"
    )


@pytest.mark.parametrize("value", ["1800-01-01", "2199-12-31", dt.date(1800, 1, 1), dt.datetime(2199, 12, 31)])
def test_the_first_and_last_supported_dates_and_their_widest_windows_hold(value: object) -> None:
    from customer_ai.windows import FIRST_AS_OF, LAST_AS_OF

    stamp = as_of_timestamp(value)  # type: ignore[arg-type]
    assert stamp.date() in (FIRST_AS_OF, LAST_AS_OF)
    # the longest settings: a 10-year lookback before 60 snapshots a year apart, behind two 10-year goal windows
    farthest_back = stamp - pd.Timedelta(days=3650 + 59 * 365 + 3650 + 3650)
    assert farthest_back > pd.Timestamp.min.tz_localize("UTC")
    assert stamp + pd.Timedelta(days=3650) < pd.Timestamp.max.tz_localize("UTC")
    assert f"{stamp:%Y-%m-%d}" == str(stamp.date())
