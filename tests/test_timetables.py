"""The timetable of a schedule that ends: Airflow's cron timetable, no planned run after the end, manual runs free."""

from __future__ import annotations

import datetime as dt

import pendulum
import pytest
from airflow.timetables.base import DataInterval, TimeRestriction

from customer_ai_airflow.timetables import CronUntilTimetable

END = dt.date(2011, 12, 11)


def utc(day: str) -> pendulum.DateTime:
    return pendulum.parse(f"{day}T00:00:00+00:00")


def planned(timetable: CronUntilTimetable, start: str, *, catchup: bool = True, limit: int = 100) -> list[str]:
    """Return the dates the scheduler would plan from ``start`` on, one after the other, until the timetable stops."""
    restriction = TimeRestriction(earliest=utc(start), latest=None, catchup=catchup)
    dates: list[str] = []
    last: DataInterval | None = None
    for _ in range(limit):
        info = timetable.next_dagrun_info(last_automated_data_interval=last, restriction=restriction)
        if info is None:
            return dates
        dates.append(info.run_after.date().isoformat())
        last = info.data_interval
    raise AssertionError(f"the timetable did not stop within {limit} runs: {dates[-3:]}")


def test_weekly_runs_stop_on_the_end_day() -> None:
    timetable = CronUntilTimetable("@weekly", end=END)
    assert planned(timetable, "2011-11-01") == [
        "2011-11-06",
        "2011-11-13",
        "2011-11-20",
        "2011-11-27",
        "2011-12-04",
    ] + [
        "2011-12-11"  # as of the end day itself: the last run
    ]
    assert planned(CronUntilTimetable("@weekly", end=dt.date(2011, 12, 10)), "2011-11-28") == ["2011-12-04"]
    assert planned(CronUntilTimetable("0 6 * * 1", end=END), "2011-12-01") == ["2011-12-05"]  # 06:00 on the 12th: after


def test_without_catch_up_an_ended_schedule_plans_nothing_today() -> None:
    # what a fresh Airflow does with the examples: their data, and their schedule, ended in 2011
    assert planned(CronUntilTimetable("@weekly", end=END), "2010-01-01", catchup=False) == []


def test_a_manual_run_keeps_any_date_and_the_interval_of_the_cron_timetable() -> None:
    timetable = CronUntilTimetable("@weekly", end=END)
    after_the_end = utc("2026-12-06")
    assert timetable.infer_manual_data_interval(run_after=after_the_end) == DataInterval(after_the_end, after_the_end)


@pytest.mark.parametrize("cron", ["@weekly", "0 6 * * 1", "@daily"])
def test_the_timetable_survives_airflows_serialization(cron: str) -> None:
    from airflow.serialization.decoders import decode_timetable  # noqa: PLC0415 - Airflow's own round trip
    from airflow.serialization.encoders import encode_timetable  # noqa: PLC0415

    timetable = CronUntilTimetable(cron, end=END)
    encoded = encode_timetable(timetable)  # refused for a class no plugin registers
    assert encoded["__type"] == "customer_ai_airflow.timetables.CronUntilTimetable"
    assert encoded["__var"] == {"expression": cron, "end": "2011-12-11"}
    decoded = decode_timetable(encoded)
    assert isinstance(decoded, CronUntilTimetable)
    assert (decoded.cron, decoded.end) == (cron, END)
    assert decoded.summary == f"{cron} until 2011-12-11"


def test_the_ui_says_when_the_schedule_ends() -> None:
    timetable = CronUntilTimetable("@weekly", end=END)
    assert timetable.summary == "@weekly until 2011-12-11"
    assert timetable.description == "At 00:00, only on Sunday, until 2011-12-11"
