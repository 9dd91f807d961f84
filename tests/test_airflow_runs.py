"""Real DAG runs: `airflow dags test` on Airflow's SQLite metadata DB, scores in the real PostgreSQL (or SQLite)."""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import psycopg2
import pytest
import yaml
from airflow_support import DAG, airflow_env, eligible_at, migrate, run_airflow, write_instance

from conftest import ROOT

pytestmark = pytest.mark.airflow

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "dbname": "test"}


STORE_PASSWORD = "s3cret-store-pw"  # the server trusts local connections: a password it ignores, to look for


def pg_store_connection(schema: str, port: int = 5432) -> str:
    return json.dumps(
        {
            "conn_type": "postgres",
            "host": "127.0.0.1",
            "port": port,
            "login": "postgres",
            "password": STORE_PASSWORD,
            "schema": "test",
            "extra": {"schema": schema},
        }
    )


def counts(schema: str) -> dict[str, int]:
    with psycopg2.connect(**PG) as connection, connection.cursor() as cursor:
        result = {}
        for table in ("customer_ai_scores", "customer_ai_score_history", "customer_ai_runs"):
            cursor.execute(f'SELECT COUNT(*) FROM "{schema}"."{table}"')  # noqa: S608 - test-made identifiers
            result[table] = cursor.fetchone()[0]
    return result


def query(schema: str, sql: str) -> list[tuple]:
    with psycopg2.connect(**PG) as connection, connection.cursor() as cursor:
        cursor.execute(sql.format(schema=schema))
        return cursor.fetchall()


def dags_test(env: dict[str, str], date: str, *extra: str) -> str:
    result = run_airflow(env, "dags", "test", DAG, date, *extra)
    output = result.stdout + result.stderr
    return output if result.returncode == 0 else f"EXIT {result.returncode}\n{output}"


@pytest.fixture(scope="module")
def pg_schema() -> Iterator[str]:
    schema = f"test_dag_{uuid.uuid4().hex[:8]}"
    yield schema
    with psycopg2.connect(**PG) as connection, connection.cursor() as cursor:
        cursor.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(scope="module")
def pg_env(tmp_path_factory: pytest.TempPathFactory, pg_schema: str) -> dict[str, str]:
    tmp = tmp_path_factory.mktemp("airflow_pg")
    env = airflow_env(tmp, tmp / "instances", AIRFLOW_CONN_CUSTOMER_AI_STORE=pg_store_connection(pg_schema))
    write_instance(tmp / "instances")
    migrate(env)
    return env


@pytest.fixture(scope="module")
def first_date(pg_env: dict[str, str], pg_schema: str) -> dict[str, int]:
    output = dags_test(pg_env, "2011-10-02")
    assert not output.startswith("EXIT"), output[-6000:]
    return counts(pg_schema)


def test_a_run_lands_scores_history_and_run_rows(first_date: dict[str, int], pg_schema: str) -> None:
    eligible = eligible_at("2011-10-02")
    assert first_date == {
        "customer_ai_scores": len(eligible),
        "customer_ai_score_history": len(eligible),
        "customer_ai_runs": 1,
    }
    stored = {row[0] for row in query(pg_schema, 'SELECT profile_id FROM "{schema}".customer_ai_scores')}
    assert stored == eligible
    (run,) = query(pg_schema, 'SELECT as_of, status FROM "{schema}".customer_ai_runs')
    assert (str(run[0]), run[1]) == ("2011-10-02", "ok")


def test_the_same_date_again_changes_no_row_counts(first_date: dict[str, int], pg_env: dict, pg_schema: str) -> None:
    output = dags_test(pg_env, "2011-10-02")
    assert not output.startswith("EXIT"), output[-6000:]
    assert counts(pg_schema) == first_date
    # the store's password never appears in the task logs, artifacts, models, XComs or Airflow's database
    assert STORE_PASSWORD not in output
    airflow_files = Path(pg_env["AIRFLOW_HOME"]).parent
    leaks = [p for p in airflow_files.rglob("*") if p.is_file() and STORE_PASSWORD.encode() in p.read_bytes()]
    assert leaks == []


