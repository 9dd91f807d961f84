"""Real DAG runs: `airflow dags test` on Airflow's SQLite metadata DB, scores in the real PostgreSQL (or SQLite).

Every DAG run is one attempt (its tasks share the attempt's staging folder); ``publish`` seals the folder and
commits the run to the store in one transaction.  Besides runs that publish, the module runs DAG runs that stop at
every kind of place (bad input, a poor model, a publish the database refuses, a run killed before publishing) and
checks that each leaves its rows in the store's attempts and nothing any reader sees.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import psutil
import psycopg2
import pytest
import yaml
from airflow_support import AIRFLOW, DAG, airflow_env, eligible_at, migrate, run_airflow, tail, write_instance

from customer_ai import artifacts
from customer_ai.event_split import read_all_parts
from customer_ai.home import fetch
from customer_ai.store import PostgresStore, SQLiteStore, open_store
from customer_ai_airflow.ui import instance_rows, render_table, report_file

from conftest import ROOT, RUN_FILES_WITH_ATTRIBUTES, TRAINING_FILES

pytestmark = pytest.mark.airflow

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "dbname": "test"}
PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"
INSTANCE = "repurchase_30d"


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


def drop_schema(schema: str) -> None:
    with psycopg2.connect(**PG) as connection, connection.cursor() as cursor:
        cursor.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def dags_test(env: dict[str, str], date: str, *extra: str) -> str:
    result = run_airflow(env, "dags", "test", DAG, date, *extra)
    output = result.stdout + result.stderr
    return output if result.returncode == 0 else f"EXIT {result.returncode}\n{output}"


def pg_store(schema: str) -> PostgresStore:
    return open_store(PG_DSN, Path.cwd(), schema)


def steps_of(attempts: pd.DataFrame) -> list[tuple[str, int, str]]:
    """Return the (step, try, status) of attempt rows, in the order they were written."""
    return list(attempts[["step", "try_number", "status"]].itertuples(index=False, name=None))


def airflow_run_id(env: dict[str, str], date: str) -> str:
    """Return the id of the newest DAG run of ``date`` in the environment's Airflow database.

    ``dags test`` names each run by the time it starts: every run is an attempt of its own, a re-run too.
    """
    with contextlib.closing(sqlite3.connect(Path(env["AIRFLOW_HOME"]) / "airflow.db")) as connection:
        (run_id,) = connection.execute(
            "SELECT run_id FROM dag_run WHERE dag_id = ? AND logical_date LIKE ? ORDER BY id DESC LIMIT 1",
            (DAG, f"{date}%"),
        ).fetchone()
    return run_id


def airflow_attempt(env: dict[str, str], date: str) -> str:
    """Return the attempt id of the newest DAG run of ``date`` (the same for all its tasks and tries)."""
    return artifacts.attempt_id(DAG, airflow_run_id(env, date))


def task_states(env: dict[str, str], date: str) -> dict[str, str]:
    """Return the state of each task of the DAG run of ``date`` in the environment's Airflow database."""
    with contextlib.closing(sqlite3.connect(Path(env["AIRFLOW_HOME"]) / "airflow.db")) as connection:
        return dict(
            connection.execute(
                "SELECT task_id, state FROM task_instance WHERE dag_id = ? AND run_id = ?",
                (DAG, airflow_run_id(env, date)),
            ).fetchall()
        )


def probabilities(scores: pd.DataFrame) -> dict[str, float]:
    return dict(zip(scores["profile_id"], scores["probability"], strict=True))


def folder_probabilities(folder: Path) -> dict[str, float]:
    return probabilities(pd.read_parquet(fetch(folder / "scores.parquet"), columns=["profile_id", "probability"]))


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


def test_a_run_lands_scores_history_and_run_rows(first_date: dict[str, int], pg_env: dict, pg_schema: str) -> None:
    eligible = eligible_at("2011-10-02")
    assert first_date == {
        "customer_ai_scores": len(eligible),
        "customer_ai_score_history": len(eligible),
        "customer_ai_runs": 1,
    }
    stored = {row[0] for row in query(pg_schema, 'SELECT profile_id FROM "{schema}".customer_ai_scores')}
    assert stored == eligible
    (run,) = query(pg_schema, 'SELECT as_of, status, run_id FROM "{schema}".customer_ai_runs')
    attempt = airflow_attempt(pg_env, "2011-10-02")  # every task of the DAG run worked in this one attempt
    assert (str(run[0]), run[1], run[2]) == ("2011-10-02", "ok", attempt)
    attempts = pg_store(pg_schema).read_attempts(INSTANCE)
    assert steps_of(attempts) == [("validate_events", 1, "started"), ("publish", 1, "ok")]
    assert set(attempts["attempt"]) == {attempt}
    assert attempts["run_id"].tolist() == ["", attempt]
    folder = artifacts.run_dir(Path(pg_env["CUSTOMER_AI_HOME"]), INSTANCE, pd.Timestamp("2011-10-02"), attempt)
    metadata = json.loads((folder / "metadata.json").read_text())
    assert (metadata["run_id"], metadata["attempt"], metadata["artifacts"]) == (attempt, attempt, str(folder))
    assert sorted(p.name for p in folder.parent.iterdir()) == [attempt]  # sealed; no staging folder left


