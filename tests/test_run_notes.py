"""Each run's as-of date, and the note that shows it in Airflow's grid (the listener's words, without Airflow)."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest

from customer_ai_airflow import run_notes
from customer_ai_airflow.run_notes import note_of, run_as_of

NOW = dt.datetime(2026, 12, 6, 7, 20, tzinfo=dt.UTC)
SUNDAY = dt.datetime(2011, 12, 11, tzinfo=dt.UTC)


def test_a_manual_run_is_as_of_the_date_its_form_gives() -> None:
    assert run_as_of("manual", {"as_of": "2011-12-11", "factors": 2}, NOW, NOW, NOW) == "2011-12-11"
    assert run_as_of(SimpleNamespace(value="manual"), {"as_of": "2011-10-02"}, NOW, None, NOW) == "2011-10-02"


def test_other_runs_are_as_of_their_interval_end_else_their_logical_date_else_run_after() -> None:
    assert (
        run_as_of("scheduled", {"as_of": "2011-01-01"}, SUNDAY, NOW, NOW) == "2011-12-11"
    )  # a form's date: manual only
    assert run_as_of("backfill", None, SUNDAY, SUNDAY, NOW) == "2011-12-11"
    assert run_as_of("manual", {"as_of": ""}, None, SUNDAY, NOW) == "2011-12-11"  # the form's field left empty
    assert run_as_of("manual", {}, None, None, NOW) == "2026-12-06"
    late_evening = dt.datetime(2011, 12, 10, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=-2)))
    assert run_as_of("scheduled", None, late_evening, None, NOW) == "2011-12-11"  # in UTC
    with pytest.raises(ValueError, match="no data interval, logical date or run_after"):
        run_as_of("manual", None, None, None, None)


def run(dag_id: str = "customer_ai__repurchase_30d", note: str | None = None, **more: object) -> SimpleNamespace:
    fields = {"run_type": "manual", "conf": {"as_of": "2011-12-11"}, "data_interval_end": NOW, "logical_date": NOW}
    return SimpleNamespace(dag_id=dag_id, note=note, run_after=NOW, run_id="manual__1", **(fields | more))


def test_the_note_says_the_as_of_date_of_customer_ai_runs_only() -> None:
    assert note_of(run()) == "as of 2011-12-11"
    assert note_of(run(run_type="scheduled", conf={}, data_interval_end=SUNDAY)) == "as of 2011-12-11"
    assert note_of(run(dag_id="someone_elses_dag")) is None


def test_a_note_a_user_wrote_is_kept_and_a_failure_to_note_never_raises(caplog: pytest.LogCaptureFixture) -> None:
    # a stand-in that is no database row cannot be noted: the failure is logged, never raised to the scheduler
    # (real runs are noted in tests/test_airflow_services.py and tests/test_make_airflow.py)
    detached = SimpleNamespace(**vars(run()), id=1)
    run_notes.on_dag_run_success(detached, "success")
    assert "could not write the as-of note of run manual__1" in caplog.text
    other = run(dag_id="someone_elses_dag")
    run_notes.on_dag_run_running(other, "started")  # nothing to do: no error, no note
    assert other.note is None
