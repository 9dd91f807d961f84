"""Scoring mapped over partitions in real Airflow: `airflow dags test`, then CeleryExecutor with Redis and two workers.

Each run scores the example instance in several hash partitions (``scoring.partitions``); the scores it stores
must equal, exactly, those of the same model scoring every profile in one partition.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pandas as pd
import psycopg2
import pytest
from airflow_support import DAG, airflow_env, eligible_at, free_ports, migrate, run_airflow, served_airflow
from airflow_support import write_instance as write_example

from customer_ai import artifacts, steps
from customer_ai.home import as_path, remove_tree
from customer_ai.spec import load_spec
from customer_ai.store import SQLiteStore, open_store

pytestmark = pytest.mark.airflow

AS_OF = "2011-10-02"
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "dbname": "test"}
REDIS = shutil.which("redis-server") or "/usr/bin/redis-server"
STARTUP_TIMEOUT = 180.0
RUN_TIMEOUT = 600.0


def published_folder(home: Path, name: str, store: object) -> Path:
    """Return the folder of the run the store published as of AS_OF."""
    run = store.latest_run(name)
    assert run is not None
    assert run["as_of"] == AS_OF
    return artifacts.run_dir(home, name, pd.Timestamp(AS_OF, tz="UTC"), run["run_id"])


def unpartitioned_scores(home: Path, instance: Path, folder: Path) -> pd.DataFrame:
    """Score the published run again with its model in a single partition; return those scores.

    The scoring works in a staging copy of the sealed run folder (as a step of its attempt re-run on its own
    does), which is removed afterwards; the sealed folder itself is never written.
    """
    spec = load_spec(instance)
    as_of = pd.Timestamp(AS_OF, tz="UTC")
    attempt = artifacts.read_json(folder / "metadata.json")["attempt"]
    steps.score(spec, as_of, home, partitions=1, attempt=attempt)
    staging = artifacts.staging_dir(home, spec.name, as_of, attempt)
    scores = steps.read_scores(staging)
    remove_tree(staging)
    return scores


def assert_stored_scores_are_the_unpartitioned_ones(
    home: Path, instance: Path, partitions: int, store: object | None = None
) -> None:
    spec = load_spec(instance)
    store = store or SQLiteStore(home / "store.sqlite")
    folder = published_folder(home, spec.name, store)
    published = steps.read_scores(folder)
    plan = artifacts.read_json(folder / "scoring/plan.json")
    assert plan["partitions"] == partitions
    assert min(plan["sizes"]) > 0
    single = unpartitioned_scores(home, instance, folder)
    # scores.parquet holds the partitions one after the other, each by profile id: in profile order, the same rows
    by_profile = published.sort_values("profile_id", kind="stable", ignore_index=True)
    pd.testing.assert_frame_equal(by_profile, single, check_exact=True)
    pd.testing.assert_frame_equal(steps.read_scores(folder), published)  # the sealed folder is as it was
    assert artifacts.read_json(folder / "scoring/plan.json") == plan
    stored = store.read_scores(spec.name, as_of=AS_OF)
    assert set(stored["profile_id"]) == eligible_at(AS_OF)
    expected = single.set_index("profile_id")["probability"]
    assert stored.set_index("profile_id")["probability"].sort_index().to_dict() == expected.sort_index().to_dict()


def test_dags_test_maps_the_scoring_over_three_partitions(tmp_path: Path) -> None:
    env = airflow_env(tmp_path, tmp_path / "instances")
    instance = write_example(tmp_path / "instances", scoring={"partitions": 3})
    migrate(env)
    result = run_airflow(env, "dags", "test", DAG, AS_OF)
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    with contextlib.closing(sqlite3.connect(Path(env["AIRFLOW_HOME"]) / "airflow.db")) as connection:
        mapped = connection.execute(
            "SELECT map_index, state FROM task_instance WHERE dag_id = ? AND task_id = 'score_partition' ORDER BY 1",
            (DAG,),
        ).fetchall()
        states = dict(
            connection.execute("SELECT task_id, state FROM task_instance WHERE task_id != 'score_partition'").fetchall()
        )
    assert mapped == [(0, "success"), (1, "success"), (2, "success")]
    assert set(states.values()) == {"success"}
    assert_stored_scores_are_the_unpartitioned_ones(Path(env["CUSTOMER_AI_HOME"]), instance, 3)


# --- CeleryExecutor: Redis as the broker, the metadata in PostgreSQL, two workers ----------------------------


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """Start a throwaway redis-server (no persistence) on a free port; stop it afterwards."""
    (port,) = free_ports(1)
    folder = tmp_path / "redis"
    folder.mkdir()
    options = ["--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder), "--save", "", "--appendonly", "no"]
    with (folder / "redis.log").open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 - Debian's redis-server
            [REDIS, *options],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        deadline = time.monotonic() + 30
        while "Ready to accept connections" not in (folder / "redis.log").read_text(errors="replace"):
            assert process.poll() is None, (folder / "redis.log").read_text(errors="replace")
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.2)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture
def metadata_db() -> Iterator[str]:
    """Create a fresh PostgreSQL database for Airflow's metadata; drop it afterwards."""
    name = f"airflow_celery_{uuid.uuid4().hex[:8]}"
    connection = psycopg2.connect(**PG)
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')
        yield f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.close()