def test_the_same_date_again_changes_no_row_counts(first_date: dict[str, int], pg_env: dict, pg_schema: str) -> None:
    store = pg_store(pg_schema)
    before = store.read_attempts(INSTANCE)
    output = dags_test(pg_env, "2011-10-02")
    assert not output.startswith("EXIT"), output[-6000:]
    assert counts(pg_schema) == first_date
    # only the attempts grow: the start and the publish of this DAG run
    after = store.read_attempts(INSTANCE)
    assert after.iloc[: len(before)].equals(before)
    assert steps_of(after.iloc[len(before) :]) == [("validate_events", 1, "started"), ("publish", 1, "ok")]
    run = store.latest_run(INSTANCE)
    assert run["run_id"] == after["run_id"].iloc[-1] == airflow_attempt(pg_env, "2011-10-02")  # a new attempt
    assert run["run_id"] not in set(before["run_id"])
    assert artifacts.run_dir(
        Path(pg_env["CUSTOMER_AI_HOME"]), INSTANCE, pd.Timestamp("2011-10-02"), run["run_id"]
    ).is_dir()
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
    folders = artifacts.published_folders(home, INSTANCE, pg_store(pg_schema).read_runs(INSTANCE))
    for date in ("2011-10-02", "2011-10-09", "2011-10-16"):
        folder = folders[date]
        seen = read_all_parts(folder, 1)
        assert seen["timestamp"].max() < pd.Timestamp(date, tz="UTC")
        model = json.loads((folder / "model.json").read_text())
        assert model["as_of"] <= date
    reused = json.loads((folders["2011-10-16"] / "metadata.json").read_text())
    assert reused["model_reused"] is True  # retraining is due every 30 days
    assert reused["model_trained_as_of"] == "2011-10-02"


def test_a_poor_model_keeps_the_previous_scores(first_date: dict[str, int], pg_env: dict, pg_schema: str) -> None:
    store = pg_store(pg_schema)
    before = query(pg_schema, 'SELECT profile_id, as_of, probability FROM "{schema}".customer_ai_scores ORDER BY 1')
    runs = store.read_runs(INSTANCE)
    output = dags_test(pg_env, "2011-10-23", "-c", json.dumps({"min_auc": 0.99, "force_retrain": True}))
    assert output.startswith("EXIT 1")
    assert "below the quality gate of 0.99" in output
    assert "up_for_retry" not in output  # a poor model is not retried
    assert "the previous scores are kept" in output
    after = query(pg_schema, 'SELECT profile_id, as_of, probability FROM "{schema}".customer_ai_scores ORDER BY 1')
    assert after == before
    assert store.read_runs(INSTANCE).equals(runs)  # nothing published: no run row for 2011-10-23
    attempts = store.read_attempts(INSTANCE, as_of="2011-10-23")
    # recorded as poor by the gate, never as a failure of the gate's task
    assert steps_of(attempts) == [("validate_events", 1, "started"), ("quality_gate", 1, "poor")]
    poor = attempts.iloc[-1]
    assert poor["attempt"] == airflow_attempt(pg_env, "2011-10-23")
    assert "below the quality gate of 0.99; the previous scores are kept" in poor["reason"]
    assert poor["model_version"]
    assert json.loads(poor["metrics"])["roc_auc"] < 0.99


