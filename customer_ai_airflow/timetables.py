"""A schedule that ends: the timetable of an instance whose data stops at a known date (``end_date``).

Airflow's own ``end_date`` of a DAG does more than stop the schedule: a run whose logical date is after it gets no
task at all, so a manual run of an ended instance would do nothing.  :class:`CronUntilTimetable` is Airflow's
``CronTriggerTimetable`` (the timetable a cron or preset ``schedule`` gets by default) that plans no run after the
end; manual runs, which pick their own as-of date, are left as they are, and a backfill gets every planned run up
to the end.  Airflow keeps the timetable of each DAG serialized: the plugin (:mod:`customer_ai_airflow.plugin`)
registers this class, so the scheduler can read it back.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from airflow.timetables.trigger import CronTriggerTimetable

if TYPE_CHECKING:
    from airflow.timetables.base import DagRunInfo, DataInterval, TimeRestriction


class CronUntilTimetable(CronTriggerTimetable):
    """Runs on a cron expression or preset, as of each run's time, until ``end`` (midnight UTC of that day).

    Parameters
    ----------
    cron : str
        A cron expression or preset (``@weekly``).
    end : datetime.date
        The last day a run may be planned for: a run planned after its midnight (UTC) is not created.
    """

    def __init__(self, cron: str, *, end: dt.date) -> None:
        super().__init__(cron, timezone="UTC")
        self.cron = cron  # as written: a preset stays a preset
        self.end = end
        self._end_time = dt.datetime(end.year, end.month, end.day, tzinfo=dt.UTC)
        self.description = f"{self.description}, until {end:%Y-%m-%d}" if self.description else ""

    @property
    def summary(self) -> str:
        """Return what the UI shows as the schedule: the expression and its end."""
        return f"{self.cron} until {self.end:%Y-%m-%d}"

    def next_dagrun_info(
        self, *, last_automated_data_interval: DataInterval | None, restriction: TimeRestriction
    ) -> DagRunInfo | None:
        """Return the next planned run, as Airflow's cron timetable would, or None once it is after the end."""
        planned = super().next_dagrun_info(
            last_automated_data_interval=last_automated_data_interval, restriction=restriction
        )
        if planned is None or planned.run_after > self._end_time:
            return None
        return planned

    def serialize(self) -> dict[str, Any]:
        """Return the JSON Airflow keeps of this timetable."""
        return {"expression": self.cron, "end": self.end.isoformat()}

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> CronUntilTimetable:
        """Return the timetable kept as ``data`` by :meth:`serialize`."""
        return cls(data["expression"], end=dt.date.fromisoformat(data["end"]))