def workers_of_partitions(logs: Path, workers: list[str]) -> dict[str, set[int]]:
    """Return, per worker, the map indexes of the ``score_partition`` tasks its log says it executed."""
    executed = re.compile(r"Executing workload in Celery: .*?task_id='score_partition'.*?map_index=(\d+)")
    found = {}
    for worker in workers:
        text = (logs / f"{worker}.out").read_text(errors="replace") + (logs / f"{worker}.err").read_text(
            errors="replace"
        )
        found[worker] = {int(m) for m in executed.findall(text)}
    return found


@pytest.fixture
def store_schema() -> Iterator[str]:
    """A fresh PostgreSQL schema for the profile store; dropped afterwards."""
    schema = f"test_celery_{uuid.uuid4().hex[:8]}"
    yield schema
    with psycopg2.connect(**PG) as connection, connection.cursor() as cursor:
        cursor.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_celery_workers_share_the_partitions_and_the_scores_equal_one_partitions(
    tmp_path: Path, redis_url: str, metadata_db: str, s3_env: dict[str, str], store_schema: str
) -> None:
    # the workers share only the home, in a bucket, and the databases: each has its own local folders
    from s3_support import new_bucket

    home = f"s3://{new_bucket(s3_env)}/customer-ai"
    store_connection = {"conn_type": "postgres", "host": "127.0.0.1", "port": 5432, "login": "postgres"}
    store_connection |= {"schema": "test", "extra": {"schema": store_schema}}
    services = served_airflow(
        tmp_path,
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=metadata_db,
        AIRFLOW__CORE__EXECUTOR="CeleryExecutor",
        AIRFLOW__CELERY__BROKER_URL=redis_url,
        AIRFLOW__CELERY__RESULT_BACKEND=f"db+{metadata_db}",
        AIRFLOW__CELERY__WORKER_CONCURRENCY="1",
        AIRFLOW_CONN_CUSTOMER_AI_STORE=json.dumps(
            {**store_connection, "schema": "test", "extra": {"schema": store_schema}}
        ),
        CUSTOMER_AI_HOME=home,
        **s3_env,
    )
    services.env.pop("AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS")  # SQLite's lock timeout: not for PostgreSQL
    instance = write_example(tmp_path / "instances", scoring={"partitions": 4})
    migrate(services.env)
    logs = services.logs
    workers = ["worker_a", "worker_b"]
    try:
        services.start_core()
        for worker in workers:  # the log server's port would clash on one machine: logs stay in AIRFLOW_HOME
            local = tmp_path / worker
            (local / "tmp").mkdir(parents=True)
            services.start(
                worker,
                "--celery-hostname",
                f"{worker}@%h",
                "--skip-serve-logs",
                command=("celery", "worker"),
                env={"TMPDIR": str(local / "tmp"), "AIRFLOW_HOME": str(local / "airflow")},
            )

        def healthy() -> dict | None:
            response = services.get("/monitor/health")
            health = response.json() if response.status_code == 200 else {}
            parts = ("metadatabase", "scheduler", "dag_processor")
            return health if all(health.get(p, {}).get("status") == "healthy" for p in parts) else None

        services.wait_for("healthy services", healthy, STARTUP_TIMEOUT)
        services.login()
        services.wait_for(f"DAG {DAG} parsed", lambda: services.get(f"/dags/{DAG}").status_code == 200 or None, 120)
        response = services.client.patch(f"/api/v2/dags/{DAG}", json={"is_paused": False})
        assert response.status_code == 200, response.text
        response = services.client.post(f"/api/v2/dags/{DAG}/dagRuns", json={"logical_date": f"{AS_OF}T00:00:00Z"})
        assert response.status_code == 200, response.text
        run_path = f"/dags/{DAG}/dagRuns/{quote(response.json()['dag_run_id'], safe='')}"

        def finished() -> str | None:
            state = services.get(run_path).json()["state"]
            return state if state in ("success", "failed") else None

        state = services.wait_for("the end of the run", finished, RUN_TIMEOUT)
        instances = services.get(f"{run_path}/taskInstances").json()["task_instances"]
        assert state == "success", f"{instances}\n{services.diagnostics()}"
        mapped = sorted((ti["map_index"], ti["state"]) for ti in instances if ti["task_id"] == "score_partition")
        assert mapped == [(k, "success") for k in range(4)]
        ran = workers_of_partitions(logs, workers)
        assert set().union(*ran.values()) == {0, 1, 2, 3}, ran
        assert all(ran.values()), f"a worker ran no partition: {ran}"  # both machines' worth of workers took part
    finally:
        services.stop()
    for worker in workers:  # nothing of a run was left in a worker's local folders
        assert not any((tmp_path / worker / "tmp").iterdir()), worker
    store = open_store("postgresql://postgres@127.0.0.1:5432/test", Path.cwd(), store_schema)
    assert_stored_scores_are_the_unpartitioned_ones(as_path(home), instance, 4, store)