def test_three_dates_leave_three_history_rows_from_earlier_data_only(
    first_date: dict[str, int], pg_env: dict, pg_schema: str
) -> None:
    for date in ("2011-10-09", "2011-10-16"):
        output = dags_test(pg_env, date)
        assert not output.startswith("EXIT"), output[-6000:]
    per_date = query(pg_schema, 'SELECT as_of, COUNT(*) FROM "{schema}".customer_ai_score_history GROUP BY as_of')
    assert {str(d): n for d, n in per_date} == {
        "2011-10-02": len(eligible_at("2011-10-02")),
        "2011-10-09": len(eligible_at("2011-10-09")),
        "2011-10-16": len(eligible_at("2011-10-16")),
    }
    always = eligible_at("2011-10-02") & eligible_at("2011-10-09") & eligible_at("2011-10-16")
    rows = query(pg_schema, 'SELECT profile_id, COUNT(*) FROM "{schema}".customer_ai_score_history GROUP BY profile_id')
    history = dict(rows)
    assert all(history[p] == 3 for p in always)
    current = query(pg_schema, 'SELECT DISTINCT as_of FROM "{schema}".customer_ai_scores')
    assert [str(d) for (d,) in current] == ["2011-10-16"]
    home = Path(pg_env["CUSTOMER_AI_HOME"])
    for date in ("2011-10-02", "2011-10-09", "2011-10-16"):
        folder = home / "artifacts" / "repurchase_30d" / date
        seen = pd.read_parquet(folder / "events.parquet", columns=["timestamp"])
        assert seen["timestamp"].max() < pd.Timestamp(date, tz="UTC")
        model = json.loads((folder / "model.json").read_text())
        assert model["as_of"] <= date
    reused = json.loads((home / "artifacts" / "repurchase_30d" / "2011-10-16" / "metadata.json").read_text())
    assert reused["model_reused"] is True  # retraining is due every 30 days
    assert reused["model_trained_as_of"] == "2011-10-02"


def test_a_poor_model_keeps_the_previous_scores(first_date: dict[str, int], pg_env: dict, pg_schema: str) -> None:
    before = query(pg_schema, 'SELECT profile_id, as_of, probability FROM "{schema}".customer_ai_scores ORDER BY 1')
    output = dags_test(pg_env, "2011-10-23", "-c", json.dumps({"min_auc": 0.99, "force_retrain": True}))
    assert output.startswith("EXIT 1")
    assert "below the quality gate of 0.99" in output
    assert "up_for_retry" not in output  # a poor model is not retried
    assert "the previous scores are kept" in output
    after = query(pg_schema, 'SELECT profile_id, as_of, probability FROM "{schema}".customer_ai_scores ORDER BY 1')
    assert after == before
    status = query(pg_schema, "SELECT status FROM \"{schema}\".customer_ai_runs WHERE as_of = '2011-10-23'")
    assert status == [("poor",)]


def test_bad_events_stop_before_training_with_a_readable_summary(tmp_path: Path) -> None:
    events = pd.read_parquet(ROOT / "examples" / "online_retail" / "events.parquet")
    future = events.iloc[:3].assign(timestamp=pd.Timestamp("2099-01-01", tz="UTC"))
    bad = tmp_path / "bad_events.parquet"
    pd.concat([events, future]).to_parquet(bad, index=False)
    env = airflow_env(tmp_path, tmp_path / "instances")
    write_instance(tmp_path / "instances", events=bad)
    migrate(env)
    output = dags_test(env, "2011-10-02")
    assert output.startswith("EXIT 1")
    assert "events: 1 of 11 expectations failed" in output
    assert "- expect_column_max_to_be_between on timestamp: observed 2099-01-01 00:00:00+00:00" in output
    assert "up_for_retry" not in output  # bad data is not retried
    home = Path(env["CUSTOMER_AI_HOME"])
    folder = home / "artifacts" / "repurchase_30d" / ".2011-10-02.staging"  # a failed run is never published
    assert (folder / "validation" / "events.json").exists()
    assert not (folder / "training_set.parquet").exists()
    assert not (home / "artifacts" / "repurchase_30d" / "2011-10-02").exists()
    assert not (home / "models").exists()


