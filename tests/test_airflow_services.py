"""End to end as a user would: a real local Airflow (api-server, scheduler, dag-processor) and its REST API.

The services share one throwaway AIRFLOW_HOME with SQLite metadata and the LocalExecutor (Airflow 3's defaults);
scores go to the embedded SQLite store.  The test logs in like the UI (``POST /auth/token``), unpauses the DAG and
triggers it with a logical date and a form parameter, waits for the run, then checks the store and the Asset event.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pandas as pd
import pytest
from airflow_support import DAG, Airflow, eligible_at, migrate, run_airflow, served_airflow, write_instance

from customer_ai import artifacts
from customer_ai.event_split import read_all_parts
from customer_ai.flow import step_names
from customer_ai.store import SQLiteStore

pytestmark = pytest.mark.airflow

AS_OF = "2011-10-02"
ASSET_URI = "customer_ai://repurchase_30d/scores"
STARTUP_TIMEOUT = 120.0  # services healthy and the DAG parsed
RUN_TIMEOUT = 300.0  # about 1 minute on a loaded 2-core machine


@pytest.fixture(scope="module")
def airflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Airflow]:
    """One set of services for the module's tests; each test drives its own DAG, so they do not interact."""
    tmp_path = tmp_path_factory.mktemp("airflow_services")
    services = served_airflow(
        tmp_path,
        AIRFLOW__CORE__EXECUTOR="LocalExecutor",
        AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="True",  # Airflow's default: the user unpauses the DAG
    )
    write_instance(tmp_path / "instances")
    write_instance(tmp_path / "instances", name="churn_60d")
    migrate(services.env)
    try:
        services.start_core()
        yield services
    finally:
        services.stop()


def healthy(airflow: Airflow) -> dict | None:
    response = airflow.get("/monitor/health")
    if response.status_code != 200:
        return None
    health = response.json()
    parts = ("metadatabase", "scheduler", "dag_processor")
    return health if all(health.get(part, {}).get("status") == "healthy" for part in parts) else None


def log_line(entry: object) -> str:
    """Return a structured task log entry as text, with the exceptions it carries."""
    if not isinstance(entry, dict):
        return str(entry)
    text = f"{entry.get('level', '')} {entry.get('event', '')}".strip()
    for error in entry.get("error_detail") or []:
        text += f"\n  {error.get('exc_type')}: {error.get('exc_value')}"
    return text


def task_report(airflow: Airflow, run_path: str) -> str:
    """Return the run's task states and, for each task that did not succeed, the end of its log."""
    response = airflow.get(f"{run_path}/taskInstances")
    if response.status_code != 200:
        return f"taskInstances: HTTP {response.status_code} {response.text[-1000:]}"
    lines = []
    for ti in response.json()["task_instances"]:
        lines.append(f"{ti['task_id']}: {ti['state']} (try {ti['try_number']})")
        if ti["state"] != "success" and ti["try_number"]:
            log = airflow.client.get(
                f"/api/v2{run_path}/taskInstances/{ti['task_id']}/logs/{ti['try_number']}",
                headers={"Accept": "application/json"},
            )
            if log.status_code == 200:
                lines.append("\n".join(log_line(entry) for entry in log.json().get("content", []))[-4000:])
            else:
                lines.append(f"logs: HTTP {log.status_code} {log.text[-1000:]}")
    return "\n".join(lines)