def test_a_run_failing_at_its_first_task_shows_beside_the_current_run(
    first_date: dict[str, int], pg_env: dict, pg_schema: str
) -> None:
    store = pg_store(pg_schema)
    current, rows = store.latest_run(INSTANCE), counts(pg_schema)
    output = dags_test(pg_env, "2010-06-06")  # the example's events start in December 2010
    assert output.startswith("EXIT 1")
    assert "which lies before the events start" in output
    assert "up_for_retry" not in output  # bad input is not retried
    assert (store.latest_run(INSTANCE), counts(pg_schema)) == (current, rows)
    attempts = store.read_attempts(INSTANCE, as_of="2010-06-06")
    assert steps_of(attempts) == [("validate_events", 1, "started"), ("validate_events", 1, "failed")]
    assert set(attempts["attempt"]) == {airflow_attempt(pg_env, "2010-06-06")}
    started, failed = attempts["reason"]
    assert started == f"started by Airflow DAG run {DAG} / {airflow_run_id(pg_env, '2010-06-06')}"
    reason = "AirflowFailException: instance repurchase_30d: no events before the as-of date 2010-06-06"
    assert failed.startswith(reason)
    assert store.latest_attempt(INSTANCE)["reason"] == failed

    # the view: the current run with its numbers, and the failed attempt beside it
    instances, home = Path(pg_env["CUSTOMER_AI_INSTANCES"]), Path(pg_env["CUSTOMER_AI_HOME"])
    (row,) = instance_rows(instances, home, lambda: store)
    assert (row.status, row.as_of, row.scored_profiles) == ("ok", current["as_of"], current["scored_profiles"])
    assert row.report
    assert sum(row.buckets.values()) == current["scored_profiles"]
    assert row.attempt_status == "failed"
    assert row.attempt.startswith("newest attempt, as of 2010-06-06, ")
    assert row.attempt.endswith(f": failed at validate_events: {failed}")
    page = render_table([row], instances)
    assert f'<td class="as-of">{current["as_of"]}</td>' in page
    assert '<span class="status status-ok">ok</span>' in page
    assert re.search(r'<div class="attempt attempt-failed">newest attempt, as of 2010-06-06, [^<]*no events', page)


REFUSE_RUN_ROWS = """
CREATE FUNCTION "{schema}".refuse_run_rows() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN RAISE EXCEPTION 'run rows are refused by the test'; END $$;
CREATE TRIGGER refuse_run_rows BEFORE INSERT OR UPDATE ON "{schema}".customer_ai_runs
FOR EACH ROW EXECUTE FUNCTION "{schema}".refuse_run_rows();
"""


def test_a_publish_the_database_refuses_is_retried_and_every_try_is_recorded(
    first_date: dict[str, int], pg_env: dict, pg_schema: str
) -> None:
    date = "2011-10-30"
    store = pg_store(pg_schema)
    current, rows, scores = store.latest_run(INSTANCE), counts(pg_schema), store.read_scores(INSTANCE)
    with psycopg2.connect(**PG) as connection, connection.cursor() as cursor:
        cursor.execute(REFUSE_RUN_ROWS.replace("{schema}", pg_schema))
    try:
        output = dags_test(pg_env, date)
    finally:
        with psycopg2.connect(**PG) as connection, connection.cursor() as cursor:
            cursor.execute(f'DROP FUNCTION "{pg_schema}".refuse_run_rows() CASCADE')
    assert output.startswith("EXIT 1")
    assert output.count("new_state=up_for_retry") == 2  # CUSTOMER_AI_RETRIES defaults to 2: three tries
    attempts = store.read_attempts(INSTANCE, as_of=date)
    assert steps_of(attempts) == [
        ("validate_events", 1, "started"),
        ("publish", 1, "failed"),
        ("publish", 2, "failed"),
        ("publish", 3, "failed"),
    ]
    assert all("run rows are refused by the test" in reason for reason in attempts["reason"].iloc[1:])
    # the transaction wrote nothing: the previous run stays current, whole
    assert (store.latest_run(INSTANCE), counts(pg_schema)) == (current, rows)
    pd.testing.assert_frame_equal(store.read_scores(INSTANCE), scores)
    assert date not in set(store.read_runs(INSTANCE)["as_of"])
    # the first try sealed the folder, the retries committed it again (and failed): nothing points at it
    attempt = airflow_attempt(pg_env, date)
    sealed = artifacts.sealed_runs(Path(pg_env["CUSTOMER_AI_HOME"]), INSTANCE, pd.Timestamp(date), attempt)
    assert [path.name for path in sealed] == [attempt]
    assert sorted(path.name for path in sealed[0].parent.iterdir()) == [attempt]
    assert "publishing the sealed run folder" in output


KILLED_AS_OF = "2011-11-06"  # after every date the module's other tests publish
RETRAIN = ("-c", json.dumps({"force_retrain": True}))  # trained as of the date in any home: comparable scores


