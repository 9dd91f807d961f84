"""The operators' own logic: the as-of date of a run, parameters, and where the store comes from."""

from __future__ import annotations

import datetime as dt
import json
from types import SimpleNamespace

import pandas as pd
import pytest

from customer_ai_airflow import connections
from customer_ai_airflow.operators import InvalidInstanceOperator, _param, as_of_from_context


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("context", "expected"),
    [
        ({"data_interval_end": utc("2011-10-02T00:00:00"), "logical_date": utc("2011-09-25T00:00:00")}, "2011-10-02"),
        ({"data_interval_end": None, "logical_date": utc("2011-10-02T15:30:00")}, "2011-10-02"),  # midnight UTC
        (
            {
                "data_interval_end": None,
                "logical_date": None,
                "dag_run": SimpleNamespace(run_after=utc("2011-10-03T09:00:00")),
            },
            "2011-10-03",
        ),
        (
            {"data_interval_end": dt.datetime(2011, 10, 2, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=-2)))},
            "2011-10-03",
        ),  # 23:30 at UTC-2 is 01:30 UTC the next day
    ],
)
def test_as_of_is_the_data_interval_end_at_midnight_utc(context: dict, expected: str) -> None:
    assert as_of_from_context(context) == pd.Timestamp(expected, tz="UTC")


def manual(conf: dict, run_type: str = "manual") -> dict:
    """Return the context of a run triggered on 2026-11-29 (its data interval ends then) with ``conf``."""
    run = SimpleNamespace(run_type=SimpleNamespace(value=run_type), conf=conf, run_after=utc("2026-11-29T06:40:00"))
    return {"data_interval_end": utc("2026-11-29T00:00:00"), "dag_run": run, "params": {"as_of": conf.get("as_of")}}


@pytest.mark.parametrize(
    ("context", "expected"),
    [
        (manual({"as_of": "2011-12-11", "factors": 5}), "2011-12-11"),  # the trigger form's field
        (manual({"factors": 2}), "2026-11-29"),  # a REST trigger without it: the run's own date
        (manual({"as_of": None}), "2026-11-29"),  # the form's field left empty
        (manual({"as_of": ""}), "2026-11-29"),
        (manual({"as_of": "2011-12-11"}, run_type="scheduled"), "2026-11-29"),  # only manual runs take it
        (manual({"as_of": "2011-12-11"}, run_type="backfill"), "2026-11-29"),
    ],
)
def test_a_manual_run_is_as_of_the_date_given_with_its_trigger(context: dict, expected: str) -> None:
    assert as_of_from_context(context) == pd.Timestamp(expected, tz="UTC")


@pytest.mark.parametrize(
    ("given", "reason"),
    [
        ("2011-02-30", "trigger parameter as_of: not a date: '2011-02-30' (no such day in the calendar)"),
        ("11/12/2011", "trigger parameter as_of: not a date: '11/12/2011' (use YYYY-MM-DD, for example 2011-12-09)"),
        (20111211, "trigger parameter as_of: not a date: 20111211 (use YYYY-MM-DD, for example 2011-12-09)"),
    ],
)
def test_a_bad_trigger_date_fails_the_task_with_the_reason(given: object, reason: str) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException) as failed:
        as_of_from_context(manual({"as_of": given}))
    assert str(failed.value) == reason


def test_params_are_converted_or_absent() -> None:
    context = {"params": {"factors": "3", "min_auc": 0.7, "force_retrain": True}}
    assert _param(context, "factors", int) == 3
    assert _param(context, "min_auc", float) == 0.7
    assert _param(context, "force_retrain", bool) is True
    assert _param(context, "missing", int) is None


def test_connection_fields_become_a_postgres_address() -> None:
    conn = SimpleNamespace(login="ai user", password="p@ss:w/rd", host="db", port=5433, schema="crm")
    assert connections.connection_dsn(conn) == "postgresql://ai%20user:p%40ss%3Aw%2Frd@db:5433/crm"
    bare = SimpleNamespace(login=None, password=None, host=None, port=None, schema=None)
    assert connections.connection_dsn(bare) == "postgresql://localhost/"


def test_store_address_comes_from_the_connection_then_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_CUSTOMER_AI_STORE", raising=False)
    monkeypatch.setenv("CUSTOMER_AI_STORE", "sqlite:///tmp/x.sqlite")
    assert connections.store_address() == ("sqlite:///tmp/x.sqlite", None)
    monkeypatch.delenv("CUSTOMER_AI_STORE")
    assert connections.store_address() == (None, None)
    monkeypatch.setenv(
        "AIRFLOW_CONN_CUSTOMER_AI_STORE",
        json.dumps(
            {
                "conn_type": "postgres",
                "host": "db",
                "port": 5432,
                "login": "ai",
                "schema": "crm",
                "extra": {"schema": "scores"},
            }
        ),
    )
    assert connections.store_address() == ("postgresql://ai@db:5432/crm", "scores")


def test_an_invalid_instance_task_fails_with_the_files_error() -> None:
    from airflow.sdk.exceptions import AirflowFailException

    task = InvalidInstanceOperator(task_id="instance_file_is_invalid", message="x.yaml: goal: bad")
    with pytest.raises(AirflowFailException, match="x.yaml: goal: bad"):
        task.execute({})
