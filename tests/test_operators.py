"""The operators' own logic: the as-of date of a run, its attempt, parameters, where the store comes from, and
the attempt rows a task leaves in the store when it fails."""

from __future__ import annotations

import datetime as dt
import json
import secrets
from contextlib import closing
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import psycopg2
import pytest
import yaml
from psycopg2 import sql

from customer_ai import artifacts, frozen
from customer_ai.spec import load_spec
from customer_ai.store import SQLiteStore
from customer_ai.store.lease import RunInProgressError
from customer_ai_airflow import connections
from customer_ai_airflow.operators import (
    BuildTrainingSetOperator,
    InvalidInstanceOperator,
    QualityGateOperator,
    TrainModelOperator,
    ValidateEventsOperator,
    _param,
    as_of_from_context,
    attempt_of,
)

from conftest import BASE_SPEC, make_events


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


def test_libpq_arguments_become_a_postgres_address() -> None:
    arguments = {"host": "db", "port": 5433, "user": "ai user", "password": "p@ss:w/rd", "dbname": "crm"}
    assert connections.libpq_address(arguments) == "postgresql://ai%20user:p%40ss%3Aw%2Frd@db:5433/crm"
    assert connections.libpq_address({"host": None, "port": None, "user": None, "dbname": None}) == (
        "postgresql://localhost/"
    )
    options = {"host": "/var/run/postgresql", "dbname": "crm", "sslmode": "verify-full", "keepalives": True}
    assert connections.libpq_address(options) == (
        "postgresql://%2Fvar%2Frun%2Fpostgresql/crm?sslmode=verify-full&keepalives=true"
    )
    assert connections.libpq_address({"host": "::1", "options": "-c search_path=x"}) == (
        "postgresql://[::1]/?options=-c+search_path%3Dx"
    )


def _connection(monkeypatch: pytest.MonkeyPatch, name: str, **fields: object) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{name.upper()}", json.dumps({"conn_type": "postgres", **fields}))


def test_a_connections_extras_are_libpq_options_but_the_hooks_and_ours(monkeypatch: pytest.MonkeyPatch) -> None:
    # before: the address was rebuilt from the fields alone, and sslmode and every other extra were dropped
    extra = {"schema": "scores", "sslmode": "require", "connect_timeout": 7, "cursor": "dictcursor"}
    _connection(
        monkeypatch, "warehouse", host="db", port=5432, login="ai", password="s3cret", schema="crm", extra=extra
    )
    address, own = connections.postgres_address("warehouse")
    assert address == "postgresql://ai:s3cret@db:5432/crm?sslmode=require&connect_timeout=7"  # cursor: the hook's
    assert own == {"schema": "scores"}  # ours: the store's schema, never a libpq option
    assert connections.events_dsn("warehouse") == address
    assert connections.events_dsn(None) is None


def test_store_address_comes_from_the_connection_then_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_CUSTOMER_AI_STORE", raising=False)
    monkeypatch.setenv("CUSTOMER_AI_STORE", "sqlite:///tmp/x.sqlite")
    assert connections.store_address() == ("sqlite:///tmp/x.sqlite", None)
    monkeypatch.delenv("CUSTOMER_AI_STORE")
    assert connections.store_address() == (None, None)
    _connection(monkeypatch, "customer_ai_store", host="db", port=5432, login="ai", schema="crm", extra={"schema": "s"})
    assert connections.store_address() == ("postgresql://ai@db:5432/crm", "s")