def test_an_unreachable_store_fails_enrichment_after_retries_and_writes_nothing(tmp_path: Path) -> None:
    env = airflow_env(
        tmp_path,
        tmp_path / "instances",
        AIRFLOW_CONN_CUSTOMER_AI_STORE=pg_store_connection("never", port=1),
        CUSTOMER_AI_RETRIES="1",
    )
    write_instance(tmp_path / "instances")
    migrate(env)
    output = dags_test(env, "2011-10-02")
    assert output.startswith("EXIT 1")
    message = "cannot connect to the PostgreSQL profile store at host=127.0.0.1 port=1 dbname=test"
    assert output.count(message) == 2  # the first try and its retry
    assert output.index("new_state=up_for_retry") < output.index("new_state=failed")
    artifacts = Path(env["CUSTOMER_AI_HOME"]) / "artifacts" / "repurchase_30d"
    assert (artifacts / ".2011-10-02.staging" / "scores.parquet").exists()  # everything up to the write ran
    assert not (artifacts / "2011-10-02").exists()  # publish never ran


def test_the_same_run_on_the_embedded_sqlite_store(tmp_path: Path) -> None:
    env = airflow_env(tmp_path, tmp_path / "instances")
    write_instance(tmp_path / "instances")
    migrate(env)
    output = dags_test(env, "2011-10-02")
    assert not output.startswith("EXIT"), output[-6000:]
    store = Path(env["CUSTOMER_AI_HOME"]) / "store.sqlite"
    with sqlite3.connect(store) as connection:
        scores = connection.execute("SELECT COUNT(*) FROM customer_ai_scores").fetchone()[0]
        runs = connection.execute("SELECT as_of, status FROM customer_ai_runs").fetchall()
    assert scores == len(eligible_at("2011-10-02"))
    assert runs == [("2011-10-02", "ok")]


def test_events_from_a_postgres_table_read_only_the_runs_window(tmp_path: Path, pg_schema: str) -> None:
    events = pd.read_parquet(ROOT / "examples" / "online_retail" / "events.parquet")
    table = f"{pg_schema}_events"
    with psycopg2.connect(**PG) as connection, connection.cursor() as cursor:
        cursor.execute(f'CREATE SCHEMA IF NOT EXISTS "{pg_schema}"')
        cursor.execute(
            f'CREATE TABLE "{pg_schema}"."{table}" (customer text, occurred_at timestamptz, event_type text, '
            "value double precision, country text)"
        )
        rows = events[["profile_id", "timestamp", "event_type", "value", "country"]].itertuples(index=False)
        cursor.executemany(f'INSERT INTO "{pg_schema}"."{table}" VALUES (%s, %s, %s, %s, %s)', list(rows))
    spec = yaml.safe_load((ROOT / "instances" / "repurchase_30d.yaml").read_text())
    spec["events"] = {
        "table": f"{pg_schema}.{table}",
        "connection": "warehouse",
        "columns": {"profile_id": "customer", "timestamp": "occurred_at"},
    }
    spec["profiles"]["path"] = str(ROOT / "examples" / "online_retail" / "profiles.parquet")
    (tmp_path / "instances").mkdir()
    (tmp_path / "instances" / "repurchase_30d.yaml").write_text(yaml.safe_dump(spec))
    warehouse = json.dumps(
        {"conn_type": "postgres", "host": "127.0.0.1", "port": 5432, "login": "postgres", "schema": "test"}
    )
    env = airflow_env(tmp_path, tmp_path / "instances", AIRFLOW_CONN_WAREHOUSE=warehouse)
    migrate(env)
    output = dags_test(env, "2011-10-02")
    assert not output.startswith("EXIT"), output[-6000:]
    home = Path(env["CUSTOMER_AI_HOME"])
    seen = pd.read_parquet(home / "artifacts" / "repurchase_30d" / "2011-10-02" / "events.parquet")
    # the run's window starts 2010-04-05 (before the data), so it must hold exactly the events before the as-of date
    assert seen["timestamp"].max() < pd.Timestamp("2011-10-02", tz="UTC")
    expected = events[events["timestamp"] < pd.Timestamp("2011-10-02", tz="UTC")]
    assert len(seen) == len(expected)
    with sqlite3.connect(home / "store.sqlite") as connection:
        scores = connection.execute("SELECT COUNT(*) FROM customer_ai_scores").fetchone()[0]
    assert scores == len(eligible_at("2011-10-02"))