def start_dags_test(env: dict[str, str], date: str, log: Path, *extra: str) -> subprocess.Popen:
    with log.open("wb") as out:
        return subprocess.Popen(  # noqa: S603 - the venv's airflow command
            [str(AIRFLOW), "dags", "test", DAG, date, *extra],
            env=env,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, killed as a whole
        )


def kill_group(process: subprocess.Popen) -> None:
    """SIGKILL the process's group and every descendant (as a machine that loses power would stop them)."""
    with contextlib.suppress(psutil.Error):
        family = psutil.Process(process.pid).children(recursive=True)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    for child in family:
        with contextlib.suppress(psutil.Error):
            child.kill()
    process.wait(timeout=30)


def test_a_dag_run_killed_between_scoring_and_publishing_changes_nothing_a_reader_sees(
    first_date: dict[str, int], pg_env: dict, pg_schema: str, tmp_path: Path
) -> None:
    home, instances = Path(pg_env["CUSTOMER_AI_HOME"]), Path(pg_env["CUSTOMER_AI_INSTANCES"])
    store = pg_store(pg_schema)
    previous = store.latest_run(INSTANCE)
    assert previous is not None
    assert previous["as_of"] < KILLED_AS_OF
    rows = counts(pg_schema)

    # a DAG run as of a later date, killed as soon as its scores are combined: before validate_scores, the
    # report and publish
    date_folder = artifacts.date_dir(home, INSTANCE, pd.Timestamp(KILLED_AS_OF))
    log = tmp_path / "killed.log"
    leased = {**pg_env, "CUSTOMER_AI_LOCK_MINUTES": "1"}  # the killed run's lock lasts a minute unrenewed
    process = start_dags_test(leased, KILLED_AS_OF, log, *RETRAIN)
    deadline = time.monotonic() + 300
    try:
        while not (scored := [p for p in date_folder.glob(".*.staging") if (p / "scores.parquet").exists()]):
            assert process.poll() is None, f"dags test exited {process.returncode} first\n{tail(log, 6000)}"
            assert time.monotonic() < deadline, f"no scores.parquet after 300s\n{tail(log, 6000)}"
            time.sleep(0.05)
    finally:
        kill_group(process)
    assert process.returncode == -signal.SIGKILL
    (staging,) = scored
    attempt = airflow_attempt(pg_env, KILLED_AS_OF)
    assert staging.name == f".{attempt}.staging"
    assert sorted(p.name for p in date_folder.iterdir()) == [staging.name]  # killed before publish sealed it
    computed = folder_probabilities(staging)  # what the killed attempt had scored
    assert len(computed) == len(eligible_at(KILLED_AS_OF))

    # every reader sees exactly the previous run
    assert store.latest_run(INSTANCE) == previous
    assert counts(pg_schema) == rows
    assert KILLED_AS_OF not in set(store.read_runs(INSTANCE)["as_of"])
    assert steps_of(store.read_attempts(INSTANCE, as_of=KILLED_AS_OF)) == [("validate_events", 1, "started")]
    folder = artifacts.run_dir(home, INSTANCE, pd.Timestamp(previous["as_of"]), previous["run_id"])
    metadata = json.loads((folder / "metadata.json").read_text())
    assert (metadata["run_id"], metadata["as_of"], metadata["model_version"]) == (
        previous["run_id"],
        previous["as_of"],
        previous["model_version"],
    )
    assert probabilities(store.read_scores(INSTANCE)) == folder_probabilities(folder)
    assert set(store.read_scores(INSTANCE)["as_of"]) == {previous["as_of"]}
    assert report_file(home, {INSTANCE}, INSTANCE, previous["as_of"], lambda: store) == folder / "report.html"
    (row,) = instance_rows(instances, home, lambda: store)
    assert (row.status, row.as_of, row.scored_profiles, row.report) == (
        "ok",
        previous["as_of"],
        previous["scored_profiles"],
        True,
    )
    assert row.buckets == metadata["buckets"]
    assert row.attempt_status == "started"
    assert row.attempt.startswith(f"newest attempt, as of {KILLED_AS_OF}, ")
    assert row.attempt.endswith(": started at validate_events: nothing recorded since (still running, or killed)")
    show = subprocess.run(
        [str(AIRFLOW.with_name("customer-ai")), "show", str(instances / f"{INSTANCE}.yaml"), "--store", PG_DSN],
        env={**pg_env, "CUSTOMER_AI_STORE_SCHEMA": pg_schema},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert show.returncode == 0, show.stderr[-3000:]
    assert f"latest run as of {previous['as_of']}, model {previous['model_version']}: ok" in show.stdout
    assert f"artifacts: {folder}\n" in show.stdout
    newest = f"newest attempt: as of {KILLED_AS_OF}, attempt {attempt}: started by Airflow DAG run {DAG} / "
    assert newest in show.stdout
    assert "nothing recorded since (still running, or killed)" in show.stdout

    # the same date again: it waits for the killed run's lock to expire, starts afresh, publishes, and its scores
    # are those of a clean run
    held, _ = store.lock_holder(INSTANCE)
    assert (held.attempt, held.scope) == (attempt, f"dag:{DAG}")
    output = dags_test(leased, KILLED_AS_OF, *RETRAIN)
    assert not output.startswith("EXIT"), output[-6000:]
    waited = f"waiting for the run lock of {INSTANCE}: another run of {INSTANCE} is in progress: attempt {attempt}"
    assert waited in output
    assert f"took the run lock of {INSTANCE} from an abandoned run: attempt {attempt}" in output
    assert store.lock_holder(INSTANCE)[0] is None  # its commit freed it
    run = store.latest_run(INSTANCE)
    assert run["as_of"] == KILLED_AS_OF
    published = artifacts.run_dir(home, INSTANCE, pd.Timestamp(KILLED_AS_OF), run["run_id"])
    assert sorted(p.name for p in date_folder.iterdir()) == [run["run_id"]]  # the killed staging folder is gone
    assert steps_of(store.read_attempts(INSTANCE, as_of=KILLED_AS_OF)) == [
        ("validate_events", 1, "started"),
        ("validate_events", 1, "started"),
        ("publish", 1, "ok"),
    ]
    current = probabilities(store.read_scores(INSTANCE))
    assert current == folder_probabilities(published)
    assert current == computed  # what the killed attempt had computed, to the last bit

    clean_home = tmp_path / "clean"
    clean_env = {key: value for key, value in pg_env.items() if key != "AIRFLOW_CONN_CUSTOMER_AI_STORE"}
    output = dags_test({**clean_env, "CUSTOMER_AI_HOME": str(clean_home)}, KILLED_AS_OF, *RETRAIN)
    assert not output.startswith("EXIT"), output[-6000:]
    clean = SQLiteStore(clean_home / "store.sqlite")
    assert clean.latest_run(INSTANCE)["model_version"] == run["model_version"]
    assert probabilities(clean.read_scores(INSTANCE)) == current
    shutil.rmtree(clean_home)


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
    attempt = airflow_attempt(env, "2011-10-02")
    folder = artifacts.staging_dir(home, INSTANCE, pd.Timestamp("2011-10-02"), attempt)
    assert (folder / "validation" / "events.json").exists()
    assert not (folder / "training_set.parquet").exists()
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]  # a failed run is never sealed
    assert not (home / "models").exists()
    store = SQLiteStore(home / "store.sqlite")
    assert store.latest_run(INSTANCE) is None
    attempts = store.read_attempts(INSTANCE)
    assert steps_of(attempts) == [("validate_events", 1, "started"), ("validate_events", 1, "failed")]
    assert set(attempts["attempt"]) == {attempt}
    assert attempts["reason"].iloc[-1].startswith("AirflowFailException: events: 1 of 11 expectations failed")
    (row,) = instance_rows(Path(env["CUSTOMER_AI_INSTANCES"]), home, lambda: store)
    assert (row.status, row.as_of, row.message, row.attempt_status) == (
        "failed",
        "2011-10-02",
        "no run published yet",
        "failed",
    )
    assert ": failed at validate_events: AirflowFailException: events: 1 of 11 expectations failed" in row.attempt