def test_a_run_triggered_through_the_rest_api_scores_with_the_form_parameter(airflow: Airflow) -> None:
    started = time.monotonic()
    deadline = started + STARTUP_TIMEOUT
    airflow.wait_for("healthy api-server, scheduler and dag-processor", lambda: healthy(airflow), STARTUP_TIMEOUT)
    airflow.login()

    def parsed() -> dict | None:
        response = airflow.get(f"/dags/{DAG}")
        return response.json() if response.status_code == 200 else None

    try:
        dag = airflow.wait_for(f"DAG {DAG} parsed", parsed, deadline - time.monotonic())
    except AssertionError as exc:
        errors = airflow.get("/importErrors")
        raise AssertionError(f"{exc}\nimport errors: {errors.text[-3000:]}") from None
    assert dag["is_paused"] is True
    assert not dag["has_import_errors"]

    # what the UI's trigger form does: unpause, then POST the run with the logical date and the form's conf
    response = airflow.client.patch(f"/api/v2/dags/{DAG}", json={"is_paused": False})
    assert response.status_code == 200, response.text
    assert response.json()["is_paused"] is False
    response = airflow.client.post(
        f"/api/v2/dags/{DAG}/dagRuns", json={"logical_date": f"{AS_OF}T00:00:00Z", "conf": {"factors": 2}}
    )
    assert response.status_code == 200, response.text
    run = response.json()
    assert run["conf"] == {"factors": 2}
    assert run["run_type"] == "manual"
    assert run["data_interval_end"].startswith(AS_OF)  # the as-of date of every task
    run_id = run["dag_run_id"]
    run_path = f"/dags/{DAG}/dagRuns/{quote(run_id, safe='')}"

    def finished() -> str | None:
        response = airflow.get(run_path)
        assert response.status_code == 200, response.text
        state = response.json()["state"]
        return state if state in ("success", "failed") else None

    try:
        state = airflow.wait_for(f"end of run {run_id}", finished, RUN_TIMEOUT)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\ntasks:\n{task_report(airflow, run_path)}") from None
    assert state == "success", f"run {run_id} failed:\n{task_report(airflow, run_path)}\n{airflow.diagnostics()}"
    assert airflow.get(run_path).json()["note"] == f"as of {AS_OF}"  # the grid shows the run's as-of date
    response = airflow.get(f"{run_path}/taskInstances")
    states = {ti["task_id"]: ti["state"] for ti in response.json()["task_instances"]}
    assert set(states.values()) == {"success"}, states
    assert len(states) == len(step_names())
    assert airflow.get(f"/dags/{DAG}/dagRuns").json()["total_entries"] == 1  # no scheduled run besides it

    store = Path(airflow.env["CUSTOMER_AI_HOME"]) / "store.sqlite"
    with contextlib.closing(sqlite3.connect(store)) as connection:
        rows = connection.execute("SELECT instance, profile_id, as_of, factors FROM customer_ai_scores").fetchall()
        runs = connection.execute("SELECT as_of, status FROM customer_ai_runs").fetchall()
    eligible = eligible_at(AS_OF)
    assert len(rows) == len(eligible)
    assert {row[1] for row in rows} == eligible
    assert {(row[0], row[2]) for row in rows} == {("repurchase_30d", AS_OF)}
    assert runs == [(AS_OF, "ok")]
    attempt = artifacts.attempt_id(DAG, run_id)  # every task of the DAG run worked in this attempt
    published = SQLiteStore(store).latest_run("repurchase_30d")
    assert published["run_id"] == attempt
    attempts = SQLiteStore(store).read_attempts("repurchase_30d")
    assert list(attempts[["attempt", "step", "status"]].itertuples(index=False, name=None)) == [
        (attempt, "validate_events", "started"),
        (attempt, "publish", "ok"),
    ]
    assert attempts["reason"].iloc[0] == f"started by Airflow DAG run {DAG} / {run_id}"
    sizes = [len(json.loads(row[3])) for row in rows]
    assert max(sizes) == 2  # at most the form's factors=2 (not the instance's 5), and some profile has 2

    response = airflow.get("/assets/events", source_dag_id=DAG, source_run_id=run_id)
    assert response.status_code == 200, response.text
    events = [event for event in response.json()["asset_events"] if event["uri"] == ASSET_URI]
    assert len(events) == 1, response.text
    assert events[0]["source_task_id"] == "publish"
    assert events[0]["extra"] == {  # the run the event announces is the one the store made current
        "as_of": AS_OF,
        "run_id": attempt,
        "model_version": published["model_version"],
        "scored_profiles": len(eligible),
    }
    print(f"Airflow services: run {run_id} checked {time.monotonic() - started:.0f}s after start")


CHURN = "customer_ai__churn_60d"
WEEKS = ["2011-10-02", "2011-10-09"]  # two weeks show week by week (three cost another minute of CI)