def test_a_store_connection_with_libpq_extras_opens_the_real_store(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from customer_ai.store import open_store

    schema = f"ci_conn_{secrets.token_hex(4)}"
    extra = {"schema": schema, "sslmode": "disable", "connect_timeout": 5, "application_name": "customer-ai-test"}
    _connection(
        monkeypatch, "customer_ai_store", host="127.0.0.1", port=5432, login="postgres", schema="test", extra=extra
    )
    address, chosen = connections.store_address()
    assert chosen == schema
    store = open_store(address, tmp_path, chosen)
    try:
        store.check()  # created and migrated through the connection's address, libpq options included
        with closing(psycopg2.connect(address)) as conn, conn.cursor() as cursor:
            cursor.execute("SHOW application_name")
            assert cursor.fetchone() == ("customer-ai-test",)
    finally:
        with closing(psycopg2.connect(address)) as conn, conn.cursor() as cursor:
            cursor.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
            conn.commit()


def test_an_invalid_instance_task_fails_with_the_files_error() -> None:
    from airflow.sdk.exceptions import AirflowFailException

    task = InvalidInstanceOperator(task_id="instance_file_is_invalid", message="x.yaml: goal: bad")
    with pytest.raises(AirflowFailException, match="x.yaml: goal: bad"):
        task.execute({})


def test_every_task_and_try_of_one_dag_run_shares_its_attempt() -> None:
    def context(dag_id: str, run_id: str) -> dict:
        return {"dag_run": SimpleNamespace(dag_id=dag_id, run_id=run_id)}

    first = attempt_of(context("customer_ai__shop", "manual__2011-12-11T00:00:00+00:00"))
    assert first == attempt_of(context("customer_ai__shop", "manual__2011-12-11T00:00:00+00:00"))
    assert first == artifacts.attempt_id("customer_ai__shop", "manual__2011-12-11T00:00:00+00:00")
    assert first.startswith("af-")
    assert len(first) == len("af-") + 10
    others = {
        attempt_of(context("customer_ai__shop", "manual__2011-12-11T00:00:01+00:00")),  # another run of the DAG
        attempt_of(context("customer_ai__other", "manual__2011-12-11T00:00:00+00:00")),  # the same run id elsewhere
        attempt_of(context("customer_ai__sho", "pmanual__2011-12-11T00:00:00+00:00")),  # the same characters
    }
    assert first not in others
    assert len(others) == 3


AS_OF = "2011-12-11"
DAG_ID, RUN_ID = "customer_ai__unit", "manual__2011-12-11T06:00:00+00:00"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A CUSTOMER_AI_HOME whose store is the embedded SQLite file (no connection, no CUSTOMER_AI_STORE)."""
    monkeypatch.delenv("AIRFLOW_CONN_CUSTOMER_AI_STORE", raising=False)
    monkeypatch.delenv("CUSTOMER_AI_STORE", raising=False)
    monkeypatch.setenv("CUSTOMER_AI_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def instance_file(folder: Path) -> Path:
    """Write the unit instance with a few purchases in 2011: nothing before 2011-01-01."""
    events = make_events([(f"p{i}", f"2011-0{1 + i % 9}-1{i % 10}", "purchase", 10.0) for i in range(40)])
    events.to_parquet(folder / "events.parquet", index=False)
    path = folder / "unit.yaml"
    path.write_text(yaml.safe_dump({**BASE_SPEC, "events": {"path": str(folder / "events.parquet")}}))
    return path


def started(home: Path, path: Path, as_of: str = AS_OF) -> Path:
    """Freeze the instance at ``path`` into the DAG run's attempt folder, as its first task does; return the folder."""
    folder = artifacts.staging_dir(home, "unit", pd.Timestamp(as_of, tz="UTC"), artifacts.attempt_id(DAG_ID, RUN_ID))
    folder.mkdir(parents=True, exist_ok=True)
    frozen.freeze(load_spec(path), folder, str(path))
    return folder


def task_context(as_of: str = AS_OF, try_number: int = 1) -> dict:
    """Return the context of a task of a manual DAG run as of ``as_of``, in its try ``try_number``."""
    run = SimpleNamespace(
        dag_id=DAG_ID,
        run_id=RUN_ID,
        run_type=SimpleNamespace(value="manual"),
        conf={"as_of": as_of},
        run_after=utc(f"{as_of}T06:00:00"),
    )
    return {
        "data_interval_end": utc(f"{as_of}T06:00:00"),
        "dag_run": run,
        "params": {"as_of": as_of},
        "ti": SimpleNamespace(try_number=try_number),
    }


def attempts(home: Path) -> list[tuple]:
    rows = SQLiteStore(home / "store.sqlite").read_attempts("unit")
    return list(rows[["as_of", "attempt", "step", "try_number", "status", "reason"]].itertuples(index=False, name=None))


def test_a_task_that_raises_records_its_try_as_failed_and_raises_the_same_error(home: Path, tmp_path: Path) -> None:
    path = instance_file(tmp_path)
    started(home, path)
    task = TrainModelOperator(task_id="train", instance_path=str(path))
    with pytest.raises(FileNotFoundError, match="plan.json") as raised:  # no earlier step ran in this attempt
        task.execute(task_context(try_number=3))
    attempt = artifacts.attempt_id(DAG_ID, RUN_ID)
    ((as_of, recorded, step, try_number, status, reason),) = attempts(home)
    assert (as_of, recorded, step, try_number, status) == (AS_OF, attempt, "train", 3, "failed")
    assert reason == " ".join(f"FileNotFoundError: {raised.value}".split())
    assert SQLiteStore(home / "store.sqlite").latest_run("unit") is None  # nothing published


def test_bad_events_leave_the_start_and_the_failure_of_the_attempt(home: Path, tmp_path: Path) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    task = ValidateEventsOperator(task_id="validate_events", instance_path=str(instance_file(tmp_path)))
    with pytest.raises(AirflowFailException, match="lies before the events start"):  # not retried
        task.execute(task_context("2010-06-06", try_number=2))
    attempt = artifacts.attempt_id(DAG_ID, RUN_ID)
    (started, failed) = attempts(home)
    assert started[:5] == ("2010-06-06", attempt, "validate_events", 2, "started")  # the try that started
    assert started[5] == f"started by Airflow DAG run {DAG_ID} / {RUN_ID}"
    assert failed[:5] == ("2010-06-06", attempt, "validate_events", 2, "failed")
    assert failed[5].startswith("AirflowFailException: instance unit: no events before the as-of date 2010-06-06")


def poor_model(home: Path, path: Path, auc: float) -> None:
    """Write the model.json an attempt's train step leaves, with a held-out ROC AUC of ``auc``."""
    folder = started(home, path)
    metrics = {"roc_auc": auc, "calibration_error": 0.01}
    (folder / "model.json").write_text(json.dumps({"model_version": "v-poor", "validation": {"metrics": metrics}}))


def test_a_poor_model_is_recorded_as_poor_by_the_gate_and_not_as_a_failure(home: Path, tmp_path: Path) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    path = instance_file(tmp_path)
    poor_model(home, path, auc=0.52)
    task = QualityGateOperator(task_id="quality_gate", instance_path=str(path))
    with pytest.raises(AirflowFailException, match="model v-poor is poor: validation ROC AUC 0.520 is below"):
        task.execute(task_context(try_number=2))
    ((as_of, attempt, step, try_number, status, reason),) = attempts(home)  # no 'failed' row beside it
    assert (as_of, attempt, step, try_number, status) == (
        AS_OF,
        artifacts.attempt_id(DAG_ID, RUN_ID),
        "quality_gate",
        2,
        "poor",
    )
    assert reason.startswith("model v-poor is poor: validation ROC AUC 0.520 is below the quality gate of 0.65")


def test_a_good_model_passes_the_gate_and_records_nothing(home: Path, tmp_path: Path) -> None:
    path = instance_file(tmp_path)
    poor_model(home, path, auc=0.9)
    task = QualityGateOperator(task_id="quality_gate", instance_path=str(path))
    assert task.execute(task_context())["status"] == "ok"
    assert attempts(home) == []


def test_an_unreachable_store_fails_the_task_before_its_step(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the run lock lives in the store: without it no step may run (before: the step ran, and failed on its own)
    from customer_ai import steps
    from customer_ai.store import StoreUnavailableError

    monkeypatch.setenv("CUSTOMER_AI_STORE", "postgresql://postgres@127.0.0.1:1/test")  # nothing listens there
    monkeypatch.setattr(steps, "train", lambda *args, **kwargs: pytest.fail("the step ran without the run lock"))
    path = instance_file(tmp_path)
    started(home, path)
    task = TrainModelOperator(task_id="train", instance_path=str(path))
    with pytest.raises(StoreUnavailableError, match="cannot connect to the PostgreSQL profile store"):
        task.execute(task_context())
    assert not (home / "store.sqlite").exists()


def test_a_model_found_broken_fails_its_task_without_retries(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # before: the task was retried, and every retry failed: the broken folder was already set aside
    from airflow.sdk.exceptions import AirflowFailException

    from customer_ai import steps

    def broken(*args: object, **kwargs: object) -> dict:
        raise artifacts.BrokenModelError("model v1 is broken: model.txt is cut short; its folder was moved aside")

    monkeypatch.setattr(steps, "train", broken)
    path = instance_file(tmp_path)
    started(home, path)
    task = TrainModelOperator(task_id="train", instance_path=str(path))
    with pytest.raises(AirflowFailException, match="moved aside; trigger the run again: it trains a new model"):
        task.execute(task_context(try_number=1))
    ((_, _, step, _, status, reason),) = attempts(home)
    assert (step, status) == ("train", "failed")
    assert reason.startswith("BrokenModelError: model v1 is broken")


def test_every_task_after_the_first_uses_the_definition_the_first_froze(home: Path, tmp_path: Path) -> None:
    path = instance_file(tmp_path)
    days = pd.date_range("2011-01-03", "2011-12-05", freq="5D")  # purchases all year: both windows can train
    rows = [(f"p{i % 12}", f"{day:%Y-%m-%d}", "purchase", 10.0) for i, day in enumerate(days)]
    make_events(rows).to_parquet(tmp_path / "events.parquet", index=False)
    ValidateEventsOperator(task_id="validate_events", instance_path=str(path)).execute(task_context())
    folder = artifacts.staging_dir(home, "unit", pd.Timestamp(AS_OF, tz="UTC"), artifacts.attempt_id(DAG_ID, RUN_ID))
    assert json.loads((folder / "instance.json").read_text())["source"] == str(path)
    edited = {**BASE_SPEC, "events": {"path": str(tmp_path / "events.parquet")}}
    path.write_text(yaml.safe_dump({**edited, "goal": {**BASE_SPEC["goal"], "window_days": 7}}))  # during the run
    task = BuildTrainingSetOperator(task_id="build_training_set", instance_path=str(path), instance_name="unit")
    task.execute(task_context())
    plan = json.loads((folder / "plan.json").read_text())
    assert plan["history"]["window_days"] == 30  # the frozen goal window, not the edited one
    assert load_spec(path).goal.window_days == 7


def test_a_later_task_without_the_frozen_definition_fails_without_retries(home: Path, tmp_path: Path) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    task = TrainModelOperator(task_id="train", instance_path=str(instance_file(tmp_path)), instance_name="unit")
    with pytest.raises(AirflowFailException, match=r"instance.json: the run's instance definition is missing"):
        task.execute(task_context())


def lock_of(home: Path) -> str | None:
    held, _ = SQLiteStore(home / "store.sqlite").lock_holder("unit")
    return None if held is None else held.attempt


def test_the_tasks_of_a_run_hold_its_lock_and_its_last_failure_frees_it(home: Path, tmp_path: Path) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    path = instance_file(tmp_path)
    attempt = artifacts.attempt_id(DAG_ID, RUN_ID)
    started(home, path)
    task = TrainModelOperator(task_id="train", instance_path=str(path), retries=2)
    with pytest.raises(FileNotFoundError):  # a failure Airflow retries: the run goes on, and keeps its lock
        task.execute(task_context(try_number=1))
    held, _ = SQLiteStore(home / "store.sqlite").lock_holder("unit")
    assert (held.attempt, held.scope) == (attempt, f"dag:{DAG_ID}")
    assert held.origin == f"Airflow DAG run {DAG_ID} / {RUN_ID}, task train"
    with pytest.raises(FileNotFoundError):  # the last try: the run ends, the lock is free for the next run
        task.execute(task_context(try_number=3))
    assert lock_of(home) is None
    with pytest.raises(AirflowFailException):  # not retried: the same
        ValidateEventsOperator(task_id="validate_events", instance_path=str(path)).execute(task_context("2010-06-06"))
    assert lock_of(home) is None


def test_a_later_task_of_a_run_whose_lock_was_taken_fails_without_retries(home: Path, tmp_path: Path) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    path = instance_file(tmp_path)
    started(home, path)
    SQLiteStore(home / "store.sqlite").take_lock("unit", "cli-other", "another run", "process:x:1", minutes=10)
    task = TrainModelOperator(task_id="train", instance_path=str(path), retries=2)
    with pytest.raises(AirflowFailException, match=r"this run lost its run lock .*: another run of unit is in"):
        task.execute(task_context(try_number=1))
    assert lock_of(home) == "cli-other"  # not its lock: left alone


def test_the_first_task_waits_for_another_run_then_fails_and_is_retried(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from customer_ai import run_lock

    monkeypatch.setattr(run_lock, "lock_minutes", lambda: 1 / 60)  # a lease of 1 s: the first task waits 1 s
    monkeypatch.setattr(run_lock, "POLL_SECONDS", 0.2)
    path = instance_file(tmp_path)
    SQLiteStore(home / "store.sqlite").take_lock("unit", "cli-other", "another run", "process:x:1", minutes=10)
    task = ValidateEventsOperator(task_id="validate_events", instance_path=str(path), retries=2)
    with pytest.raises(RunInProgressError, match=r"another run of unit is in progress: attempt cli-other"):
        task.execute(task_context(try_number=1))
    assert lock_of(home) == "cli-other"
    failed = attempts(home)[-1]
    assert failed[2:5] == ("validate_events", 1, "failed")