def test_an_unreachable_store_fails_the_first_task_after_retries_and_writes_nothing(tmp_path: Path) -> None:
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
    # the first task records the start of the attempt: it fails, and so does its retry; the failure of each try
    # cannot be recorded either, which is said in the log and does not hide the task's own error
    assert output.index("new_state=up_for_retry") < output.index("new_state=failed")
    assert output.count(f"the failure of validate_events could not be recorded in the store: {message}") == 2
    assert output.count(f"customer_ai.store.base.StoreUnavailableError: {message}") == 2  # each try's own error
    states = task_states(env, "2011-10-02")
    assert states.pop("validate_events") == "failed"
    assert set(states.values()) == {"upstream_failed"}  # nothing after it ran
    home = Path(env["CUSTOMER_AI_HOME"])
    assert not (home / "artifacts").exists()  # not even a staging folder: nothing was started
    assert not (home / "models").exists()
    assert not (home / "store.sqlite").exists()  # and no other store was used instead


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
    attempts = SQLiteStore(store).read_attempts(INSTANCE)
    assert steps_of(attempts) == [("validate_events", 1, "started"), ("publish", 1, "ok")]


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
    run = SQLiteStore(home / "store.sqlite").latest_run(INSTANCE)
    folder = artifacts.run_dir(home, INSTANCE, pd.Timestamp("2011-10-02"), run["run_id"])
    seen = read_all_parts(folder, 1)
    # the run's window starts 2010-04-05 (before the data), so it must hold exactly the events before the as-of date
    assert seen["timestamp"].max() < pd.Timestamp("2011-10-02", tz="UTC")
    expected = events[events["timestamp"] < pd.Timestamp("2011-10-02", tz="UTC")]
    assert len(seen) == len(expected)
    with sqlite3.connect(home / "store.sqlite") as connection:
        scores = connection.execute("SELECT COUNT(*) FROM customer_ai_scores").fetchone()[0]
    assert scores == len(eligible_at("2011-10-02"))