def test_a_backfill_rescores_week_by_week_from_earlier_data_only(airflow: Airflow) -> None:
    airflow.wait_for("healthy api-server, scheduler and dag-processor", lambda: healthy(airflow), STARTUP_TIMEOUT)
    airflow.login()
    airflow.wait_for(
        f"DAG {CHURN} parsed", lambda: airflow.get(f"/dags/{CHURN}").status_code == 200 or None, STARTUP_TIMEOUT
    )
    response = airflow.client.patch(f"/api/v2/dags/{CHURN}", json={"is_paused": False})
    assert response.status_code == 200, response.text

    # what a user types: weekly runs, each as of its Sunday
    # (a backfill ignores the DAG's max_active_runs and defaults to 10 at once: one at a time is week by week)
    command = ["backfill", "create", "--dag-id", CHURN, "--from-date", WEEKS[0], "--to-date", WEEKS[-1]]
    command += ["--max-active-runs", "1"]
    for _ in range(3):  # SQLite refuses a write that meets the scheduler's at once ("database is locked"): retry
        created = run_airflow(airflow.env, *command)
        if created.returncode == 0 or "database is locked" not in created.stderr:
            break
        assert airflow.get(f"/dags/{CHURN}/dagRuns").json()["dag_runs"] == []  # the failed attempt left nothing
    assert created.returncode == 0, created.stderr[-3000:]

    def all_finished() -> list[dict] | None:
        runs = airflow.get(f"/dags/{CHURN}/dagRuns").json()["dag_runs"]
        done = [r for r in runs if r["state"] in ("success", "failed")]
        return runs if len(runs) == len(WEEKS) and len(done) == len(WEEKS) else None

    runs = airflow.wait_for("the backfill's runs", all_finished, RUN_TIMEOUT * 2)
    failed = [r for r in runs if r["state"] != "success"]
    reports = "\n".join(
        task_report(airflow, f"/dags/{CHURN}/dagRuns/{quote(r['dag_run_id'], safe='')}") for r in failed
    )
    assert not failed, reports
    assert sorted(r["run_type"] for r in runs) == ["backfill"] * len(WEEKS)
    assert sorted(r["logical_date"][:10] for r in runs) == WEEKS
    assert sorted(r["note"] for r in runs) == [f"as of {week}" for week in WEEKS]

    home = Path(airflow.env["CUSTOMER_AI_HOME"])
    with contextlib.closing(sqlite3.connect(home / "store.sqlite")) as connection:
        per_date = dict(
            connection.execute(
                "SELECT as_of, COUNT(*) FROM customer_ai_score_history WHERE instance = 'churn_60d' GROUP BY as_of"
            ).fetchall()
        )
        per_profile = dict(
            connection.execute(
                "SELECT profile_id, COUNT(*) FROM customer_ai_score_history WHERE instance = 'churn_60d' "
                "GROUP BY profile_id"
            ).fetchall()
        )
        current = connection.execute(
            "SELECT DISTINCT as_of FROM customer_ai_scores WHERE instance = 'churn_60d'"
        ).fetchall()
    assert per_date == {week: len(eligible_at(week)) for week in WEEKS}
    always = set.intersection(*(eligible_at(week) for week in WEEKS))
    assert {per_profile[p] for p in always} == {len(WEEKS)}  # one history row per profile per as-of date
    assert current == [(WEEKS[-1],)]
    store = SQLiteStore(home / "store.sqlite")
    folders = artifacts.published_folders(home, "churn_60d", store.read_runs("churn_60d"))
    assert sorted(folders) == WEEKS
    by_week = {r["logical_date"][:10]: artifacts.attempt_id(CHURN, r["dag_run_id"]) for r in runs}
    for week in WEEKS:
        assert folders[week].name == by_week[week]  # each week's folder is sealed by its own DAG run
        seen = read_all_parts(folders[week], 1)
        assert seen["timestamp"].max() < pd.Timestamp(week, tz="UTC")  # each week saw only its past
        summary = json.loads((folders[week] / "metadata.json").read_text())
        assert summary["model_trained_as_of"] == WEEKS[0]  # in order: later weeks reuse the first week's model
        assert summary["model_reused"] is (week != WEEKS[0])