def test_a_dag_run_with_its_home_in_a_bucket_killed_then_run_again_publishes_there_and_readers_find_it(
    tmp_path: Path, s3_env: dict[str, str]
) -> None:
    from s3_support import new_bucket

    from customer_ai.home import as_path

    schema = f"test_dag_s3_{uuid.uuid4().hex[:8]}"
    date = "2011-10-02"
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(drop_schema, schema)
        home = f"s3://{new_bucket(s3_env)}/customer-ai"
        env = airflow_env(
            tmp_path,
            tmp_path / "instances",
            AIRFLOW_CONN_CUSTOMER_AI_STORE=pg_store_connection(schema),
            CUSTOMER_AI_HOME=home,
            CUSTOMER_AI_LOCK_MINUTES="1",  # the killed run's lock lasts a minute unrenewed
            **s3_env,
        )
        write_instance(tmp_path / "instances")
        migrate(env)
        store = pg_store(schema)
        date_folder = as_path(home) / "artifacts" / INSTANCE / date
        # killed as soon as its scores are in the bucket, before validate_scores, the report and publish
        process = start_dags_test(env, date, tmp_path / "killed.log")
        deadline = time.monotonic() + 300
        try:
            while not list(date_folder.glob(".*.staging/scores.parquet")):
                date_folder.fs.invalidate_cache()
                assert process.poll() is None, f"dags test exited first\n{tail(tmp_path / 'killed.log', 6000)}"
                assert time.monotonic() < deadline, f"no scores after 300s\n{tail(tmp_path / 'killed.log', 6000)}"
                time.sleep(0.2)
        finally:
            kill_group(process)
        assert store.latest_run(INSTANCE) is None  # readers see nothing of it
        assert steps_of(store.read_attempts(INSTANCE, as_of=date)) == [("validate_events", 1, "started")]

        output = dags_test(env, date)  # waits for the killed run's lock to expire, then runs afresh
        assert not output.startswith("EXIT"), output[-6000:]
        assert f"took the run lock of {INSTANCE} from an abandoned run" in output
        run = store.latest_run(INSTANCE)
        assert (run["as_of"], run["status"]) == (date, "ok")
        date_folder.fs.invalidate_cache()
        assert sorted(p.name for p in date_folder.iterdir()) == [run["run_id"]]  # the killed staging is gone
        folder = date_folder / run["run_id"]
        # the model the killed run stored: no training files
        reused = [n for n in RUN_FILES_WITH_ATTRIBUTES if n not in TRAINING_FILES]
        assert sorted(p.name for p in folder.iterdir()) == reused
        assert json.loads((folder / "model.json").read_text())["reused"] is True
        assert json.loads((folder / "instance.json").read_text())["definition"]["name"] == INSTANCE
        assert probabilities(store.read_scores(INSTANCE)) == folder_probabilities(folder)
        (row,) = instance_rows(tmp_path / "instances", as_path(home), lambda: store)
        assert (row.status, row.as_of, row.report) == ("ok", date, True)
        assert (
            report_file(as_path(home), {INSTANCE}, INSTANCE, date, lambda: store)
            .read_text()
            .startswith("<!DOCTYPE html>")
        )
        assert store.lock_holder(INSTANCE)[0] is None
