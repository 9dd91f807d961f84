"""The profile stores: current scores, history, published runs, attempts and all-or-nothing writes.

The behaviour tests run on both stores (the ``store`` fixture): the embedded SQLite file and PostgreSQL on the
real server named by ``$CUSTOMER_AI_TEST_POSTGRES`` (default: database ``test`` on 127.0.0.1), in a schema of
this module's own (``test_store_<random hex>``) dropped at the end.  PostgreSQL-only behaviour (COPY, locks,
migrations, lost connections) is in test_store_postgres.py, which reuses the helpers below.  The migration of a
SQLite file written before attempts were kept apart is here too, with the expected rows the PostgreSQL migration
test checks as well.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import json
import math
import os
import re
import secrets
import sqlite3
import subprocess
import sys
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg2
import pyarrow as pa
import pytest
from psycopg2 import sql

from customer_ai.saved_audiences import AudienceError, SavedAudience
from customer_ai.store import (
    AudienceExistsError,
    PostgresStore,
    SQLiteStore,
    StoreDamagedError,
    StoreMissingError,
    StoreUnavailableError,
    StoreVersionError,
    open_store,
)
from customer_ai.store.lease import LockLostError, RunInProgressError, RunLease
from customer_ai.store.postgres import _PostgresWriter
from customer_ai.store.sqlite import _SQLiteWriter

PG_DSN = os.environ.get("CUSTOMER_AI_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
TABLES = ("customer_ai_scores", "customer_ai_score_history", "customer_ai_runs")
NEW_TABLES = ("customer_ai_segments", "customer_ai_outcomes", "customer_ai_attempts")

FACTOR = {"feature": "purchase_count_30d", "description": "3 purchases in the last 30 days", "value": 3}


def scores(probabilities: dict[str, float], version: str = "20240201-aaaaaaaaaa") -> pd.DataFrame:
    ids = list(probabilities)
    return pd.DataFrame(
        {
            "profile_id": ids,
            "probability": [probabilities[i] for i in ids],
            "score": [round(probabilities[i] * 100) for i in ids],
            "percentile": list(range(1, len(ids) + 1)),
            "bucket": ["low"] * len(ids),
            "propensity": ["conversion"] * len(ids),
            "model_version": [version] * len(ids),
            "factors": [[{**FACTOR, "contribution": 0.5}] if i == ids[0] else [] for i in ids],
        }
    )


def run(version: str = "20240201-aaaaaaaaaa", **metrics: float) -> dict:
    return {"model_version": version, "status": "ok", "reason": "fine", "metrics": metrics}


@contextmanager
def admin() -> Iterator[psycopg2.extensions.connection]:
    """A plain autocommit connection to the test database, for setting up and checking from outside a store."""
    connection = psycopg2.connect(PG_DSN, connect_timeout=5)
    connection.autocommit = True
    try:
        yield connection
    finally:
        connection.close()


@contextmanager
def schemas(prefix: str) -> Iterator[Callable[[], str]]:
    """Yield a factory of fresh schema names ``<prefix>_<random hex>_<n>``; drop every one of them at the end."""
    base = f"{prefix}_{secrets.token_hex(4)}"
    made: list[str] = []

    def fresh() -> str:
        made.append(f"{base}_{len(made)}")
        return made[-1]

    try:
        yield fresh
    finally:
        with admin() as connection, connection.cursor() as cursor:
            for name in made:
                cursor.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


@pytest.fixture(scope="module")
def pg_schema() -> Iterator[str]:
    with schemas("test_store") as fresh:
        yield fresh()


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path) -> SQLiteStore | PostgresStore:
    if request.param == "sqlite":
        return SQLiteStore(tmp_path / "nested" / "store.sqlite")
    schema = request.getfixturevalue("pg_schema")
    opened = PostgresStore(PG_DSN, schema)
    opened.count_rows("")  # creates the tables on first use
    with admin() as connection, connection.cursor() as cursor:
        every = (*TABLES[1:], *NEW_TABLES, "customer_ai_current", "customer_ai_locks", "customer_ai_audiences")
        tables = sql.SQL(", ").join(sql.Identifier(schema, t) for t in every)
        # attempt ids count from 1 again, as in a new SQLite file
        cursor.execute(sql.SQL("TRUNCATE {} RESTART IDENTITY").format(tables))
    return opened


def counts(current: int, history: int, runs: int) -> dict[str, int]:
    return {"customer_ai_scores": current, "customer_ai_score_history": history, "customer_ai_runs": runs}


def state(store, instance: str = "unit", dates: tuple[str, ...] = ("2024-01-01", "2024-02-01")) -> list:
    """Everything a write may touch: current scores, history of ``dates``, runs, attempts, outcomes, membership."""
    return [
        store.read_scores(instance),
        *(store.read_scores(instance, as_of=d) for d in dates),
        store.read_runs(instance),
        store.read_attempts(instance),
        store.read_outcomes(instance),
        membership(store, instance),
    ]


def assert_same_state(before: list, after: list) -> None:
    for old, new in zip(before, after, strict=True):
        if isinstance(old, pd.DataFrame):
            pd.testing.assert_frame_equal(old, new)
        else:
            assert old == new


def test_write_then_read_scores(store):
    store.write_run("unit", "2024-02-01", scores({"p1": 0.2, "p2": 0.9, "p3": 0.2}), run(roc_auc=0.8))
    frame = store.read_scores("unit")
    assert list(frame.columns) == [
        "instance",
        "profile_id",
        "as_of",
        "probability",
        "score",
        "percentile",
        "bucket",
        "propensity",
        "model_version",
        "expected_value",
        "days_to_next",
        "next_by",
        "factors",
    ]
    assert frame["profile_id"].tolist() == ["p2", "p1", "p3"]  # probability descending, then profile id
    assert frame["instance"].tolist() == ["unit"] * 3
    assert frame["as_of"].tolist() == ["2024-02-01"] * 3
    assert frame["probability"].tolist() == [0.9, 0.2, 0.2]
    assert frame["score"].tolist() == [90, 20, 20]
    assert frame["percentile"].tolist() == [2, 1, 3]
    assert frame["factors"].tolist() == [[], [{**FACTOR, "contribution": 0.5}], []]
    assert store.count_rows("unit") == counts(3, 3, 1)
    assert list(frame["factors"][1][0]) == ["feature", "description", "value", "contribution"]  # key order kept


def test_score_batches_read_one_date_in_frames_of_the_columns_asked(store):
    store.write_run("unit", "2024-01-01", scores({"p1": 0.5}), run())
    store.write_run("unit", "2024-02-01", scores({"p1": 0.2, "p2": 0.9, "p3": 0.2, "p4": 0.4, "p5": 0.1}), run())
    store.write_run("other", "2024-02-01", scores({"p9": 0.5}), run())
    batches = list(store.score_batches("unit", "2024-02-01", ["profile_id", "probability", "percentile"], rows=2))
    assert [len(b) for b in batches] == [2, 2, 1]
    assert all(list(b.columns) == ["profile_id", "probability", "percentile"] for b in batches)
    read = pd.concat(batches, ignore_index=True).sort_values("profile_id", ignore_index=True)
    assert read.to_dict("list") == {
        "profile_id": ["p1", "p2", "p3", "p4", "p5"],
        "probability": [0.2, 0.9, 0.2, 0.4, 0.1],
        "percentile": [1, 2, 3, 4, 5],  # as the frame written gives them
    }
    assert list(store.score_batches("unit", "2023-12-01", ["profile_id"])) == []  # no run that date
    with pytest.raises(ValueError, match=r"not \['factors'\]"):
        next(store.score_batches("unit", "2024-02-01", ["profile_id", "factors"]))


def test_sqlite_store_creates_its_folder(tmp_path):
    opened = SQLiteStore(tmp_path / "a" / "b" / "store.sqlite")
    opened.write_run("unit", "2024-02-01", scores({"p1": 0.2}), run())
    assert opened.path.exists()


def test_read_scores_filters(store):
    store.write_run("unit", "2024-02-01", scores({"p1": 0.2, "p2": 0.9}), run())
    store.write_run("other", "2024-02-01", scores({"p9": 0.5}), run())
    assert store.read_scores("unit", profile_id="p1")["probability"].tolist() == [0.2]
    assert store.read_scores("unit", profile_id="p9").empty
    assert store.read_scores("other")["profile_id"].tolist() == ["p9"]
    assert store.read_scores("unit", as_of="2024-02-01")["profile_id"].tolist() == ["p2", "p1"]
    assert store.read_scores("unit", as_of="2024-01-01").empty
    assert store.count_rows("missing") == counts(0, 0, 0)


def test_read_scores_with_a_limit_gives_the_top_rows_in_order(store):
    store.write_run("unit", "2024-02-01", scores({"p1": 0.2, "p2": 0.9, "p3": 0.9, "p4": 0.5}), run())
    assert store.read_scores("unit", limit=3)["profile_id"].tolist() == ["p2", "p3", "p4"]
    assert store.read_scores("unit", as_of="2024-02-01", limit=1)["profile_id"].tolist() == ["p2"]
    assert store.read_scores("unit", limit=10)["profile_id"].tolist() == ["p2", "p3", "p4", "p1"]
    assert store.read_scores("unit", limit=0).empty
    with pytest.raises(ValueError, match="limit must be 0 or more, not -1"):
        store.read_scores("unit", limit=-1)


def test_rewriting_the_same_as_of_keeps_row_counts(store):
    store.write_run("unit", "2024-02-01", scores({"p1": 0.2, "p2": 0.9}), run())
    store.write_run("unit", "2024-02-01", scores({"p1": 0.3, "p2": 0.8}), run())
    assert store.count_rows("unit") == counts(2, 2, 1)
    assert store.read_scores("unit")["probability"].tolist() == [0.8, 0.3]
    assert store.read_scores("unit", as_of="2024-02-01")["probability"].tolist() == [0.8, 0.3]


def test_newer_as_of_replaces_current_scores_and_adds_history(store):
    store.write_run("unit", "2024-01-01", scores({"p1": 0.2, "p2": 0.9}, "v1"), run("v1"))
    store.write_run("unit", "2024-02-01", scores({"p2": 0.4, "p3": 0.6}, "v2"), run("v2"))

    current = store.read_scores("unit")
    assert current["profile_id"].tolist() == ["p3", "p2"]  # p1 is no longer scored
    assert set(current["as_of"]) == {"2024-02-01"}
    assert set(current["model_version"]) == {"v2"}
    assert store.count_rows("unit") == counts(2, 4, 2)
    assert store.read_scores("unit", as_of="2024-01-01")["profile_id"].tolist() == ["p2", "p1"]


def test_older_as_of_backfills_history_only(store):
    store.write_run("unit", "2024-02-01", scores({"p2": 0.4, "p3": 0.6}, "v2"), run("v2"))
    store.write_run("unit", "2024-01-01", scores({"p1": 0.2, "p2": 0.9}, "v1"), run("v1"))

    current = store.read_scores("unit")
    assert current["profile_id"].tolist() == ["p3", "p2"]
    assert current["probability"].tolist() == [0.6, 0.4]
    assert set(current["as_of"]) == {"2024-02-01"}
    assert store.read_scores("unit", as_of="2024-01-01")["probability"].tolist() == [0.9, 0.2]
    assert store.count_rows("unit") == counts(2, 4, 2)
    assert store.read_runs("unit")["as_of"].tolist() == ["2024-01-01", "2024-02-01"]


def test_instances_are_kept_apart(store):
    store.write_run("a", "2024-01-01", scores({"p1": 0.2}), run())
    store.write_run("b", "2024-02-01", scores({"p1": 0.7, "p2": 0.1}), run())
    store.write_run("a", "2024-01-01", scores({"p1": 0.3}), run())
    assert store.read_scores("a")["probability"].tolist() == [0.3]
    assert store.count_rows("a") == counts(1, 1, 1)
    assert store.count_rows("b") == counts(2, 2, 1)


# what each database says (SQLite names the key's columns, PostgreSQL its values), with {profile} the profile id
SCORED_TWICE = (
    r"a profile is scored twice \((UNIQUE constraint failed: customer_ai_score_history\.instance, "
    r"customer_ai_score_history\.profile_id, customer_ai_score_history\.as_of|Key \(instance, as_of, profile_id\)="
    r"\(unit, 2024-0[12]-01, {profile}\) already exists\.)\); nothing written$"
)


def _duplicate_profile(frame: pd.DataFrame, run_row: dict) -> tuple[pd.DataFrame, dict]:
    return pd.concat([frame, frame.iloc[:1]], ignore_index=True), run_row


def _nan_probability(frame: pd.DataFrame, run_row: dict) -> tuple[pd.DataFrame, dict]:
    return frame.assign(probability=[0.5, float("nan")]), run_row


def _none_profile(frame: pd.DataFrame, run_row: dict) -> tuple[pd.DataFrame, dict]:
    return frame.assign(profile_id=["p3", None]), run_row


def _incomplete_run(frame: pd.DataFrame, run_row: dict) -> tuple[pd.DataFrame, dict]:
    return frame, {k: v for k, v in run_row.items() if k != "status"}


def _run_without_model_version(frame: pd.DataFrame, run_row: dict) -> tuple[pd.DataFrame, dict]:
    return frame, {**run_row, "model_version": None}


def _poor_run(frame: pd.DataFrame, run_row: dict) -> tuple[pd.DataFrame, dict]:
    return frame, {**run_row, "status": "poor"}


@pytest.mark.parametrize(
    ("spoil", "error"),
    [
        # the history's primary key refuses the second row of the profile
        (_duplicate_profile, "scores for unit as of 2024-0[12]-01: " + SCORED_TWICE.format(profile="p3")),
        (_nan_probability, r"missing values in \['probability'\]; nothing written"),  # checked before writing
        (_none_profile, r"missing values in \['profile_id'\]"),
        (_incomplete_run, "status"),  # refused before writing
        (_poor_run, r"only an 'ok' run is published with write_run; an attempt that published nothing \('poor'\)"),
        # the database refuses the run row, after history and current scores were replaced
        (_run_without_model_version, 'NOT NULL constraint failed|null value in column "model_version"'),
    ],
)
@pytest.mark.parametrize("as_of", ["2024-01-01", "2024-02-01"])
def test_failed_write_leaves_previous_rows_intact(store, spoil, error, as_of):
    store.write_run("unit", "2024-01-01", scores({"p1": 0.2, "p2": 0.9}, "v1"), run("v1", roc_auc=0.8))
    before = state(store)

    bad_scores, bad_run = spoil(scores({"p3": 0.1, "p4": 0.5}, "v2"), run("v2"))
    with pytest.raises(Exception, match=error):
        store.write_run("unit", as_of, bad_scores, bad_run)

    assert_same_state(before, state(store))
    assert store.count_rows("unit") == counts(2, 2, 1)
    assert len(store.read_attempts("unit")) == 1  # the ok attempt of the first write only
    # the store still accepts writes afterwards (no lock or open transaction left behind)
    store.write_run("unit", "2024-02-01", scores({"p3": 0.1}, "v2"), run("v2"))
    assert store.count_rows("unit") == counts(1, 3, 2)
    assert len(store.read_attempts("unit")) == 2


def test_read_runs(store):
    store.write_run("unit", "2024-02-01", scores({"p1": 0.2, "p2": 0.9}, "v2"), run("v2", roc_auc=0.81, brier=0.1))
    store.write_run("unit", "2024-01-01", scores({"p1": 0.2}, "v1"), run("v1", roc_auc=0.7))
    store.write_run("unit", "2024-02-01", scores({"p1": 0.2, "p2": 0.9, "p3": 0.5}, "v3"), run("v3", roc_auc=0.9))
    runs = store.read_runs("unit")
    assert list(runs.columns) == [
        "instance",
        "as_of",
        "model_version",
        "status",
        "reason",
        "metrics",
        "scored_profiles",
        "written_at",
        "run_id",
    ]
    assert runs["as_of"].tolist() == ["2024-01-01", "2024-02-01"]
    assert runs["model_version"].tolist() == ["v1", "v3"]
    assert runs["status"].tolist() == ["ok", "ok"]
    assert runs["reason"].tolist() == ["fine", "fine"]
    assert runs["scored_profiles"].tolist() == [1, 3]
    assert [json.loads(m) for m in runs["metrics"]] == [{"roc_auc": 0.7}, {"roc_auc": 0.9}]
    assert runs["written_at"].str.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ").all()
    assert runs["run_id"].tolist() == ["", ""]  # written without a run folder's name
    assert store.read_runs("other").empty


def test_run_without_metrics_stores_empty_object(store):
    store.write_run("unit", "2024-02-01", scores({"p1": 0.2}), {"model_version": "v", "status": "ok", "reason": "r"})
    assert store.read_runs("unit")["metrics"].tolist() == ["{}"]


@pytest.mark.parametrize("uri", [None, ""])
def test_open_store_default_under_home(tmp_path, uri):
    opened = open_store(uri, tmp_path)
    assert isinstance(opened, SQLiteStore)
    assert opened.path == tmp_path / "store.sqlite"


def test_open_store_sqlite_uri(tmp_path):
    opened = open_store(f"sqlite:///{tmp_path}/scores.sqlite", Path("/unused"))
    assert opened.path == tmp_path / "scores.sqlite"
    assert repr(opened) == f"SQLiteStore({str(tmp_path / 'scores.sqlite')!r})"
    opened.write_run("unit", "2024-02-01", scores({"p1": 0.2}), run())
    assert (tmp_path / "scores.sqlite").exists()


def test_open_store_relative_sqlite_uri():
    assert open_store("sqlite:///data/scores.sqlite", Path("/unused")).path == Path("data/scores.sqlite")


@pytest.mark.parametrize("uri", ["mysql://user@host/db", "sqlite://scores.sqlite", "/tmp/store.sqlite"])
def test_open_store_rejects_unsupported_addresses(tmp_path, uri):
    with pytest.raises(ValueError, match=re.escape(f"unsupported store address {uri!r}")):
        open_store(uri, tmp_path)


def test_open_store_masks_the_password_of_an_unsupported_address(tmp_path):
    with pytest.raises(ValueError, match=re.escape("'mysql://user:***@host/db'")) as caught:
        open_store("mysql://user:hunter2@host/db", tmp_path)
    assert "hunter2" not in str(caught.value)


def test_backfill_after_a_newer_run_that_scored_nobody_keeps_current_empty(store) -> None:
    store.write_run("unit", "2024-02-01", scores({}), run())
    store.write_run("unit", "2024-01-01", scores({"p1": 0.4}), run())
    assert store.read_scores("unit").empty
    assert store.read_scores("unit", as_of="2024-01-01")["profile_id"].tolist() == ["p1"]
    assert store.read_runs("unit")["as_of"].tolist() == ["2024-01-01", "2024-02-01"]


# --- behaviour shared by both stores: which run is current, attempts, latest_run --------------------------------


def frames(store, instance: str = "unit", dates: tuple[str, ...] = ("2024-01-01",)) -> list[pd.DataFrame]:
    return [store.read_scores(instance), *(store.read_scores(instance, as_of=d) for d in dates)]


def assert_frames_equal(before: list[pd.DataFrame], after: list[pd.DataFrame]) -> None:
    for old, new in zip(before, after, strict=True):
        pd.testing.assert_frame_equal(old, new)


POOR_REASON = (
    "model v9 is poor: validation ROC AUC 0.550 is below the quality gate of 0.65; the previous scores are kept"
)


def poor(version: str = "v9", **metrics: float) -> dict:
    """The attempt row the quality gate records for a poor model."""
    return {
        "status": "poor",
        "attempt": "cli-00000000bb",
        "step": "quality_gate",
        "reason": POOR_REASON,
        "model_version": version,
        "metrics": metrics,
    }


def started(attempt: str = "cli-00000000bb") -> dict:
    return {"status": "started", "attempt": attempt, "step": "validate_events", "reason": "started"}


def published(version: str, run_id: str, attempt: str | None = None, **metrics: float) -> dict:
    """The run row publish writes: the sealed folder's name and the attempt's id."""
    return {**run(version, **metrics), "run_id": run_id, "attempt": attempt or run_id.split(".", maxsplit=1)[0]}


TIME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"


def test_a_poor_rerun_of_the_current_date_still_protects_its_scores_from_older_backfills(store):
    store.write_run("unit", "2024-02-01", scores({"p1": 0.2, "p2": 0.9}, "v2"), run("v2", roc_auc=0.8))
    store.record_attempt("unit", "2024-02-01", poor("v3"))  # the same date re-run with a model that failed the gate
    store.write_run("unit", "2024-01-01", scores({"p9": 0.5}, "v1"), run("v1", roc_auc=0.8))  # a backfill
    current = store.read_scores("unit")
    assert current["profile_id"].tolist() == ["p2", "p1"]
    assert set(current["as_of"]) == {"2024-02-01"}
    assert store.read_scores("unit", as_of="2024-01-01")["profile_id"].tolist() == ["p9"]
    assert store.latest_run("unit")["model_version"] == "v2"


def test_a_poor_attempt_after_an_ok_run_of_the_same_date_keeps_the_run_row_scores_and_history(store):
    # issue 17, case 2: a re-run of a published date whose model fails the gate used to replace the published
    # run's row (status poor, 0 profiles) while its scores and history stayed: the run was lost to every reader
    store.write_run(
        "unit",
        "2024-02-01",
        scores({"p1": 0.2, "p2": 0.9}, "v2"),
        published("v2", "cli-00000000aa", roc_auc=0.8),
        segments=members({"high": ["p2"]}),
    )
    store.write_outcomes("unit", "2024-01-01", outcomes(("all", "all", 2, 0.5, 0.5)))
    before, latest = state(store), store.latest_run("unit")
    store.record_attempt("unit", "2024-02-01", started())
    store.record_attempt("unit", "2024-02-01", poor("v3", roc_auc=0.55))

    after = state(store)
    assert_same_state(before[:4], after[:4])  # current scores, history, the run row
    assert_same_state(before[5:], after[5:])  # outcomes, membership
    assert store.count_rows("unit") == counts(2, 2, 1)
    assert store.latest_run("unit") == latest
    assert (latest["as_of"], latest["status"], latest["model_version"], latest["run_id"]) == (
        "2024-02-01",
        "ok",
        "v2",
        "cli-00000000aa",
    )
    assert latest["scored_profiles"] == 2
    assert store.latest_run("unit", status=None) == latest
    assert store.latest_run("unit", status="poor") is None
    assert store.read_segment("unit", "high")["profile_id"].tolist() == ["p2"]
    attempts = store.read_attempts("unit")
    assert list(zip(attempts["status"], attempts["model_version"], attempts["run_id"], strict=True)) == [
        ("ok", "v2", "cli-00000000aa"),
        ("started", "", ""),
        ("poor", "v3", ""),
    ]
    newest = store.latest_attempt("unit")
    assert (newest["status"], newest["step"], newest["reason"], newest["metrics"]) == (
        "poor",
        "quality_gate",
        POOR_REASON,
        {"roc_auc": 0.55},
    )


def test_a_poor_attempt_of_a_new_date_leaves_runs_scores_and_history(store):
    store.write_run("unit", "2024-01-01", scores({"p1": 0.2, "p2": 0.9}, "v1"), run("v1", roc_auc=0.8))
    before = frames(store)
    store.record_attempt("unit", "2024-02-01", poor("v2", roc_auc=0.55))

    assert_frames_equal(before, frames(store))
    assert store.read_scores("unit", as_of="2024-02-01").empty
    assert store.count_rows("unit") == counts(2, 2, 1)
    assert store.read_runs("unit")["as_of"].tolist() == ["2024-01-01"]
    latest = store.latest_run("unit", status=None)
    written_at = latest.pop("written_at")
    assert re.fullmatch(TIME, written_at)
    assert latest == {
        "instance": "unit",
        "as_of": "2024-01-01",
        "model_version": "v1",
        "status": "ok",
        "reason": "fine",
        "metrics": {"roc_auc": 0.8},
        "scored_profiles": 2,
        "run_id": "",
    }
    assert store.latest_run("unit") == {**latest, "written_at": written_at}
    assert store.latest_run("unit", status="poor") is None
    assert store.latest_run("unit", status="failed") is None
    assert store.latest_run("other") is None
    assert store.latest_run("other", status=None) is None
    assert store.read_attempts("unit")["status"].tolist() == ["ok", "poor"]
    assert store.latest_attempt("unit")["as_of"] == "2024-02-01"


def test_only_published_runs_decide_which_as_of_is_current(store):
    store.write_run("unit", "2024-01-01", scores({"p1": 0.2, "p2": 0.9}, "v1"), run("v1"))
    store.record_attempt("unit", "2024-03-01", poor("v3"))
    # older than the poor attempt, newer than every published run: its scores become current
    store.write_run("unit", "2024-02-01", scores({"p2": 0.4, "p3": 0.6}, "v2"), run("v2"))
    current = store.read_scores("unit")
    assert current["profile_id"].tolist() == ["p3", "p2"]
    assert set(current["as_of"]) == {"2024-02-01"}
    assert store.latest_run("unit")["as_of"] == "2024-02-01"
    assert store.latest_run("unit", status=None)["as_of"] == "2024-02-01"  # the poor attempt is no run
    assert store.count_rows("unit") == counts(2, 4, 2)
    # a backfill older than the newest published run still only fills history
    store.write_run("unit", "2023-12-01", scores({"p9": 0.5}, "v0"), run("v0"))
    assert store.read_scores("unit")["profile_id"].tolist() == ["p3", "p2"]
    assert store.read_scores("unit", as_of="2023-12-01")["profile_id"].tolist() == ["p9"]


@pytest.mark.parametrize("status", ["poor", "failed", "started", "OK", None])
def test_write_run_publishes_only_an_ok_run_and_refuses_others_writing_nothing(store, status):
    # before issue 17 a write_run of a poor run filled that date's history (and replaced its run row)
    store.write_run("unit", "2024-01-01", scores({"p1": 0.2}, "v1"), run("v1"), segments=members({"a": ["p1"]}))
    before = state(store)
    with pytest.raises(ValueError, match=re.escape("run of unit as of 2024-02-01: only an 'ok' run is published")):
        store.write_run(
            "unit",
            "2024-02-01",
            scores({"p2": 0.7}, "v2"),
            {**run("v2"), "status": status},
            segments=members({"a": ["p2"]}),
            outcomes={"2024-01-01": outcomes(("all", "all", 1, 0.2, 1.0))},
        )
    assert_same_state(before, state(store))
    assert store.read_scores("unit", as_of="2024-02-01").empty
    assert store.count_rows("unit") == counts(1, 1, 1)


def test_segments_and_outcomes_of_write_run_are_keyword_only(store):
    with pytest.raises(TypeError, match="positional arguments"):
        store.write_run("unit", "2024-01-01", scores({"p1": 0.2}), run(), members({"a": ["p1"]}))
    assert store.count_rows("unit") == counts(0, 0, 0)


def test_record_attempt_on_a_new_instance_and_repeated(store):
    failed = {"status": "failed", "attempt": "cli-00000000aa", "step": "validate_events", "reason": "events missing"}
    store.record_attempt("unit", "2024-02-01", failed)
    assert store.count_rows("unit") == counts(0, 0, 0)
    assert store.latest_run("unit") is None
    assert store.latest_run("unit", status=None) is None
    store.record_attempt("unit", "2024-02-01", poor("v2"))  # the same as-of date: a second row, the first kept
    assert store.count_rows("unit") == counts(0, 0, 0)
    attempts = store.read_attempts("unit")
    assert list(zip(attempts["status"], attempts["step"], attempts["reason"], strict=True)) == [
        ("failed", "validate_events", "events missing"),
        ("poor", "quality_gate", POOR_REASON),
    ]
    latest = store.latest_attempt("unit")
    assert (latest["status"], latest["model_version"], latest["metrics"]) == ("poor", "v2", {})
    # a poor attempt does not count: the first ok run of an older date becomes current
    store.write_run("unit", "2024-01-01", scores({"p1": 0.2}), run())
    assert store.read_scores("unit")["profile_id"].tolist() == ["p1"]


ATTEMPT_COLUMNS = [
    "id",
    "instance",
    "as_of",
    "attempt",
    "step",
    "try_number",
    "status",
    "reason",
    "model_version",
    "metrics",
    "run_id",
    "recorded_at",
]
ATTEMPT_DTYPES = {
    "id": "int64",
    "instance": "str",
    "as_of": "str",
    "attempt": "str",
    "step": "str",
    "try_number": "int64",
    "status": "str",
    "reason": "str",
    "model_version": "str",
    "metrics": "str",
    "run_id": "str",
    "recorded_at": "str",
}


def now_text() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def attempt_rows(frame: pd.DataFrame) -> list[tuple]:
    """The rows of read_attempts without ``recorded_at``, as plain tuples."""
    return [tuple(row) for row in frame.drop(columns="recorded_at").itertuples(index=False)]


def test_attempts_are_appended_in_write_order_with_their_columns(store):
    first = now_text()
    store.record_attempt("unit", "2024-02-01", {**started("cli-0000000001"), "reason": "started by the command"})
    store.record_attempt(
        "unit",
        "2024-02-01",
        {"status": "failed", "attempt": "af-00000000a1", "step": "train", "try_number": 2, "reason": "MemoryError"},
    )
    store.record_attempt("unit", "2024-01-01", poor("v2", roc_auc=0.55, lift=1.5))
    store.record_attempt("other", "2024-02-01", {"status": "started"})  # everything else left to its default
    store.record_attempt(
        "unit",
        dt.date(2024, 2, 1),
        {"status": "failed", "attempt": "af-00000000a1", "step": "train", "try_number": 2, "reason": "MemoryError"},
    )  # the same row again: kept as a row of its own
    store.record_attempt("unit", "2024-02-01", {**started("af-00000000a1"), "try_number": np.int64(0)})
    last = now_text()

    read = store.read_attempts("unit")
    assert read.columns.tolist() == ATTEMPT_COLUMNS
    assert attempt_rows(read) == [
        (
            1,
            "unit",
            "2024-02-01",
            "cli-0000000001",
            "validate_events",
            1,
            "started",
            "started by the command",
            "",
            "{}",
            "",
        ),
        (2, "unit", "2024-02-01", "af-00000000a1", "train", 2, "failed", "MemoryError", "", "{}", ""),
        (
            3,
            "unit",
            "2024-01-01",
            "cli-00000000bb",
            "quality_gate",
            1,
            "poor",
            POOR_REASON,
            "v2",
            '{"lift": 1.5, "roc_auc": 0.55}',
            "",
        ),
        (5, "unit", "2024-02-01", "af-00000000a1", "train", 2, "failed", "MemoryError", "", "{}", ""),
        (6, "unit", "2024-02-01", "af-00000000a1", "validate_events", 0, "started", "started", "", "{}", ""),
    ]
    assert read["recorded_at"].str.fullmatch(TIME).all()
    assert first <= read["recorded_at"].min()
    assert read["recorded_at"].max() <= last
    assert read["recorded_at"].is_monotonic_increasing
    assert read.dtypes.astype(str).to_dict() == ATTEMPT_DTYPES
    assert attempt_rows(store.read_attempts("other")) == [
        (4, "other", "2024-02-01", "", "", 1, "started", "", "", "{}", "")
    ]
    # attempts are not runs: nothing else has a row
    assert store.count_rows("unit") == counts(0, 0, 0)
    assert store.read_runs("unit").empty
    assert store.latest_run("unit", status=None) is None


def test_empty_attempt_reads_have_the_dtypes_of_full_ones(store):
    store.record_attempt("unit", "2024-02-01", poor(roc_auc=0.5))
    full = store.read_attempts("unit")
    for empty in (
        store.read_attempts("nobody"),
        store.read_attempts("unit", as_of="2024-01-01"),
        store.read_attempts("unit", as_of="yesterday"),  # not a date: matches nothing
    ):
        assert empty.empty
        assert empty.columns.tolist() == ATTEMPT_COLUMNS
        assert empty.dtypes.to_dict() == full.dtypes.to_dict()
    assert full.dtypes.astype(str).to_dict() == ATTEMPT_DTYPES


def test_read_attempts_of_one_date_and_the_latest_attempt(store):
    assert store.latest_attempt("unit") is None
    store.record_attempt("unit", "2024-02-01", started("cli-00000000aa"))
    store.write_run("unit", "2024-02-01", scores({"p1": 0.2}, "v2"), published("v2", "cli-00000000aa", roc_auc=0.8))
    store.record_attempt("other", "2024-03-01", started("cli-00000000cc"))
    store.record_attempt("unit", "2024-01-01", poor("v1", roc_auc=0.55))  # written last, of an older date
    assert store.read_attempts("unit", as_of="2024-02-01")["id"].tolist() == [1, 2]
    assert store.read_attempts("unit", as_of=dt.date(2024, 1, 1))["id"].tolist() == [4]
    assert store.read_attempts("unit", as_of=pd.Timestamp("2024-02-01", tz="UTC"))["status"].tolist() == [
        "started",
        "ok",
    ]
    assert store.read_attempts("unit", as_of="2024-03-01").empty  # another instance's date
    assert store.read_attempts("unit")["id"].tolist() == [1, 2, 4]
    # the newest attempt is the last one written, not the one of the newest date
    latest = store.latest_attempt("unit")
    assert re.fullmatch(TIME, latest.pop("recorded_at"))
    assert latest == {
        "id": 4,
        "instance": "unit",
        "as_of": "2024-01-01",
        "attempt": "cli-00000000bb",
        "step": "quality_gate",
        "try_number": 1,
        "status": "poor",
        "reason": POOR_REASON,
        "model_version": "v1",
        "metrics": {"roc_auc": 0.55},
        "run_id": "",
    }
    assert type(latest["id"]) is int
    assert type(latest["try_number"]) is int
    other = store.latest_attempt("other")
    assert (other["id"], other["as_of"], other["attempt"]) == (3, "2024-03-01", "cli-00000000cc")
    assert store.latest_attempt("nobody") is None


@pytest.mark.parametrize(
    ("attempt", "error"),
    [
        (
            {**poor(), "status": "ok"},
            "attempt of unit as of 2024-02-01: an 'ok' attempt is the publish of its run, recorded by write_run",
        ),
        ({**poor(), "status": "running"}, "status 'running' is not one of started, failed, poor, ok; nothing written"),
        ({**poor(), "status": "Poor"}, "status 'Poor' is not one of started, failed, poor, ok"),
        ({k: v for k, v in poor().items() if k != "status"}, "status None is not one of"),
        ({**poor(), "try_number": -1}, "try_number -1 is not a whole number from 0; nothing written"),
        ({**poor(), "try_number": 1.5}, "try_number 1.5 is not a whole number from 0"),
        ({**poor(), "try_number": 2.0}, "try_number 2.0 is not a whole number from 0"),
        ({**poor(), "try_number": "2"}, "try_number '2' is not a whole number from 0"),
        ({**poor(), "try_number": True}, "try_number True is not a whole number from 0"),
        ({**poor(), "try_number": None}, "try_number None is not a whole number from 0"),
    ],
)
def test_refused_attempts_write_nothing(store, attempt, error):
    store.write_run("unit", "2024-01-01", scores({"p1": 0.2}), run())
    store.record_attempt("unit", "2024-02-01", started())
    before = state(store)
    with pytest.raises(ValueError, match=re.escape(error)):
        store.record_attempt("unit", "2024-02-01", attempt)
    assert_same_state(before, state(store))
    assert len(store.read_attempts("unit")) == 2


def test_hostile_names_and_reasons_in_attempts_are_stored_verbatim(store):
    hostile = "x'); DELETE FROM customer_ai_attempts; -- %s %(x)s {attempts} \\N \t\n 🚀"
    for number, instance in enumerate(HOSTILE_INSTANCES):
        store.record_attempt(
            instance,
            "2024-02-01",
            {
                "status": "failed",
                "attempt": f"{hostile}{number}",
                "step": 'st"ep',
                "reason": f"{hostile}\n{instance}",
                "model_version": "v'1;",
                "metrics": {hostile: 0.5},
            },
        )
    for number, instance in enumerate(HOSTILE_INSTANCES):
        read = store.read_attempts(instance)
        assert attempt_rows(read) == [
            (
                number + 1,
                instance,
                "2024-02-01",
                f"{hostile}{number}",
                'st"ep',
                1,
                "failed",
                f"{hostile}\n{instance}",
                "v'1;",
                json.dumps({hostile: 0.5}),
                "",
            )
        ]
        assert store.latest_attempt(instance)["metrics"] == {hostile: 0.5}
    assert store.read_attempts("unit").empty
    assert store.latest_attempt("'; --") is None


def test_latest_ok_run_is_the_newest_as_of_not_the_last_written(store):
    store.write_run("unit", "2024-02-01", scores({"p1": 0.2}, "v2"), run("v2"))
    store.write_run("unit", "2024-01-01", scores({"p1": 0.3}, "v1"), run("v1"))
    assert store.latest_run("unit")["model_version"] == "v2"


@pytest.mark.parametrize(
    "as_of", ["2024-02-01", dt.date(2024, 2, 1), pd.Timestamp("2024-02-01", tz="UTC"), dt.datetime(2024, 2, 1, 13)]
)
def test_as_of_dates_are_stored_as_iso_text(store, as_of):
    store.write_run("unit", as_of, scores({"p1": 0.2}), run())
    assert store.read_scores("unit")["as_of"].tolist() == ["2024-02-01"]
    assert store.read_scores("unit", as_of=as_of)["profile_id"].tolist() == ["p1"]
    assert store.read_runs("unit")["as_of"].tolist() == ["2024-02-01"]


@pytest.mark.parametrize("as_of", ["2024-13-01", "yesterday", "2024/02/01"])
def test_bad_as_of_dates_are_refused(store, as_of):
    with pytest.raises(ValueError, match=re.escape(f"as-of date {as_of!r} is not a date")):
        store.write_run("unit", as_of, scores({"p1": 0.2}), run())
    with pytest.raises(ValueError, match=re.escape(f"as-of date {as_of!r} is not a date")):
        store.record_attempt("unit", as_of, poor())
    with pytest.raises(ValueError, match=re.escape(f"as-of date {as_of!r} is not a date")):
        store.write_run("unit", "2024-02-01", scores({"p1": 0.2}), run(), outcomes={as_of: outcomes()})
    assert store.count_rows("unit") == counts(0, 0, 0)
    assert store.read_attempts("unit").empty
    store.write_run("unit", "2024-02-01", scores({"p1": 0.2}), run())
    assert store.read_scores("unit", as_of=as_of).empty  # reading a date that is not one finds nothing


def test_empty_reads_have_the_same_dtypes_as_full_ones(store):
    store.write_run("unit", "2024-02-01", scores({"p1": 0.2}), run(roc_auc=0.7))
    for full, empty in (
        (store.read_scores("unit"), store.read_scores("none")),
        (store.read_runs("unit"), store.read_runs("none")),
        (store.read_attempts("unit"), store.read_attempts("none")),
    ):
        assert empty.empty
        assert empty.dtypes.to_dict() == full.dtypes.to_dict()
    assert store.read_scores("unit").dtypes.astype(str).to_dict() == {
        "instance": "str",
        "profile_id": "str",
        "as_of": "str",
        "probability": "float64",
        "score": "int64",
        "percentile": "int64",
        "bucket": "str",
        "propensity": "str",
        "model_version": "str",
        "expected_value": "float64",
        "days_to_next": "float64",
        "next_by": "object",
        "factors": "object",
    }
    assert store.read_runs("unit").dtypes.astype(str).to_dict() == {
        "instance": "str",
        "as_of": "str",
        "model_version": "str",
        "status": "str",
        "reason": "str",
        "metrics": "str",
        "scored_profiles": "int64",
        "written_at": "str",
        "run_id": "str",
    }
    assert store.read_attempts("unit").dtypes.astype(str).to_dict() == ATTEMPT_DTYPES


HOSTILE_INSTANCES = [
    "it's; DROP TABLE customer_ai_scores; --",
    'quo"ted\\ %s %(x)s {schema}',
    "ünïcødé 🚀 客户",
    "tab\tnew\nline,comma",
]
HOSTILE_PROFILES = [
    "",
    "NULL",
    "\\N",
    "\\.",
    '"',
    "a,b",
    " spaced ",
    "x'); DELETE FROM t; --",
    "é",
    "🚀",
    "line\nbreak",
]


@pytest.mark.parametrize("instance", HOSTILE_INSTANCES)
def test_hostile_names_are_stored_verbatim(store, instance):
    probabilities = dict.fromkeys(HOSTILE_PROFILES, 0.5)
    written = scores(probabilities, version="v'1;")
    written["bucket"] = ['lo"w'] * len(written)
    store.write_run(instance, "2024-02-01", written, {**run("v'1;"), "reason": "ok'; --"})
    frame = store.read_scores(instance)
    assert frame["profile_id"].tolist() == sorted(HOSTILE_PROFILES)  # equal probabilities: profile id, byte order
    assert frame["instance"].tolist() == [instance] * len(HOSTILE_PROFILES)
    assert set(frame["bucket"]) == {'lo"w'}
    assert set(frame["model_version"]) == {"v'1;"}
    for profile in HOSTILE_PROFILES:
        assert store.read_scores(instance, profile_id=profile)["profile_id"].tolist() == [profile]
    assert store.read_runs(instance)["reason"].tolist() == ["ok'; --"]
    assert store.count_rows(instance) == counts(len(HOSTILE_PROFILES), len(HOSTILE_PROFILES), 1)
    assert store.count_rows("unit") == counts(0, 0, 0)
    store.record_attempt(instance, "2024-03-01", poor("v'2"))
    assert store.latest_run(instance, status=None)["model_version"] == "v'1;"
    assert store.latest_attempt(instance)["model_version"] == "v'2"
    assert store.read_attempts(instance)["instance"].tolist() == [instance, instance]
    assert store.read_attempts(instance)["reason"].tolist() == ["ok'; --", POOR_REASON]


# --- segment membership ---------------------------------------------------------------------------------------


def members(pairs: dict[str, list[str]]) -> pd.DataFrame:
    """Return a membership frame from ``{segment: [profile ids]}``."""
    rows = [(segment, profile) for segment, profiles in pairs.items() for profile in profiles]
    return pd.DataFrame(rows, columns=["segment", "profile_id"], dtype="str")


def membership(store, instance: str = "unit") -> list[tuple[str, str, str, str]]:
    """Return every membership row of an instance, read from outside the store, sorted."""
    if isinstance(store, SQLiteStore):
        with closing(sqlite3.connect(store.path)) as connection:  # closed: the file may be on a disk to unmount
            rows = connection.execute(
                "SELECT instance, segment, as_of, profile_id FROM customer_ai_segments WHERE instance = ?", (instance,)
            ).fetchall()
    else:
        table = sql.Identifier(store.schema, "customer_ai_segments")
        with admin() as connection, connection.cursor() as cursor:
            cursor.execute(
                sql.SQL("SELECT instance, segment, as_of::text, profile_id FROM {} WHERE instance = %s").format(table),
                (instance,),
            )
            rows = cursor.fetchall()
    return sorted(rows)


def test_membership_is_written_with_the_run_and_read_with_its_scores(store):
    written = scores({"p1": 0.2, "p2": 0.9, "p3": 0.5})
    store.write_run("unit", "2024-02-01", written, run(), segments=members({"low": ["p2", "p1"], "top": ["p2", "p3"]}))
    top = store.read_segment("unit", "top")
    pd.testing.assert_frame_equal(
        top, store.read_scores("unit", as_of="2024-02-01").iloc[[0, 1]].reset_index(drop=True)
    )
    assert top["profile_id"].tolist() == ["p2", "p3"]  # probability descending
    assert top["factors"].tolist() == [[], []]
    assert store.read_segment("unit", "low", as_of="2024-02-01")["profile_id"].tolist() == ["p2", "p1"]
    assert store.read_segment("unit", "medium").empty
    assert store.segment_names("unit", "2024-02-01") == ["low", "top"]
    assert membership(store) == [
        ("unit", "low", "2024-02-01", "p1"),
        ("unit", "low", "2024-02-01", "p2"),
        ("unit", "top", "2024-02-01", "p2"),
        ("unit", "top", "2024-02-01", "p3"),
    ]


def test_rewriting_a_date_gives_the_same_membership(store):
    written, chosen = scores({"p1": 0.2, "p2": 0.9}), members({"high": ["p2"], "all": ["p1", "p2"]})
    store.write_run("unit", "2024-02-01", written, run(), segments=chosen)
    first = membership(store)
    store.write_run("unit", "2024-02-01", written, run(), segments=chosen)
    assert membership(store) == first
    assert len(first) == 3


def test_a_rerun_replaces_only_its_own_dates_membership(store):
    store.write_run("unit", "2024-01-01", scores({"p1": 0.2}), run(), segments=members({"old": ["p1"]}))
    store.write_run("unit", "2024-02-01", scores({"p1": 0.2, "p2": 0.9}), run(), segments=members({"a": ["p1"]}))
    store.write_run("other", "2024-02-01", scores({"p1": 0.4}), run(), segments=members({"a": ["p1"]}))
    store.write_run("unit", "2024-02-01", scores({"p2": 0.9, "p3": 0.1}), run(), segments=members({"b": ["p3"]}))
    assert membership(store) == [("unit", "b", "2024-02-01", "p3"), ("unit", "old", "2024-01-01", "p1")]
    assert membership(store, "other") == [("other", "a", "2024-02-01", "p1")]
    # a write without membership leaves none for its date: the old one described the replaced scores
    store.write_run("unit", "2024-02-01", scores({"p2": 0.9}), run())
    assert membership(store) == [("unit", "old", "2024-01-01", "p1")]
    assert store.segment_names("unit") == []


def test_segment_reads_default_to_the_newest_published_run(store):
    store.write_run(
        "unit", "2024-01-01", scores({"p1": 0.2, "p2": 0.4}, "v1"), run("v1"), segments=members({"s": ["p1"]})
    )
    store.write_run("unit", "2023-12-01", scores({"p9": 0.2}, "v0"), run("v0"), segments=members({"s": ["p9"]}))
    store.record_attempt("unit", "2024-02-01", poor())  # newer attempts that published nothing
    store.record_attempt("unit", "2024-03-01", {"status": "failed", "step": "train", "reason": "MemoryError"})
    assert store.read_segment("unit", "s")["profile_id"].tolist() == ["p1"]
    assert store.read_segment("unit", "s")["as_of"].tolist() == ["2024-01-01"]
    assert store.read_segment("unit", "s", as_of="2024-02-01").empty
    assert store.read_segment("unit", "s", as_of=dt.date(2023, 12, 1))["profile_id"].tolist() == ["p9"]
    assert store.segment_names("unit") == ["s"]
    assert store.segment_names("unit", "2024-02-01") == []
    assert store.segment_names("unit", "2024-03-01") == []
    assert store.read_segment("unit", "s", as_of="yesterday").empty
    assert store.read_segment("nobody", "s").empty
    assert store.segment_names("nobody") == []


def test_segment_names_list_the_buckets_first(store):
    chosen = members({"zeta": ["p1"], "high": ["p1"], "alpha": ["p1"], "low": ["p1"]})
    store.write_run("unit", "2024-02-01", scores({"p1": 0.2}), run(), segments=chosen)
    assert store.segment_names("unit", "2024-02-01") == ["low", "high", "alpha", "zeta"]


@pytest.mark.parametrize(
    ("chosen", "error"),
    [
        (members({"a": ["p1", "p9"]}), r"segments for unit as of 2024-02-01: 1 members have no score in this run"),
        (members({"a": ["p1", "p1"]}), r"a profile listed twice in one segment \(e\.g\. \[\('a', 'p1'\)\]\)"),
        (pd.DataFrame({"segment": ["a", None], "profile_id": ["p1", "p2"]}), r"missing values in \['segment'\]"),
        (pd.DataFrame({"segment": ["", "a"], "profile_id": ["p1", "p2"]}), "a segment without a name"),
        (pd.DataFrame({"name": ["a"], "profile_id": ["p1"]}), r"missing columns \['segment'\]"),
    ],
)
def test_bad_membership_writes_nothing(store, chosen, error):
    store.write_run(
        "unit", "2024-02-01", scores({"p1": 0.2, "p2": 0.9}, "v1"), run("v1"), segments=members({"a": ["p2"]})
    )
    before = (store.read_scores("unit"), membership(store), store.read_runs("unit"))
    with pytest.raises(ValueError, match=error):
        store.write_run("unit", "2024-02-01", scores({"p1": 0.3, "p2": 0.8}, "v2"), run("v2"), segments=chosen)
    pd.testing.assert_frame_equal(before[0], store.read_scores("unit"))
    assert before[1] == membership(store)
    pd.testing.assert_frame_equal(before[2], store.read_runs("unit"))


def test_membership_shares_the_transaction_of_the_scores(store):
    # the run row, the last statement, is refused after history and membership were replaced: all is rolled back
    store.write_run(
        "unit", "2024-02-01", scores({"p1": 0.2, "p2": 0.9}, "v1"), run("v1"), segments=members({"a": ["p2"]})
    )
    before = membership(store)
    with pytest.raises(Exception, match='NOT NULL constraint failed|null value in column "model_version"'):
        store.write_run(
            "unit",
            "2024-02-01",
            scores({"p3": 0.5}, "v2"),
            {**run("v2"), "model_version": None},
            segments=members({"b": ["p3"]}),
        )
    assert membership(store) == before
    assert store.read_segment("unit", "a")["profile_id"].tolist() == ["p2"]
    assert store.count_rows("unit") == counts(2, 2, 1)


def test_hostile_segment_names_and_ids_are_stored_verbatim(store):
    names = ["it's; DROP TABLE customer_ai_segments; --", 'quo"ted {schema} %s', "ünïcødé 🚀", "tab\tnew\nline"]
    written = scores(dict.fromkeys(HOSTILE_PROFILES, 0.5))
    store.write_run("unit", "2024-02-01", written, run(), segments=members(dict.fromkeys(names, HOSTILE_PROFILES)))
    assert store.segment_names("unit") == sorted(names)
    for name in names:
        assert store.read_segment("unit", name)["profile_id"].tolist() == sorted(HOSTILE_PROFILES)
    assert store.read_segment("unit", "'; --").empty
    assert len(membership(store)) == len(names) * len(HOSTILE_PROFILES)


def test_empty_segment_reads_have_the_dtypes_of_score_reads(store):
    store.write_run("unit", "2024-02-01", scores({"p1": 0.2}), run(), segments=members({"a": ["p1"]}))
    full, empty = store.read_segment("unit", "a"), store.read_segment("unit", "b")
    assert empty.empty
    assert empty.dtypes.to_dict() == full.dtypes.to_dict() == store.read_scores("unit").dtypes.to_dict()
    assert store.read_segment("nobody", "a").dtypes.to_dict() == full.dtypes.to_dict()


# --- a run written in parts ----------------------------------------------------------------------------------


def run_parts() -> list[tuple[pd.DataFrame, pd.DataFrame | None]]:
    """Parts of one run: members in the first and the last, none in the second, and a part of no rows."""
    return [
        (scores({"p1": 0.2, "p2": 0.9, "p3": 0.5}), members({"high": ["p2"], "low": ["p3", "p1"]})),
        (scores({"p4": 0.7, "p5": 0.1}), None),
        (scores({}), members({})),
        (scores({"p6": 0.9}), members({"high": ["p6"], "top": ["p6"]})),
    ]


def run_reads(store, instance: str, as_of: str = "2024-02-01") -> list[pd.DataFrame]:
    """What readers see of a run, without the columns that differ between two instances or two writes."""
    frames = [store.read_scores(instance), store.read_scores(instance, as_of=as_of)]
    frames += [store.read_segment(instance, name, as_of) for name in store.segment_names(instance, as_of)]
    frames = [frame.drop(columns="instance") for frame in frames]
    frames.append(store.read_runs(instance).drop(columns=["instance", "written_at"]))
    frames.append(store.read_attempts(instance).drop(columns=["id", "instance", "recorded_at"]))
    frames.append(store.read_outcomes(instance).drop(columns=["instance", "tracked_at"]))
    return frames


def test_a_run_written_in_parts_reads_exactly_as_the_same_run_written_whole(store):
    parts = run_parts()
    whole = pd.concat([frame for frame, _ in parts if len(frame)], ignore_index=True)
    chosen = pd.concat([m for _, m in parts if m is not None and len(m)], ignore_index=True)
    tracked = {"2024-01-01": outcomes(("all", "all", 4, 0.45, 0.5))}
    publish = published("v1", "cli-00000000aa")
    store.write_run("whole", "2024-02-01", whole, publish, segments=chosen, outcomes=tracked)
    store.write_run_parts("parted", "2024-02-01", (part for part in parts), publish, outcomes=tracked)

    assert_frames_equal(run_reads(store, "whole"), run_reads(store, "parted"))
    assert store.read_scores("parted")["profile_id"].tolist() == ["p2", "p6", "p4", "p3", "p1", "p5"]
    factor = [{**FACTOR, "contribution": 0.5}]  # the first profile of each part has one
    assert store.read_scores("parted")["factors"].tolist() == [[], factor, factor, [], factor, []]
    assert store.segment_names("parted") == ["low", "high", "top"]
    assert store.read_segment("parted", "high")["profile_id"].tolist() == ["p2", "p6"]
    assert store.read_segment("parted", "low")["profile_id"].tolist() == ["p3", "p1"]
    assert store.read_runs("parted")["scored_profiles"].tolist() == [6]
    assert store.read_attempts("parted")[["status", "run_id"]].values.tolist() == [["ok", "cli-00000000aa"]]
    assert store.read_outcomes("parted")[["as_of", "profiles"]].values.tolist() == [["2024-01-01", 4]]
    assert store.count_rows("parted") == counts(6, 6, 1)
    assert [row[1:] for row in membership(store, "parted")] == [
        ("high", "2024-02-01", "p2"),
        ("high", "2024-02-01", "p6"),
        ("low", "2024-02-01", "p1"),
        ("low", "2024-02-01", "p3"),
        ("top", "2024-02-01", "p6"),
    ]
    # published again after its commit (a retried task): the same rows, no second attempt row
    store.write_run_parts("parted", "2024-02-01", iter(run_parts()), publish, outcomes=tracked)
    assert_frames_equal(run_reads(store, "whole"), run_reads(store, "parted"))


def test_a_run_of_no_parts_is_a_run_that_scored_nobody(store):
    store.write_run("unit", "2024-02-01", scores({"p1": 0.2}), run(), segments=members({"a": ["p1"]}))
    store.write_run("other", "2024-02-01", scores({"p1": 0.2}), run(), segments=members({"a": ["p1"]}))
    store.write_run_parts("unit", "2024-02-01", iter(()), published("v2", "cli-00000000bb"))
    store.write_run("other", "2024-02-01", scores({}), published("v2", "cli-00000000bb"))

    assert_frames_equal(run_reads(store, "other"), run_reads(store, "unit"))
    assert store.read_scores("unit").empty
    assert store.read_scores("unit", as_of="2024-02-01").empty
    assert membership(store) == []
    assert store.read_runs("unit")["scored_profiles"].tolist() == [0]
    assert store.count_rows("unit") == counts(0, 0, 1)


def _unscored_member(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    return frame, members({"high": ["p6", "p1"]})  # p1 is scored, but in the first part


def _missing_probability(frame: pd.DataFrame) -> tuple[pd.DataFrame, None]:
    return frame.assign(probability=[math.nan]), None


def _listed_twice(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    return frame, members({"top": ["p6", "p6"]})


def _nameless_segment(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    return frame, pd.DataFrame({"segment": [""], "profile_id": ["p6"]})


@pytest.mark.parametrize(
    ("spoil", "error"),
    [
        (
            _unscored_member,
            "segments for unit as of {as_of}, part 4: 1 members have no score in this part (e.g. ['p1'])",
        ),
        (_missing_probability, "scores for unit as of {as_of}, part 4: missing values in ['probability']"),
        (
            _listed_twice,
            "segments for unit as of {as_of}, part 4: a profile listed twice in one segment (e.g. [('top', 'p6')])",
        ),
        (_nameless_segment, "segments for unit as of {as_of}, part 4: a segment without a name"),
    ],
)
@pytest.mark.parametrize("as_of", ["2024-01-01", "2024-02-01"])
def test_a_bad_last_part_writes_nothing_and_keeps_the_previous_run(store, spoil, error, as_of):
    store.write_run(
        "unit",
        "2024-01-01",
        scores({"p1": 0.3, "p9": 0.8}, "v1"),
        published("v1", "cli-00000000aa"),
        segments=members({"high": ["p9"]}),
    )
    before = state(store)
    parts = run_parts()
    parts[-1] = spoil(parts[-1][0])
    with pytest.raises(ValueError, match=f"^{re.escape(error.format(as_of=as_of))}; nothing written$"):
        store.write_run_parts("unit", as_of, iter(parts), published("v2", "cli-00000000bb"))

    assert_same_state(before, state(store))
    assert store.read_scores("unit")["profile_id"].tolist() == ["p9", "p1"]
    assert store.count_rows("unit") == counts(2, 2, 1)
    # nothing left locked or half-done: the same parts, mended, go through
    store.write_run_parts("unit", as_of, iter(run_parts()), published("v2", "cli-00000000bb"))
    assert store.read_runs("unit")["scored_profiles"].tolist()[-1] == 6


@pytest.mark.parametrize("as_of", ["2024-01-01", "2024-02-01"])
def test_a_profile_scored_in_two_parts_writes_nothing(store, as_of):
    store.write_run(
        "unit",
        "2024-01-01",
        scores({"p1": 0.3, "p9": 0.8}, "v1"),
        published("v1", "cli-00000000aa"),
        segments=members({"high": ["p9"]}),
    )
    before = state(store)
    parts = [(scores({"p1": 0.2, "p2": 0.9}), members({"a": ["p2"]})), (scores({"p3": 0.1, "p2": 0.4}), None)]
    with pytest.raises(
        ValueError, match=f"^scores for unit as of {as_of}, part 2: " + SCORED_TWICE.format(profile="p2")
    ):
        store.write_run_parts("unit", as_of, iter(parts), published("v2", "cli-00000000bb"))

    assert_same_state(before, state(store))
    assert store.count_rows("unit") == counts(2, 2, 1)
    assert len(store.read_attempts("unit")) == 1


def test_parts_are_read_one_at_a_time_each_written_and_let_go_before_the_next(store, monkeypatch):
    writer = _SQLiteWriter if isinstance(store, SQLiteStore) else _PostgresWriter
    append_history = writer.append_history
    events: list[tuple[str, list[str]]] = []
    written: list[weakref.ref] = []

    def recorded(self, rows) -> None:  # noqa: ANN001 - a _Writer and its _ScoreColumns
        append_history(self, rows)
        events.append(("written", rows.profile_id.to_pylist()))
        written.append(weakref.ref(rows))

    monkeypatch.setattr(writer, "append_history", recorded)
    held: list[list[bool]] = []

    def parts() -> Iterator[tuple[pd.DataFrame, pd.DataFrame]]:
        given: list[weakref.ref] = []
        for ids in (["p1", "p2"], ["p3"], ["p4", "p5"]):
            gc.collect()
            held.append([ref() is not None for ref in given + written])  # what the store still holds
            events.append(("read", ids))
            frame, chosen = scores(dict.fromkeys(ids, 0.5)), members({"all": ids})
            given += [weakref.ref(frame), weakref.ref(chosen)]
            yield frame, chosen
            del frame, chosen

    store.write_run_parts("unit", "2024-02-01", parts(), published("v1", "cli-00000000aa"))

    assert events == [
        ("read", ["p1", "p2"]),
        ("written", ["p1", "p2"]),
        ("read", ["p3"]),
        ("written", ["p3"]),
        ("read", ["p4", "p5"]),
        ("written", ["p4", "p5"]),
    ]
    assert held == [[], [False] * 3, [False] * 6]  # frames and columns of the earlier parts, all let go
    assert store.read_segment("unit", "all")["profile_id"].tolist() == ["p1", "p2", "p3", "p4", "p5"]
    assert store.read_runs("unit")["scored_profiles"].tolist() == [5]


# --- outcomes ---------------------------------------------------------------------------------------------------

OUTCOME_COLUMNS = ["grouping", "group", "profiles", "predicted_rate", "realised_rate"]


def outcomes(*rows: tuple) -> pd.DataFrame:
    return pd.DataFrame(list(rows), columns=OUTCOME_COLUMNS)


FULL_OUTCOMES = outcomes(
    ("decile", "10", 1, 0.05, 0.0),
    ("decile", "2", 2, 0.6, 0.5),
    ("decile", "1", 1, 0.9, 1.0),
    ("bucket", "high", 2, 0.8, 1.0),
    ("bucket", "low", 2, 0.1, 0.0),
    ("bucket", "medium", 0, float("nan"), float("nan")),
    ("all", "all", 4, 0.45, 0.5),
)


def test_outcomes_round_trip_in_their_natural_order(store):
    store.write_outcomes("unit", "2024-01-01", FULL_OUTCOMES)
    read = store.read_outcomes("unit")
    assert read.columns.tolist() == [
        "instance",
        "as_of",
        "grouping",
        "group",
        "profiles",
        "predicted_rate",
        "realised_rate",
        "predicted_value",
        "realised_value",
        "tracked_at",
    ]
    assert read[["predicted_value", "realised_value"]].isna().all().all()  # outcomes of a run without a value
    assert list(zip(read["grouping"], read["group"], strict=True)) == [
        ("all", "all"),
        ("bucket", "low"),
        ("bucket", "medium"),
        ("bucket", "high"),
        ("decile", "1"),
        ("decile", "2"),
        ("decile", "10"),
    ]
    assert read["profiles"].tolist() == [4, 2, 0, 2, 1, 2, 1]
    assert read["predicted_rate"].tolist() == pytest.approx([0.45, 0.1, np.nan, 0.8, 0.9, 0.6, 0.05], nan_ok=True)
    assert read["realised_rate"].tolist() == pytest.approx([0.5, 0.0, np.nan, 1.0, 1.0, 0.5, 0.0], nan_ok=True)
    assert set(read["instance"]) == {"unit"}
    assert set(read["as_of"]) == {"2024-01-01"}
    assert read["tracked_at"].str.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ").all()
    assert read.dtypes.astype(str).to_dict() == {
        "instance": "str",
        "as_of": "str",
        "grouping": "str",
        "group": "str",
        "profiles": "int64",
        "predicted_rate": "float64",
        "realised_rate": "float64",
        "predicted_value": "float64",
        "realised_value": "float64",
        "tracked_at": "str",
    }
    assert store.read_outcomes("nobody").empty
    assert store.read_outcomes("nobody").dtypes.to_dict() == read.dtypes.to_dict()
    assert store.count_rows("unit") == counts(0, 0, 0)  # outcomes touch neither scores nor runs


def test_outcomes_of_a_valued_run_keep_each_groups_mean_values(store):
    valued = FULL_OUTCOMES.assign(predicted_value=np.nan, realised_value=np.nan)
    valued.loc[valued["grouping"] == "all", ["predicted_value", "realised_value"]] = [302.5, 280.0]
    store.write_outcomes("unit", "2024-01-01", valued)
    read = store.read_outcomes("unit")
    assert read[["predicted_value", "realised_value"]].iloc[0].tolist() == [302.5, 280.0]
    assert read[["predicted_value", "realised_value"]].iloc[1:].isna().all().all()
    for bad, message in ((-1.0, "is not an amount of at least 0"), ("lots", "is not a number")):
        wrong = valued.astype({"realised_value": object})
        wrong.loc[valued["grouping"] == "all", "realised_value"] = bad
        with pytest.raises(ValueError, match=f"^outcomes for unit as of 2024-01-02: realised_value .* {message}"):
            store.write_outcomes("unit", "2024-01-02", wrong)
    assert set(store.read_outcomes("unit")["as_of"]) == {"2024-01-01"}  # nothing written


def test_writing_outcomes_again_replaces_that_date_only(store):
    store.write_outcomes("unit", "2024-01-01", FULL_OUTCOMES)
    store.write_outcomes("unit", "2024-02-01", outcomes(("all", "all", 3, 0.2, 0.3)))
    store.write_outcomes("other", "2024-01-01", outcomes(("all", "all", 9, 0.2, 0.3)))
    store.write_outcomes("unit", dt.date(2024, 1, 1), outcomes(("all", "all", 5, 0.4, 0.2), ("decile", 3, 5, 0.4, 0.2)))
    read = store.read_outcomes("unit")
    assert list(zip(read["as_of"], read["grouping"], read["group"], read["profiles"], strict=True)) == [
        ("2024-01-01", "all", "all", 5),
        ("2024-01-01", "decile", "3", 5),  # a decile given as a number is stored as text
        ("2024-02-01", "all", "all", 3),
    ]
    assert store.read_outcomes("other")["profiles"].tolist() == [9]


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        (outcomes(("deciles", "1", 1, 0.1, 0.1)), "grouping 'deciles' is not one of all, bucket, decile"),
        (outcomes(("decile", "11", 1, 0.1, 0.1)), "group '11' of grouping 'decile' is not one of 1, 2, 3"),
        (outcomes(("bucket", "top", 1, 0.1, 0.1)), "group 'top' of grouping 'bucket' is not one of low, medium, high"),
        (
            outcomes(("all", "all", 1, 0.1, 0.1), ("all", "all", 2, 0.1, 0.1)),
            r"a group listed twice \[\('all', 'all'\)\]",
        ),
        (outcomes(("all", "all", -1, 0.1, 0.1)), "profiles -1 of group 'all' is negative"),
        (outcomes(("all", "all", 1.5, 0.1, 0.1)), "profiles 1.5 of group 'all' is not a whole number"),
        (outcomes(("all", "all", 1, 1.5, 0.1)), "predicted_rate 1.5 is not a rate from 0 to 1"),
        (outcomes(("all", "all", 1, 0.1, "high")), "realised_rate 'high' is not a number"),
        (outcomes(("all", "all", 1, 0.1, float("inf"))), "realised_rate inf is not a rate from 0 to 1"),
        (pd.DataFrame({"grouping": ["all"], "group": ["all"]}), r"missing columns \['profiles', 'predicted_rate'"),
    ],
)
def test_bad_outcomes_write_nothing(store, bad, error):
    store.write_outcomes("unit", "2024-01-01", outcomes(("all", "all", 4, 0.5, 0.5)))
    before = store.read_outcomes("unit")
    with pytest.raises(ValueError, match=f"outcomes for unit as of 2024-01-01: {error}"):
        store.write_outcomes("unit", "2024-01-01", bad)
    pd.testing.assert_frame_equal(before, store.read_outcomes("unit"))
    with pytest.raises(ValueError, match="is not a date"):
        store.write_outcomes("unit", "01/01/2024", outcomes(("all", "all", 4, 0.5, 0.5)))


def test_hostile_instance_names_in_outcomes_are_stored_verbatim(store):
    for instance in HOSTILE_INSTANCES:
        store.write_outcomes(instance, "2024-01-01", outcomes(("all", "all", 1, 0.5, 1.0)))
    for instance in HOSTILE_INSTANCES:
        assert store.read_outcomes(instance)["instance"].tolist() == [instance]


# --- publishing: the run folder's name, its ok attempt and the outcomes it tracked, in one transaction ----------


def test_run_id_round_trips_through_read_runs_and_latest_run(store):
    store.write_run("unit", "2024-01-01", scores({"p1": 0.2}, "v1"), published("v1", "af-0123456789"))
    store.write_run("unit", "2024-02-01", scores({"p1": 0.3}, "v2"), published("v2", "cli-abcdef0123.2"))
    store.write_run("other", "2024-02-01", scores({"p1": 0.3}, "v2"), run("v2"))
    assert store.read_runs("unit")["run_id"].tolist() == ["af-0123456789", "cli-abcdef0123.2"]
    assert store.latest_run("unit")["run_id"] == "cli-abcdef0123.2"
    assert store.latest_run("unit", status=None)["run_id"] == "cli-abcdef0123.2"
    assert store.latest_run("other")["run_id"] == ""
    # a re-run of a date names its own folder; a write without a name points at the date's folder ("")
    store.write_run("unit", "2024-01-01", scores({"p1": 0.4}, "v1"), published("v1", "af-9876543210"))
    store.write_run("unit", "2024-02-01", scores({"p1": 0.5}, "v2"), run("v2"))
    assert store.read_runs("unit")["run_id"].tolist() == ["af-9876543210", ""]
    assert store.latest_run("unit")["run_id"] == ""
    assert store.count_rows("unit") == counts(1, 2, 2)


def test_write_run_appends_one_ok_attempt_per_run_folder(store):
    store.record_attempt("unit", "2024-02-01", started("cli-00000000aa"))
    first = published("v1", "cli-00000000aa", roc_auc=0.8)
    store.write_run("unit", "2024-02-01", scores({"p1": 0.2}, "v1"), first)
    store.write_run("unit", "2024-02-01", scores({"p1": 0.2}, "v1"), first)  # a publish retried after its commit
    assert attempt_rows(store.read_attempts("unit")) == [
        (1, "unit", "2024-02-01", "cli-00000000aa", "validate_events", 1, "started", "started", "", "{}", ""),
        (
            2,
            "unit",
            "2024-02-01",
            "cli-00000000aa",
            "publish",
            1,
            "ok",
            "fine",
            "v1",
            '{"roc_auc": 0.8}',
            "cli-00000000aa",
        ),
    ]
    # the attempt sealed again (a step re-run after its seal) publishes a folder of its own: one more row
    store.write_run("unit", "2024-02-01", scores({"p1": 0.3}, "v1"), published("v1", "cli-00000000aa.2"))
    store.write_run("unit", "2024-02-01", scores({"p1": 0.4}, "v2"), published("v2", "af-00000000a1"))
    # the first folder committed again after another run published the date: it is the date's newest publish
    # now, so it gets a row again (the newest ok row always names the folder the run row names)
    store.write_run("unit", "2024-02-01", scores({"p1": 0.2}, "v1"), first)
    store.write_run("unit", "2024-02-01", scores({"p1": 0.2}, "v1"), first)  # and repeated: no row
    # the same name on another date is another publish
    store.write_run("unit", "2024-03-01", scores({"p1": 0.5}, "v3"), published("v3", "cli-00000000aa"))
    read = store.read_attempts("unit")
    assert list(zip(read["id"], read["as_of"], read["status"], read["attempt"], read["run_id"], strict=True)) == [
        (1, "2024-02-01", "started", "cli-00000000aa", ""),
        (2, "2024-02-01", "ok", "cli-00000000aa", "cli-00000000aa"),
        (3, "2024-02-01", "ok", "cli-00000000aa", "cli-00000000aa.2"),
        (4, "2024-02-01", "ok", "af-00000000a1", "af-00000000a1"),
        (5, "2024-02-01", "ok", "cli-00000000aa", "cli-00000000aa"),
        (6, "2024-03-01", "ok", "cli-00000000aa", "cli-00000000aa"),
    ]
    assert set(read.loc[read["status"] == "ok", "step"]) == {"publish"}
    assert store.read_runs("unit")["run_id"].tolist() == ["cli-00000000aa", "cli-00000000aa"]
    assert store.read_runs("unit")["model_version"].tolist() == ["v1", "v3"]
    assert store.count_rows("unit") == counts(1, 2, 2)  # only the attempts grew
    # a run without a folder's name has no name to recognise: every write is a publish of its own
    store.write_run("other", "2024-02-01", scores({"p1": 0.2}), run())
    store.write_run("other", "2024-02-01", scores({"p1": 0.2}), run())
    other = store.read_attempts("other")
    assert list(zip(other["status"], other["attempt"], other["run_id"], strict=True)) == [("ok", "", "")] * 2


def test_write_run_writes_the_outcomes_it_tracked(store):
    store.write_outcomes("unit", "2023-11-01", outcomes(("all", "all", 7, 0.3, 0.1)))
    store.write_outcomes("unit", "2024-01-01", FULL_OUTCOMES)  # replaced by the run's rows of that date
    store.write_outcomes("other", "2024-01-01", outcomes(("all", "all", 9, 0.3, 0.1)))
    untouched = store.read_outcomes("unit").iloc[:1]
    other = store.read_outcomes("other")
    tracked = {
        "2024-01-01": outcomes(("all", "all", 2, 0.45, 0.5)).assign(tracked_at="2024-02-01T06:30:00Z"),
        dt.date(2023, 12, 1): outcomes(("bucket", "low", 3, 0.1, 0.0), ("all", "all", 3, 0.1, 0.0)),
    }
    first = now_text()
    store.write_run("unit", "2024-02-01", scores({"p1": 0.2}), published("v2", "cli-00000000aa"), outcomes=tracked)
    last = now_text()

    read = store.read_outcomes("unit")
    columns = ["as_of", "grouping", "group", "profiles", "predicted_rate", "realised_rate"]
    assert [tuple(r) for r in read[columns].itertuples(index=False)] == [
        ("2023-11-01", "all", "all", 7, 0.3, 0.1),
        ("2023-12-01", "all", "all", 3, 0.1, 0.0),
        ("2023-12-01", "bucket", "low", 3, 0.1, 0.0),
        ("2024-01-01", "all", "all", 2, 0.45, 0.5),
    ]
    pd.testing.assert_frame_equal(read.iloc[:1], untouched)  # another date's rows, tracked_at included
    assert read["tracked_at"].iloc[3] == "2024-02-01T06:30:00Z"  # as given
    assert first <= read["tracked_at"].iloc[1] == read["tracked_at"].iloc[2] <= last  # the time of the write
    pd.testing.assert_frame_equal(store.read_outcomes("other"), other)
    assert store.count_rows("unit") == counts(1, 1, 1)


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("2024-02-01T06:30:05Z", "2024-02-01T06:30:05Z"),
        ("2024-02-01 06:30:05", "2024-02-01T06:30:05Z"),  # no time zone: UTC
        (pd.Timestamp("2024-02-01 07:30:05+01:00"), "2024-02-01T06:30:05Z"),
        (dt.datetime(2024, 2, 1, 1, 30, 5, tzinfo=dt.timezone(dt.timedelta(hours=-5))), "2024-02-01T06:30:05Z"),
        (pd.Timestamp("2024-02-01 06:30:05.999"), "2024-02-01T06:30:05Z"),  # whole seconds, as tracked_at is read
        ("1999-12-31T23:59:59Z", "1999-12-31T23:59:59Z"),
    ],
)
def test_tracked_at_given_in_outcomes_is_kept_exactly(store, given, stored):
    frame = outcomes(("all", "all", 2, 0.45, 0.5), ("bucket", "low", 2, 0.45, 0.5))
    frame["tracked_at"] = pd.Series([given, None], dtype=object)  # the second row: the time of the write
    first = now_text()
    store.write_run("unit", "2024-02-01", scores({"p1": 0.2}), run(), outcomes={"2024-01-01": frame})
    store.write_outcomes("unit", "2023-12-01", frame)
    last = now_text()
    read = store.read_outcomes("unit")
    assert read["as_of"].tolist() == ["2023-12-01", "2023-12-01", "2024-01-01", "2024-01-01"]
    assert read["tracked_at"].iloc[[0, 2]].tolist() == [stored, stored]
    assert all(first <= t <= last for t in read["tracked_at"].iloc[[1, 3]])


@pytest.mark.parametrize("missing", [pd.NaT, "", None, math.nan])
def test_a_missing_tracked_at_is_the_time_of_the_write(store, missing):
    frame = outcomes(("all", "all", 2, 0.45, 0.5)).assign(tracked_at=pd.Series([missing], dtype=object))
    first = now_text()
    store.write_run("unit", "2024-02-01", scores({"p1": 0.2}), run(), outcomes={"2024-01-01": frame})
    assert first <= store.read_outcomes("unit")["tracked_at"].iloc[0] <= now_text()


def test_metrics_json_cannot_hold_are_null_in_both_stores(store):
    # before: SQLite kept NaN (read back as nan) where PostgreSQL kept null (None)
    store.record_attempt("unit", "2024-02-01", {"status": "poor", "metrics": {"roc_auc": math.nan, "n": 3}})
    store.write_run("unit", "2024-02-01", scores({"p1": 0.2}), {**run(), "metrics": {"roc_auc": math.inf}})
    assert store.read_attempts("unit")["metrics"].tolist() == ['{"n": 3, "roc_auc": null}', '{"roc_auc": null}']
    assert store.latest_attempt("unit")["metrics"] == {"roc_auc": None}
    assert store.latest_run("unit")["metrics"] == {"roc_auc": None}
    assert store.read_runs("unit")["metrics"].tolist() == ['{"roc_auc": null}']


def test_a_tracked_at_that_is_not_a_time_is_refused(store):
    bad = outcomes(("all", "all", 2, 0.45, 0.5)).assign(tracked_at="not a time")
    with pytest.raises(ValueError, match="outcomes for unit as of 2024-01-01: tracked_at 'not a time' is not a time"):
        store.write_run("unit", "2024-02-01", scores({"p1": 0.2}), run(), outcomes={"2024-01-01": bad})
    assert store.read_outcomes("unit").empty
    assert store.count_rows("unit") == counts(0, 0, 0)
    assert store.read_attempts("unit").empty


def _member_without_score(publish: dict) -> dict:
    return {**publish, "segments": members({"a": ["p3", "p9"]})}


def _outcome_out_of_range(publish: dict) -> dict:
    return {**publish, "outcomes": {**publish["outcomes"], "2023-11-01": outcomes(("all", "all", 1, 1.5, 0.1))}}


def _run_row_refused(publish: dict) -> dict:
    return {**publish, "run": {**publish["run"], "model_version": None}}


def _not_ok(publish: dict) -> dict:
    return {**publish, "run": {**publish["run"], "status": "failed"}}


@pytest.mark.parametrize(
    ("spoil", "error"),
    [
        (_member_without_score, r"segments for unit as of 2024-02-01: 1 members have no score in this run"),
        (_outcome_out_of_range, r"outcomes for unit as of 2023-11-01: predicted_rate 1\.5 is not a rate from 0 to 1"),
        (_not_ok, "only an 'ok' run is published with write_run"),
        # refused by the database after history, membership, outcomes and current scores were replaced
        (_run_row_refused, 'NOT NULL constraint failed|null value in column "model_version"'),
    ],
)
def test_a_failed_publish_leaves_outcomes_history_runs_and_attempts_untouched(store, spoil, error):
    tracked_before = outcomes(("all", "all", 4, 0.5, 0.5)).assign(tracked_at="2024-01-01T00:00:00Z")
    store.write_run(
        "unit",
        "2024-01-01",
        scores({"p1": 0.2, "p2": 0.9}, "v1"),
        published("v1", "cli-00000000aa"),
        segments=members({"a": ["p1"]}),
        outcomes={"2023-12-01": tracked_before},
    )
    store.record_attempt("unit", "2024-02-01", started("cli-00000000bb"))
    before = state(store)
    publish = {
        "run": published("v2", "cli-00000000bb"),
        "segments": members({"a": ["p3"]}),
        "outcomes": {"2023-12-01": outcomes(("all", "all", 9, 0.1, 0.2)), "2024-01-01": FULL_OUTCOMES},
    }
    spoiled = spoil(publish)
    with pytest.raises(Exception, match=error):
        store.write_run(
            "unit",
            "2024-02-01",
            scores({"p3": 0.4, "p4": 0.6}, "v2"),
            spoiled["run"],
            segments=spoiled["segments"],
            outcomes=spoiled["outcomes"],
        )
    assert_same_state(before, state(store))
    assert store.count_rows("unit") == counts(2, 2, 1)
    assert store.read_outcomes("unit")["tracked_at"].tolist() == ["2024-01-01T00:00:00Z"]
    # the same publish without the fault goes through, whole (nothing was left locked or half-written)
    store.write_run(
        "unit",
        "2024-02-01",
        scores({"p3": 0.4, "p4": 0.6}, "v2"),
        publish["run"],
        segments=publish["segments"],
        outcomes=publish["outcomes"],
    )
    assert store.read_outcomes("unit")["as_of"].value_counts().to_dict() == {"2023-12-01": 1, "2024-01-01": 7}
    assert store.read_outcomes("unit")["profiles"].iloc[0] == 9
    assert store.latest_run("unit")["run_id"] == "cli-00000000bb"
    assert store.read_attempts("unit")["status"].tolist() == ["ok", "started", "ok"]
    assert membership(store) == [("unit", "a", "2024-01-01", "p1"), ("unit", "a", "2024-02-01", "p3")]
    assert store.count_rows("unit") == counts(2, 4, 2)


# --- factors: stored exactly, given as lists or as the JSON text of scores.parquet --------------------------------

HOSTILE_FACTORS = [
    [],
    [
        {
            "feature": "tab\there",
            "description": 'a "quote", a \\ backslash,\na newline and \\N',
            "value": float("nan"),
            "contribution": -0.25,
            "importance": "high",
            "effect": "lowers the chance a lot",
        }
    ],
    [
        {
            "feature": "ünïcødé 🚀 客户",
            "description": "NaN and Infinity as words",
            "value": "x'); --",
            "contribution": 1e-300,
        },
        {"feature": "big", "description": "", "value": 12345678901234567890, "contribution": float("-inf")},
    ],
    [{"feature": "f", "description": "plain", "value": 0.1 + 0.2, "contribution": 2.0}],
]


def finite(value: object) -> object:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def hostile_run() -> pd.DataFrame:
    ids = ["", "tab\tid", "new\nline", "back\\slash", '"quoted",', "ünï 🚀", "\\N", "\\."]
    written = scores(dict(zip(ids, (0.1 + 0.2, 1e-300, 1 / 3, 0.5, 0.5, 0.999999999999, 0.0, 1.0), strict=True)))
    written["bucket"] = ['lo"w', "mé\tdium", "h\nigh", "\\", "", "🚀", "low", "low"]
    written["factors"] = [HOSTILE_FACTORS[i % len(HOSTILE_FACTORS)] for i in range(len(ids))]
    return written


def stored_factor_texts(store, as_of: str, instance: str = "unit") -> dict[str, str]:
    """Return the factors of each profile's history row as the database holds them (PostgreSQL: jsonb as text)."""
    if isinstance(store, SQLiteStore):
        with sqlite3.connect(store.path) as connection:
            rows = connection.execute(
                "SELECT profile_id, factors FROM customer_ai_score_history WHERE instance = ? AND as_of = ?",
                (instance, as_of),
            ).fetchall()
    else:
        table = sql.Identifier(store.schema, "customer_ai_score_history")
        with admin() as connection, connection.cursor() as cursor:
            cursor.execute(
                sql.SQL("SELECT profile_id, factors::text FROM {} WHERE instance = 'unit' AND as_of = %s").format(
                    table
                ),
                (as_of,),
            )
            rows = cursor.fetchall()
    return dict(rows)


def test_hostile_factors_and_values_are_stored_exactly_from_lists_or_parquet_text(store, tmp_path):
    from customer_ai.files import write_frame  # noqa: PLC0415

    written = hostile_run()
    store.write_run("unit", "2024-01-01", written, run(), segments=members({"a\tb": written["profile_id"].tolist()}))
    # the JSON text scores.parquet holds, as publish reads it: stored as it is, without decoding
    from_file = pd.read_parquet(write_frame(tmp_path / "scores.parquet", written))
    assert isinstance(from_file["factors"][0], str)
    store.write_run("unit", "2024-02-01", from_file, run(), segments=members({"a\tb": written["profile_id"].tolist()}))

    as_lists, as_text = stored_factor_texts(store, "2024-01-01"), stored_factor_texts(store, "2024-02-01")
    assert as_text == as_lists
    assert sorted(as_lists) == sorted(written["profile_id"])
    by_id = dict(zip(written["profile_id"], written["factors"], strict=True))
    if isinstance(store, SQLiteStore):  # the text json.dumps writes, NaN and infinities included
        assert as_lists == {p: json.dumps(f, ensure_ascii=False) for p, f in by_id.items()}
        expected_factors = by_id
    else:  # the same jsonb values as the JSON text of the lists (NaN and infinities as null)
        expected_factors = {p: [{k: finite(v) for k, v in f.items()} for f in fs] for p, fs in by_id.items()}
        assert expected_factors["new\nline"][1]["contribution"] is None
        with admin() as connection, connection.cursor() as cursor:
            for profile, text in as_lists.items():
                reference = json.dumps(expected_factors[profile], ensure_ascii=False, allow_nan=False)
                cursor.execute("SELECT %s::jsonb = %s::jsonb", (text, reference))
                assert cursor.fetchone() == (True,), profile
    for as_of in ("2024-01-01", "2024-02-01"):
        frame = store.read_scores("unit", as_of=as_of).sort_values("profile_id").reset_index(drop=True)
        expected = written.sort_values("profile_id").reset_index(drop=True)
        for column in ("profile_id", "bucket", "model_version", "propensity"):
            assert frame[column].tolist() == expected[column].tolist()
        assert frame["probability"].to_numpy().tobytes() == expected["probability"].to_numpy().tobytes()
        assert frame["score"].tolist() == expected["score"].tolist()
        assert frame["percentile"].tolist() == expected["percentile"].tolist()
        read = [json.dumps(f, ensure_ascii=False) for f in frame["factors"]]
        assert read == [json.dumps(expected_factors[p], ensure_ascii=False) for p in frame["profile_id"]]
        assert store.read_segment("unit", "a\tb", as_of=as_of)["profile_id"].sort_values().tolist() == sorted(
            written["profile_id"]
        )
    assert store.read_scores("unit")["as_of"].tolist() == ["2024-02-01"] * len(written)


@pytest.mark.parametrize(
    ("rule", "chosen"),
    [
        ({"factor": "purchase_count_30d", "op": "gt", "value": 0}, ["p1"]),  # the factors are decoded for the rule
        ({"field": "score", "op": "gte", "value": 50}, ["p1", "p3"]),  # they are not
    ],
)
def test_publish_stores_the_factors_of_scores_parquet(store, tmp_path, rule, chosen):
    from customer_ai import artifacts, steps  # noqa: PLC0415
    from customer_ai.files import write_frame  # noqa: PLC0415

    from conftest import make_spec  # noqa: PLC0415

    spec = make_spec(segments=[{"name": "chosen", "where": [rule]}])
    written = scores({"p1": 0.7, "p2": 0.2, "p3": 0.55})
    written["factors"] = [
        [{**FACTOR, "contribution": 0.5}],
        [{**FACTOR, "value": float("nan"), "contribution": -0.1}],
        [],
    ]
    as_of = pd.Timestamp("2024-02-01", tz="UTC")
    attempt = "cli-00000000aa"
    folder = artifacts.staging_dir(tmp_path, spec.name, as_of, attempt)
    write_frame(folder / "scores.parquet", written)
    model = {
        "model_version": "v1",
        "as_of": "2024-01-01",
        "validation": {"metrics": {"roc_auc": 0.8}},
        "history": {},
        "quality": {"status": "ok", "reason": "fine", "min_auc": spec.training.min_auc},
    }
    artifacts.write_json(folder / "model.json", model)
    result = steps.publish(spec, as_of, tmp_path, store, attempt=attempt)
    sealed = artifacts.run_dir(tmp_path, spec.name, as_of, attempt)
    assert result == {
        "instance": spec.name,
        "as_of": "2024-02-01",
        "run_id": attempt,
        "model_version": "v1",
        "scored_profiles": 3,
        "buckets": {"low": 3, "medium": 0, "high": 0},
        "segments": {"low": 3, "medium": 0, "high": 0, "chosen": len(chosen)},
        "artifacts": str(sealed),
    }
    assert not folder.exists()
    assert store.read_segment(spec.name, "chosen")["profile_id"].tolist() == chosen
    latest = store.latest_run(spec.name)
    assert (latest["run_id"], latest["model_version"], latest["scored_profiles"], latest["metrics"]) == (
        attempt,
        "v1",
        3,
        # a folder scored before drift was measured, by a model trained across time
        {
            "roc_auc": 0.8,
            "drift": {"status": "unknown", "largest_psi": None},
            "single_period": False,
            "expected": {"expected": pytest.approx(0.7 + 0.2 + 0.55), "low": None, "high": None},  # no windows
            # a folder combined before bucket rules were kept: the instance's thresholds on the score, as then
            "bucket_rule": {"by": "score", "medium": 25.0, "high": 75.0, "chosen": "instance", "why": ""},
        },
    )
    assert latest["reason"] == (
        f"validation ROC AUC 0.800 meets the quality gate of {spec.training.min_auc:g}; model trained as of 2024-01-01"
    )
    # the same stored factors as a write of the lists themselves
    store.write_run("reference", "2024-02-01", written, run())
    assert stored_factor_texts(store, "2024-02-01", spec.name) == stored_factor_texts(store, "2024-02-01", "reference")
    assert store.read_scores(spec.name)["factors"].tolist()[0] == [{**FACTOR, "contribution": 0.5}]
    # a publish retried after its commit commits the sealed folder again: the same rows, no second attempt row
    before = [store.read_scores(spec.name), membership(store, spec.name), store.read_attempts(spec.name)]
    assert steps.publish(spec, as_of, tmp_path, store, attempt=attempt) == result
    assert_same_state(
        before, [store.read_scores(spec.name), membership(store, spec.name), store.read_attempts(spec.name)]
    )
    attempts = store.read_attempts(spec.name)
    assert list(zip(attempts["attempt"], attempts["step"], attempts["status"], attempts["run_id"], strict=True)) == [
        (attempt, "publish", "ok", attempt)
    ]
    assert store.count_rows(spec.name) == counts(3, 3, 1)


# --- what a goal predicts beside the probability: expected value, days to the next event and its date --------------

PREDICTED_COLUMNS = ("expected_value", "days_to_next", "next_by")


def predictions(frame: pd.DataFrame) -> list[tuple]:
    """The profile id and the three optional columns of score rows, in their order, None where missing."""
    columns = ["profile_id", *PREDICTED_COLUMNS]
    shown = frame[columns].astype(object).where(frame[columns].notna(), None)
    return [tuple(row) for row in shown.itertuples(index=False)]


def stored_predictions(store, instance: str = "unit") -> list[tuple]:
    """The three optional columns of every history row of an instance, read from outside the store, sorted.

    A NULL is None; a NaN would stay NaN (PostgreSQL keeps it in a float column): missing values are NULL.
    """
    columns = "profile_id, as_of, expected_value, days_to_next, next_by"
    if isinstance(store, SQLiteStore):
        with closing(sqlite3.connect(store.path)) as connection:
            rows = connection.execute(
                f"SELECT {columns} FROM customer_ai_score_history WHERE instance = ?", (instance,)
            ).fetchall()
    else:
        table = sql.Identifier(store.schema, "customer_ai_score_history")
        with admin() as connection, connection.cursor() as cursor:
            cursor.execute(
                sql.SQL(
                    "SELECT profile_id, as_of::text, expected_value, days_to_next, next_by::text FROM {} "
                    "WHERE instance = %s"
                ).format(table),
                (instance,),
            )
            rows = cursor.fetchall()
    return sorted(rows)


def predicting(frame: pd.DataFrame, expected_value: list, days_to_next: list, next_by: list) -> pd.DataFrame:
    return frame.assign(expected_value=expected_value, days_to_next=days_to_next, next_by=next_by)


def test_expected_value_days_to_next_and_next_by_round_trip_with_missing_values(store):
    written = predicting(
        scores({"p1": 0.2, "p2": 0.9, "p3": 0.5, "p4": 0.1}),
        expected_value=[12.5, 0.0, math.nan, 1e-300],
        days_to_next=[3.25, math.nan, 0.0, 400.0],
        next_by=["2024-02-04", None, "2024-02-01", "2025-03-06"],
    )
    store.write_run("unit", "2024-02-01", written, run(), segments=members({"a": ["p1", "p2", "p3", "p4"]}))

    expected = [
        ("p2", 0.0, None, None),
        ("p3", None, 0.0, "2024-02-01"),
        ("p1", 12.5, 3.25, "2024-02-04"),
        ("p4", 1e-300, 400.0, "2025-03-06"),
    ]
    current, history, segment = (
        store.read_scores("unit"),
        store.read_scores("unit", as_of="2024-02-01"),
        store.read_segment("unit", "a"),
    )
    for read in (current, history, segment):
        assert predictions(read) == expected
    pd.testing.assert_frame_equal(current, history)
    pd.testing.assert_frame_equal(current, segment)
    assert predictions(store.read_scores("unit", profile_id="p3", limit=1)) == [("p3", None, 0.0, "2024-02-01")]
    assert stored_predictions(store) == [
        ("p1", "2024-02-01", 12.5, 3.25, "2024-02-04"),
        ("p2", "2024-02-01", 0.0, None, None),  # NaN and None are written as NULL
        ("p3", "2024-02-01", None, 0.0, "2024-02-01"),
        ("p4", "2024-02-01", 1e-300, 400.0, "2025-03-06"),
    ]
    batches = list(store.score_batches("unit", "2024-02-01", ["profile_id", *PREDICTED_COLUMNS], rows=3))
    assert [len(b) for b in batches] == [3, 1]
    assert all(b.dtypes.to_dict() == current[b.columns].dtypes.to_dict() for b in batches)
    assert sorted(predictions(pd.concat(batches, ignore_index=True))) == sorted(expected)
    (dates,) = store.score_batches("unit", "2024-02-01", ["next_by"])
    assert sorted(dates["next_by"], key=str) == ["2024-02-01", "2024-02-04", "2025-03-06", None]


def test_scores_without_the_optional_columns_read_them_as_missing(store):
    store.write_run("unit", "2024-01-01", predicting(scores({"p1": 0.2}), [1.0], [2.0], ["2024-01-03"]), run())
    store.write_run("unit", "2024-02-01", scores({"p1": 0.3, "p2": 0.9}), run())  # none of the three
    store.write_run("other", "2024-02-01", scores({"p1": 0.4}).assign(days_to_next=[5.0]), run())  # one of them

    assert_predicted_nothing(store.read_scores("unit"))
    assert predictions(store.read_scores("unit", as_of="2024-01-01")) == [("p1", 1.0, 2.0, "2024-01-03")]
    assert predictions(store.read_scores("other")) == [("p1", None, 5.0, None)]
    assert store.read_scores("unit").dtypes.to_dict() == store.read_scores("other").dtypes.to_dict()
    (batch,) = store.score_batches("unit", "2024-02-01", list(PREDICTED_COLUMNS))
    assert batch.dtypes.astype(str).tolist() == ["float64", "float64", "object"]
    assert batch["next_by"].tolist() == [None, None]
    assert stored_predictions(store) == [
        ("p1", "2024-01-01", 1.0, 2.0, "2024-01-03"),
        ("p1", "2024-02-01", None, None, None),
        ("p2", "2024-02-01", None, None, None),
    ]


@pytest.mark.parametrize(
    ("expected_value", "days_to_next", "next_by"),
    [
        ([12.5, None], [3, None], ["2024-02-04", None]),  # numbers and None: a column of objects
        (pd.array([12.5, None], "Float64"), pd.array([3, None], "Int64"), pd.array(["2024-02-04", None], "str")),
        ([12.5, math.nan], [3.0, math.nan], [dt.date(2024, 2, 4), None]),
        ([12.5, math.nan], [3.0, math.nan], pd.to_datetime(["2024-02-04 13:30", None])),  # the time is dropped
        (
            [12.5, math.nan],
            [3.0, math.nan],
            pd.to_datetime(["2024-02-04 23:30", None]).tz_localize("America/New_York"),  # the date where it is
        ),
        ([12.5, math.nan], [3.0, math.nan], pd.array([dt.date(2024, 2, 4), None], pd.ArrowDtype(pa.date32()))),
    ],
)
def test_the_optional_columns_are_taken_as_numbers_dates_and_text(store, expected_value, days_to_next, next_by):
    written = predicting(scores({"p1": 0.2, "p2": 0.1}), expected_value, days_to_next, next_by)
    store.write_run("unit", "2024-02-01", written, run())
    assert predictions(store.read_scores("unit")) == [("p1", 12.5, 3.0, "2024-02-04"), ("p2", None, None, None)]


def test_the_optional_columns_may_be_missing_in_every_row(store):
    written = predicting(scores({"p1": 0.2, "p2": 0.1}), [None, None], [math.nan, math.nan], [None, math.nan])
    store.write_run("unit", "2024-02-01", written, run())
    store.write_run("unit", "2024-03-01", predicting(scores({}), [], [], []), run())  # nobody scored
    assert predictions(store.read_scores("unit", as_of="2024-02-01")) == [
        ("p1", None, None, None),
        ("p2", None, None, None),
    ]
    assert store.read_scores("unit").empty
    assert store.count_rows("unit") == counts(0, 2, 2)


PREDICTION_REFUSED = [
    (
        {"expected_value": [-0.5, 1.0]},
        "expected_value is negative or infinite in 1 of 2 rows (e.g. [('p1', -0.5)])",
    ),
    (
        {"days_to_next": [math.inf, -math.inf]},
        "days_to_next is negative or infinite in 2 of 2 rows (e.g. [('p1', inf), ('p2', -inf)])",
    ),
    ({"expected_value": ["12", None]}, "expected_value is not a number (a column of str)"),
    ({"days_to_next": [True, False]}, "days_to_next is not a number (a column of bool)"),
    (
        {"next_by": ["2024-02-30", "2024-02-04"]},
        "next_by is not a date (YYYY-MM-DD) in 1 of 2 rows (e.g. [('p1', '2024-02-30')])",
    ),
    (
        {"next_by": ["2024-2-4", "soon"]},
        "next_by is not a date (YYYY-MM-DD) in 2 of 2 rows (e.g. [('p1', '2024-2-4'), ('p2', 'soon')])",
    ),
    ({"next_by": ["", None]}, "next_by is not a date (YYYY-MM-DD) in 1 of 2 rows (e.g. [('p1', '')])"),
    ({"next_by": [20240204, None]}, "next_by is not a date (e.g. [20240204.0]; give YYYY-MM-DD)"),
    (
        {"next_by": ["2024-02-04", dt.date(2024, 2, 4)]},
        "next_by is not a date (e.g. ['2024-02-04', datetime.date(2024, 2, 4)]; give YYYY-MM-DD)",
    ),
]


@pytest.mark.parametrize(("columns", "error"), PREDICTION_REFUSED)
def test_a_bad_expected_value_days_to_next_or_next_by_writes_nothing(store, columns, error):
    store.write_run("unit", "2024-01-01", scores({"p1": 0.3, "p9": 0.8}, "v1"), published("v1", "cli-00000000aa"))
    before = state(store)
    bad = scores({"p1": 0.2, "p2": 0.9}).assign(**columns)
    with pytest.raises(
        ValueError, match=f"^{re.escape(f'scores for unit as of 2024-02-01: {error}')}; nothing written$"
    ):
        store.write_run("unit", "2024-02-01", bad, run())
    parts = [(scores({"p5": 0.5}), None), (bad, None)]  # the first part is written before the second is read
    with pytest.raises(ValueError, match=f"^{re.escape(f'scores for unit as of 2024-02-01, part 2: {error}')}"):
        store.write_run_parts("unit", "2024-02-01", iter(parts), published("v2", "cli-00000000bb"))

    assert_same_state(before, state(store))
    assert store.count_rows("unit") == counts(2, 2, 1)


def test_both_stores_read_the_optional_columns_back_alike(tmp_path):
    written = predicting(
        scores({"p1": 0.2, "p2": 0.9, "p3": 0.5}),
        expected_value=[12.5, math.nan, 0.1 + 0.2],  # 0.30000000000000004, bit for bit
        days_to_next=[math.nan, 7.5, 1 / 3],
        next_by=[None, "2024-02-09", "2024-02-01"],
    )
    parts = [(written.iloc[:2], members({"a": ["p1", "p2"]})), (written.iloc[2:], members({"a": ["p3"]}))]
    with schemas("test_store_alike") as fresh:
        stores = [SQLiteStore(tmp_path / "store.sqlite"), PostgresStore(PG_DSN, fresh())]
        reads = []
        for store in stores:
            store.write_run("unit", "2024-01-01", scores({"p1": 0.4, "p4": 0.6}), run())
            store.write_run_parts("unit", "2024-02-01", iter(parts), run())
            batches = store.score_batches("unit", "2024-02-01", ["profile_id", "next_by", "days_to_next"], rows=2)
            reads.append(
                [
                    store.read_scores("unit"),
                    store.read_scores("unit", as_of="2024-01-01"),
                    store.read_segment("unit", "a"),
                    pd.concat(batches, ignore_index=True).sort_values("profile_id", ignore_index=True),
                ]
            )
        assert_frames_equal(*reads)
    assert predictions(reads[0][0]) == [
        ("p2", None, 7.5, "2024-02-09"),
        ("p3", 0.30000000000000004, 1 / 3, "2024-02-01"),
        ("p1", 12.5, None, None),
    ]
    assert_predicted_nothing(reads[0][1])


# --- migration of stores written before attempts were kept apart (issue 17) -------------------------------------

# the SQLite schema before PRAGMA user_version 1 (customer_ai/store/sqlite.py before issue 17)
OLD_SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS customer_ai_scores (
    instance TEXT NOT NULL, profile_id TEXT NOT NULL, as_of TEXT NOT NULL,
    probability REAL NOT NULL, score INTEGER NOT NULL, percentile INTEGER NOT NULL, bucket TEXT NOT NULL,
    propensity TEXT NOT NULL, model_version TEXT NOT NULL, factors TEXT NOT NULL,
    PRIMARY KEY (instance, profile_id)
);
CREATE TABLE IF NOT EXISTS customer_ai_score_history (
    instance TEXT NOT NULL, profile_id TEXT NOT NULL, as_of TEXT NOT NULL,
    probability REAL NOT NULL, score INTEGER NOT NULL, percentile INTEGER NOT NULL, bucket TEXT NOT NULL,
    propensity TEXT NOT NULL, model_version TEXT NOT NULL, factors TEXT NOT NULL,
    PRIMARY KEY (instance, profile_id, as_of)
);
CREATE TABLE IF NOT EXISTS customer_ai_runs (
    instance TEXT NOT NULL, as_of TEXT NOT NULL, model_version TEXT NOT NULL, status TEXT NOT NULL,
    reason TEXT NOT NULL, metrics TEXT NOT NULL, scored_profiles INTEGER NOT NULL,
    written_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    PRIMARY KEY (instance, as_of)
);
CREATE TABLE IF NOT EXISTS customer_ai_segments (
    instance TEXT NOT NULL, segment TEXT NOT NULL, as_of TEXT NOT NULL, profile_id TEXT NOT NULL,
    PRIMARY KEY (instance, as_of, segment, profile_id)
);
CREATE TABLE IF NOT EXISTS customer_ai_outcomes (
    instance TEXT NOT NULL, as_of TEXT NOT NULL, "grouping" TEXT NOT NULL, "group" TEXT NOT NULL,
    profiles INTEGER NOT NULL, predicted_rate REAL, realised_rate REAL,
    tracked_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    PRIMARY KEY (instance, as_of, "grouping", "group")
);
"""
OLD_POOR_REASON = (
    "model v3 is poor: validation ROC AUC 0.550 is below the quality gate of 0.65; the previous scores are kept"
)
REPAIRED_REASON = (
    "published before attempts were recorded; its run row had been replaced by a later attempt that published "
    "nothing (kept in the attempts)"
)
# what the old stores hold: the history (and current scores) of three published runs ...
OLD_HISTORY = {
    ("unit", "2024-01-01"): scores({"p1": 0.2, "p2": 0.9}, "v1"),
    ("unit", "2024-02-01"): scores({"p1": 0.3, "p2": 0.8, "p3": 0.5}, "v2"),
    ("other", "2024-02-01"): scores({"p9": 0.1}, "v1"),
}
OLD_CURRENT = {"unit": "2024-02-01", "other": "2024-02-01"}
OLD_MEMBERS = {("unit", "2024-02-01"): members({"high": ["p2"], "low": ["p1", "p3"]})}
# ... and one run row per date, a poor or failed attempt's where the last attempt of the date published nothing:
# 2024-02-01 of unit was published (its history above), then a poor re-run replaced its row
OLD_RUN_ROWS = [
    ("unit", "2024-01-01", "v1", "ok", "fine", '{"roc_auc": 0.8}', 2, "2024-01-02T08:00:00Z"),
    ("unit", "2024-02-01", "v3", "poor", OLD_POOR_REASON, '{"roc_auc": 0.55}', 0, "2024-02-03T08:00:00Z"),
    (
        "unit",
        "2024-03-01",
        "v4",
        "poor",
        "v4 poor",
        '{"roc_auc": 0.52, "model_roc_auc": 0.5}',
        0,
        "2024-03-02T08:00:00Z",
    ),
    ("unit", "2024-04-01", "", "failed", "events missing", "{}", 0, "2024-04-02T08:00:00Z"),
    ("other", "2024-02-01", "v1", "ok", "fine", "{}", 1, "2024-02-02T08:00:00Z"),
    ("other", "2024-03-01", "v2", "poor", "v2 poor", "{}", 0, "2024-03-02T09:00:00Z"),
]
# after the migration: only published runs, one rebuilt from its history; the others are attempts, by written_at
MIGRATED_RUNS = {
    "unit": [
        ("unit", "2024-01-01", "v1", "ok", "fine", '{"roc_auc": 0.8}', 2, "2024-01-02T08:00:00Z", ""),
        ("unit", "2024-02-01", "v2", "ok", REPAIRED_REASON, "{}", 3, "2024-02-03T08:00:00Z", ""),
    ],
    "other": [("other", "2024-02-01", "v1", "ok", "fine", "{}", 1, "2024-02-02T08:00:00Z", "")],
}
MIGRATED_ATTEMPTS = {
    "unit": [
        (
            1,
            "unit",
            "2024-02-01",
            "",
            "quality_gate",
            1,
            "poor",
            OLD_POOR_REASON,
            "v3",
            '{"roc_auc": 0.55}',
            "",
            "2024-02-03T08:00:00Z",
        ),
        (
            2,
            "unit",
            "2024-03-01",
            "",
            "quality_gate",
            1,
            "poor",
            "v4 poor",
            "v4",
            '{"model_roc_auc": 0.5, "roc_auc": 0.52}',
            "",
            "2024-03-02T08:00:00Z",
        ),
        (4, "unit", "2024-04-01", "", "", 1, "failed", "events missing", "", "{}", "", "2024-04-02T08:00:00Z"),
    ],
    "other": [
        (3, "other", "2024-03-01", "", "quality_gate", 1, "poor", "v2 poor", "v2", "{}", "", "2024-03-02T09:00:00Z")
    ],
}


def rows_of(frame: pd.DataFrame) -> list[tuple]:
    return [tuple(row) for row in frame.itertuples(index=False)]


def old_sqlite_store(path: Path) -> None:
    """Write a SQLite file as the store before issue 17 left it (PRAGMA user_version 0)."""
    with closing(sqlite3.connect(path)) as connection:
        connection.executescript(OLD_SQLITE_SCHEMA)
        for (instance, as_of), frame in OLD_HISTORY.items():
            rows = [
                (instance, r.profile_id, as_of, float(r.probability), int(r.score), int(r.percentile), r.bucket)
                + (r.propensity, r.model_version, json.dumps(r.factors))
                for r in frame.itertuples(index=False)
            ]
            connection.executemany("INSERT INTO customer_ai_score_history VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            if OLD_CURRENT[instance] == as_of:
                connection.executemany("INSERT INTO customer_ai_scores VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        for (instance, as_of), frame in OLD_MEMBERS.items():
            connection.executemany(
                "INSERT INTO customer_ai_segments VALUES (?, ?, ?, ?)",
                [(instance, r.segment, as_of, r.profile_id) for r in frame.itertuples(index=False)],
            )
        # in another order than written_at: the attempts are made in the order the rows were written
        connection.executemany("INSERT INTO customer_ai_runs VALUES (?, ?, ?, ?, ?, ?, ?, ?)", OLD_RUN_ROWS[::-1])
        connection.commit()
        assert connection.execute("PRAGMA user_version").fetchone() == (0,)


def assert_predicted_nothing(frame: pd.DataFrame) -> None:
    """Assert that score rows hold no expected value, days to the next event or its date (written without them)."""
    assert frame["expected_value"].isna().all()
    assert frame["days_to_next"].isna().all()
    assert frame["next_by"].tolist() == [None] * len(frame)
    assert frame[list(PREDICTED_COLUMNS)].dtypes.astype(str).tolist() == ["float64", "float64", "object"]


def assert_old_rows_migrated(store) -> None:
    """Check a store made by :func:`old_sqlite_store` (or its PostgreSQL twin) after its migration."""
    for instance, expected in MIGRATED_RUNS.items():
        assert rows_of(store.read_runs(instance)) == expected
        assert rows_of(store.read_attempts(instance)) == MIGRATED_ATTEMPTS[instance]
    # scores, history and membership are as they were
    for (instance, as_of), written in OLD_HISTORY.items():
        read = store.read_scores(instance, as_of=as_of)
        expected = written.sort_values(["probability", "profile_id"], ascending=[False, True])
        assert read["profile_id"].tolist() == expected["profile_id"].tolist()
        assert read["probability"].tolist() == expected["probability"].tolist()
        assert read["factors"].tolist() == expected["factors"].tolist()
        assert set(read["model_version"]) == set(written["model_version"])
        assert_predicted_nothing(read)
    assert store.read_scores("unit")["profile_id"].tolist() == ["p2", "p3", "p1"]
    assert store.read_scores("other")["profile_id"].tolist() == ["p9"]
    assert_predicted_nothing(store.read_scores("unit"))
    assert membership(store) == [
        ("unit", "high", "2024-02-01", "p2"),
        ("unit", "low", "2024-02-01", "p1"),
        ("unit", "low", "2024-02-01", "p3"),
    ]
    assert store.count_rows("unit") == counts(3, 5, 2)
    assert store.count_rows("other") == counts(1, 1, 1)
    # the replaced run is the current run again, so reads that default to it find its date
    latest = store.latest_run("unit")
    assert (latest["as_of"], latest["model_version"], latest["scored_profiles"], latest["metrics"]) == (
        "2024-02-01",
        "v2",
        3,
        {},
    )
    assert store.latest_run("unit", status="poor") is None
    assert store.segment_names("unit") == ["low", "high"]
    assert store.read_segment("unit", "high")["profile_id"].tolist() == ["p2"]
    assert store.latest_attempt("unit")["id"] == 4


def sqlite_tables(path: Path) -> dict[str, list[tuple]]:
    """Every row of every table of a SQLite file, sorted, with the file's user_version."""
    with closing(sqlite3.connect(path)) as connection:
        names = [r[0] for r in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        tables = {name: sorted(connection.execute(f'SELECT * FROM "{name}"').fetchall()) for name in names}
        tables["user_version"] = connection.execute("PRAGMA user_version").fetchall()
    return tables


def test_a_sqlite_file_of_the_first_schema_gets_attempts_and_its_replaced_runs_back(tmp_path):
    path = tmp_path / "store.sqlite"
    old_sqlite_store(path)
    migrated = SQLiteStore(path)
    assert_old_rows_migrated(migrated)  # the first read migrates the file
    with closing(sqlite3.connect(path)) as connection:
        assert connection.execute("PRAGMA user_version").fetchone() == (5,)
        assert [r[1] for r in connection.execute("PRAGMA table_info(customer_ai_locks)")] == list(RunLease._fields)
        assert [r[1] for r in connection.execute("PRAGMA table_info(customer_ai_runs)")] == [
            "instance",
            "as_of",
            "model_version",
            "status",
            "reason",
            "metrics",
            "scored_profiles",
            "written_at",
            "run_id",
        ]
    # opened again, by another store object: nothing changes
    migrated_tables = sqlite_tables(path)
    assert migrated_tables["customer_ai_runs"] == sorted(MIGRATED_RUNS["unit"] + MIGRATED_RUNS["other"])
    assert migrated_tables["user_version"] == [(5,)]
    assert migrated_tables["customer_ai_locks"] == []
    again = SQLiteStore(path)
    assert_old_rows_migrated(again)
    assert sqlite_tables(path) == migrated_tables
    # and it takes published runs and attempts as a new file does
    again.write_run("unit", "2024-05-01", scores({"p4": 0.6}, "v5"), published("v5", "cli-00000000aa"))
    assert again.read_runs("unit")["run_id"].tolist() == ["", "", "cli-00000000aa"]
    assert again.latest_attempt("unit")["id"] == 5


def test_a_new_sqlite_file_starts_at_the_latest_schema(tmp_path):
    path = tmp_path / "store.sqlite"
    SQLiteStore(path).read_runs("unit")
    tables = sqlite_tables(path)
    assert tables["user_version"] == [(5,)]
    assert {"customer_ai_attempts", "customer_ai_runs", "customer_ai_locks"} <= set(tables)
    assert not any(rows for name, rows in tables.items() if name.startswith("customer_ai_"))


def test_a_runs_scores_are_found_by_date_through_an_index(tmp_path):
    path = tmp_path / "store.sqlite"
    SQLiteStore(path).read_runs("unit")
    query = "SELECT profile_id, probability FROM customer_ai_score_history WHERE instance = ? AND as_of = ?"
    with closing(sqlite3.connect(path)) as connection:
        plan = " ".join(row[-1] for row in connection.execute(f"EXPLAIN QUERY PLAN {query}", ("unit", "2024-01-01")))
    assert "USING INDEX customer_ai_score_history_by_date (instance=? AND as_of=?)" in plan


def as_sqlite_version_3(path: Path) -> None:
    """Turn a SQLite file back into user_version 3: score tables without the three optional columns, outcomes
    without their values."""
    with closing(sqlite3.connect(path)) as connection:
        for table in ("customer_ai_scores", "customer_ai_score_history"):
            for column in PREDICTED_COLUMNS:
                connection.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
        for column in ("predicted_value", "realised_value"):
            connection.execute(f"ALTER TABLE customer_ai_outcomes DROP COLUMN {column}")
        connection.execute("PRAGMA user_version = 3")
        connection.commit()


def score_table_columns(path: Path) -> dict[str, list[tuple]]:
    """The columns of the two score tables of a SQLite file: name, type, NOT NULL (1) or not (0)."""
    with closing(sqlite3.connect(path)) as connection:
        return {
            table: [(r[1], r[2], r[3]) for r in connection.execute(f"PRAGMA table_info({table})")]
            for table in ("customer_ai_scores", "customer_ai_score_history")
        }


SCORE_TABLE_COLUMNS = [
    ("instance", "TEXT", 1),
    ("profile_id", "TEXT", 1),
    ("as_of", "TEXT", 1),
    ("probability", "REAL", 1),
    ("score", "INTEGER", 1),
    ("percentile", "INTEGER", 1),
    ("bucket", "TEXT", 1),
    ("propensity", "TEXT", 1),
    ("model_version", "TEXT", 1),
    ("factors", "TEXT", 1),
]
PREDICTED_TABLE_COLUMNS = [("expected_value", "REAL", 0), ("days_to_next", "REAL", 0), ("next_by", "TEXT", 0)]


def test_a_sqlite_file_of_version_3_gets_the_optional_score_columns_and_keeps_its_rows(tmp_path):
    path = tmp_path / "store.sqlite"
    first = SQLiteStore(path)
    first.write_run("unit", "2024-01-01", scores({"p1": 0.2, "p3": 0.7}), run(), segments=members({"a": ["p1"]}))
    first.write_run("unit", "2024-02-01", scores({"p1": 0.3, "p2": 0.5}), published("v1", "cli-00000000aa"))
    first.write_run("other", "2024-01-01", scores({"p9": 0.1}), run())
    before = [every_read(first), every_read(first, "other"), first.read_segment("unit", "a", "2024-01-01")]
    as_sqlite_version_3(path)
    assert score_table_columns(path) == dict.fromkeys(
        ("customer_ai_scores", "customer_ai_score_history"), SCORE_TABLE_COLUMNS
    )
    message = (
        f"the profile store {path} was written by an earlier version of customer-ai (SQLite user_version 3; this "
        f"version reads 5): {MIGRATE}"
    )
    assert_every_read_refused(SQLiteStore(path, create=False), message)

    upgraded = SQLiteStore(path)  # its first use migrates it
    after = [every_read(upgraded), every_read(upgraded, "other"), upgraded.read_segment("unit", "a", "2024-01-01")]
    assert_same_state(before[0], after[0])
    assert_same_state(before[1], after[1])
    pd.testing.assert_frame_equal(before[2], after[2])
    assert score_table_columns(path) == dict.fromkeys(
        ("customer_ai_scores", "customer_ai_score_history"), SCORE_TABLE_COLUMNS + PREDICTED_TABLE_COLUMNS
    )
    assert sqlite_tables(path)["user_version"] == [(5,)]
    for as_of in ("2024-01-01", "2024-02-01"):
        assert_predicted_nothing(upgraded.read_scores("unit", as_of=as_of))
    assert stored_predictions(upgraded) == [
        ("p1", "2024-01-01", None, None, None),
        ("p1", "2024-02-01", None, None, None),
        ("p2", "2024-02-01", None, None, None),
        ("p3", "2024-01-01", None, None, None),
    ]
    # and it takes the new columns as a new file does
    upgraded.write_run(
        "unit", "2024-03-01", predicting(scores({"p1": 0.6}), [2.5], [1.5], ["2024-03-02"]), published("v2", "cli-0b")
    )
    assert predictions(upgraded.read_scores("unit")) == [("p1", 2.5, 1.5, "2024-03-02")]
    assert upgraded.migrate() == (5, 5)


def test_a_new_sqlite_file_has_the_optional_score_columns_nullable(tmp_path):
    path = tmp_path / "store.sqlite"
    SQLiteStore(path).read_runs("unit")
    assert score_table_columns(path) == dict.fromkeys(
        ("customer_ai_scores", "customer_ai_score_history"), SCORE_TABLE_COLUMNS + PREDICTED_TABLE_COLUMNS
    )


# --- readers create and migrate nothing; a damaged file; a full disk (issue 18) ----------------------------------

NO_STORE = "nothing has been run with this home or store yet (or its address is mistyped)"
MIGRATE = (
    "migrate it with `customer-ai migrate` and the same --home or --store (a run of any instance migrates it too); "
    "nothing was changed"
)
RESTORE = "restore it from a backup, or move it aside (the next run then starts a new, empty store)"


def every_read(store, instance: str = "unit") -> list:
    """What each read of the store gives for one instance."""
    return [
        store.read_scores(instance),
        store.read_scores(instance, as_of="2024-02-01", profile_id="p1"),
        store.read_runs(instance),
        store.latest_run(instance),
        store.read_attempts(instance),
        store.latest_attempt(instance),
        store.read_outcomes(instance),
        store.segment_names(instance),
        store.read_segment(instance, "high"),
        store.count_rows(instance),
    ]


def test_a_sqlite_store_opened_for_reading_creates_nothing(tmp_path):
    # before: any read made the folders, the file and its tables, so that a mistyped address gave an empty store
    path = tmp_path / "typo" / "dir" / "store.sqlite"
    reader = SQLiteStore(path, create=False)
    assert_same_state(every_read(reader), every_read(SQLiteStore(tmp_path / "made.sqlite")))
    with pytest.raises(StoreMissingError) as caught:
        reader.check()
    assert str(caught.value) == f"no profile store at {path}: {NO_STORE}"
    read_only = r"was opened for reading \(create=False\): it is never written"
    with pytest.raises(RuntimeError, match=read_only):
        reader.write_run("unit", "2024-02-01", scores({"p1": 0.2}), run())
    with pytest.raises(RuntimeError, match=read_only):
        reader.record_attempt("unit", "2024-02-01", started())
    with pytest.raises(StoreMissingError, match=re.escape(f"no profile store at {path}: {NO_STORE}")):
        reader.migrate()
    assert not (tmp_path / "typo").exists()
    # an empty file (made by `touch`, say) holds no store: nothing is made in it either
    path.parent.mkdir(parents=True)
    path.touch()
    assert_same_state(every_read(reader), every_read(SQLiteStore(tmp_path / "made.sqlite")))
    with pytest.raises(StoreMissingError) as caught:
        reader.check()
    assert str(caught.value) == f"no profile store at {path} (the file holds no customer-ai tables): {NO_STORE}"
    assert path.stat().st_size == 0
    home = tmp_path / "home"
    assert open_store(None, home, create=False).read_runs("unit").empty
    assert open_store(f"sqlite:///{home}/other.sqlite", tmp_path, create=False).latest_run("unit") is None
    assert not home.exists()


def test_a_sqlite_reader_reads_a_store_without_changing_a_byte_even_after_a_killed_writer(tmp_path):
    path = tmp_path / "store.sqlite"
    writer = SQLiteStore(path)
    writer.write_run("unit", "2024-02-01", scores({"p1": 0.2, "p2": 0.9}), published("v1", "cli-00000000aa"))
    expected, written = every_read(writer), path.read_bytes()
    assert_same_state(every_read(SQLiteStore(path, create=False)), expected)
    assert path.read_bytes() == written
    # a writer killed inside its transaction leaves a hot journal: a reader rolls it back (as SQLite requires
    # before any read) and reads the last committed state
    script = (
        "import os, sqlite3\n"
        f"connection = sqlite3.connect({str(path)!r})\n"
        "connection.execute('PRAGMA cache_size = 1')\n"
        "connection.execute('BEGIN IMMEDIATE')\n"
        "connection.execute('DELETE FROM customer_ai_score_history')\n"
        "connection.executemany('INSERT INTO customer_ai_score_history (instance, profile_id, as_of, probability, "
        "score, percentile, bucket, propensity, model_version, factors) SELECT instance, profile_id || ?, as_of, "
        "probability, score, percentile, bucket, propensity, model_version, factors FROM customer_ai_scores', "
        "[(str(i),) for i in range(3000)])\n"
        "os._exit(0)\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True)
    assert (tmp_path / "store.sqlite-journal").exists()
    assert_same_state(every_read(SQLiteStore(path, create=False)), expected)
    assert not (tmp_path / "store.sqlite-journal").exists()


def assert_every_read_refused(reader, message: str) -> None:  # noqa: ANN001 - a SQLiteStore or a PostgresStore
    """Assert that a reader's check and every read refuse the store with exactly ``message`` (a StoreVersionError)."""
    with pytest.raises(StoreVersionError) as caught:
        reader.check()
    assert str(caught.value) == message
    for read in (
        "read_runs",
        "read_scores",
        "read_attempts",
        "latest_run",
        "count_rows",
        "segment_names",
        "read_audiences",
    ):
        with pytest.raises(StoreVersionError, match=re.escape(message)):
            getattr(reader, read)("unit")


def test_a_sqlite_file_of_an_earlier_schema_is_refused_by_readers_and_left_as_it_is(tmp_path):
    # before: the first read of any reader migrated the file
    path = tmp_path / "store.sqlite"
    old_sqlite_store(path)
    before = path.read_bytes()
    reader = SQLiteStore(path, create=False)
    message = (
        f"the profile store {path} was written by an earlier version of customer-ai (SQLite user_version 0; this "
        f"version reads 5): {MIGRATE}"
    )
    assert_every_read_refused(reader, message)
    assert path.read_bytes() == before
    # the explicit step (`customer-ai migrate`) migrates it, once
    assert reader.migrate() == (0, 5)
    assert_old_rows_migrated(reader)
    assert reader.migrate() == (5, 5)


def _cut_short(path: Path) -> str:
    size = path.stat().st_size
    os.truncate(path, size // 2)
    return f"it is cut short: {size // 2:,} bytes where its header says {size:,} (database disk image is malformed)"


def _overwritten(path: Path) -> str:
    size = path.stat().st_size
    with path.open("r+b") as stream:  # every page but the first (the schema): their b-trees are noise
        stream.seek(4096)
        stream.write(np.random.default_rng(18).integers(0, 256, size - 4096, dtype=np.uint8).tobytes())
    return "Page "


def _not_sqlite(path: Path) -> str:
    with path.open("r+b") as stream:
        stream.write(b"garbage " * 16)
    return "it is not a SQLite database (it does not start with the SQLite header): file is not a database"


@pytest.mark.parametrize("damage", [_cut_short, _overwritten, _not_sqlite])
def test_a_damaged_sqlite_file_is_named_with_what_is_wrong_before_any_work(tmp_path, damage):
    # before: a file cut to half or overwritten was noticed at the write after the whole training, as a traceback
    path = tmp_path / "store.sqlite"
    SQLiteStore(path).write_run("unit", "2024-02-01", scores({f"p{i}": i / 1000 for i in range(600)}), run())
    what = damage(path)
    damaged = path.read_bytes()
    with pytest.raises(StoreDamagedError) as by_a_writer:
        SQLiteStore(path).read_runs("unit")  # the first use of a writer reads every page once
    with pytest.raises(StoreDamagedError) as by_a_reader:
        SQLiteStore(path, create=False).read_scores("unit")
    message = str(by_a_writer.value)
    assert message.startswith(f"the profile store {path} is damaged: ")
    assert message.endswith(f"; {RESTORE}")
    assert what in message
    assert str(by_a_reader.value) == message  # a reader says the same
    assert isinstance(by_a_writer.value, StoreUnavailableError)  # the command exits 3
    assert path.read_bytes() == damaged  # nothing written, nothing "repaired"


def _limit_pages_at_the_publish(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the file unable to grow from the moment the publish transaction starts writing its rows."""
    replace_history = _SQLiteWriter.replace_history

    def full(self: _SQLiteWriter) -> None:
        pages = self.connection.execute("PRAGMA page_count").fetchone()[0]
        self.connection.execute(f"PRAGMA max_page_count = {pages}")
        replace_history(self)

    monkeypatch.setattr(_SQLiteWriter, "replace_history", full)


@contextmanager
def tiny_disk(folder: Path, size: str = "256k") -> Iterator[Path]:
    """Mount a tmpfs of ``size`` on ``folder`` (root only) and yield it; unmount at the end."""
    folder.mkdir()
    mounted = os.geteuid() == 0 and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True, check=False
    )
    if not mounted or mounted.returncode != 0:
        pytest.skip("mounting a small tmpfs needs root")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "--lazy", str(folder)], check=True)  # even with a file left open by a failure


@pytest.mark.parametrize("fault", ["max_page_count", "tmpfs"])
def test_a_full_disk_during_the_publish_writes_nothing_and_keeps_the_previous_run(tmp_path, monkeypatch, fault):
    # before: sqlite3.OperationalError "database or disk is full" (a traceback, exit 1)
    with contextlib.ExitStack() as stack:
        folder = stack.enter_context(tiny_disk(tmp_path / "tiny")) if fault == "tmpfs" else tmp_path
        store = SQLiteStore(folder / "store.sqlite")
        store.write_run("unit", "2024-01-01", scores({"p1": 0.2, "p2": 0.9}), published("v1", "cli-00000000aa"))
        before = state(store)
        if fault == "max_page_count":
            _limit_pages_at_the_publish(monkeypatch)
        many = scores({f"p{i}": i / 5000 for i in range(5000)})
        with pytest.raises(StoreUnavailableError) as caught:
            store.write_run("unit", "2024-02-01", many, published("v2", "cli-00000000bb"))
        assert str(caught.value) == (
            f"the profile store {store.path} cannot grow: database or disk is full; nothing was written: free some "
            "space, then run again"
        )
        assert_same_state(before, state(store))
        assert store.latest_run("unit")["run_id"] == "cli-00000000aa"  # the previous run is current
        assert not (folder / "store.sqlite-journal").exists()


# ---------------------------------------------------------------------------------------------------------------
# the run lock: a lease per instance, and the commit's fence


def take(store, attempt: str, minutes: float = 10) -> RunLease:
    return store.take_lock("unit", attempt, f"origin of {attempt}", "dag:customer_ai__unit", minutes=minutes)


def test_a_lease_is_taken_renewed_by_its_holder_refused_to_others_and_released(store):
    first = take(store, "af-aaaa")
    assert (first.instance, first.attempt, first.origin, first.scope) == (
        "unit",
        "af-aaaa",
        "origin of af-aaaa",
        "dag:customer_ai__unit",
    )
    assert first.acquired_at == first.renewed_at
    assert first.expires_at - first.renewed_at == dt.timedelta(minutes=10)
    again = take(store, "af-aaaa", minutes=20)  # the holder renews: it keeps its start
    assert again.acquired_at == first.acquired_at
    assert again.expires_at - again.renewed_at == dt.timedelta(minutes=20)
    with pytest.raises(RunInProgressError, match=r"another run of unit is in progress: attempt af-aaaa \(origin of"):
        take(store, "af-bbbb")
    held, now = store.lock_holder("unit")
    assert held == again
    assert now >= again.renewed_at
    assert store.renew_lock("unit", "af-bbbb", minutes=5) is False  # not the holder: nothing changes
    assert store.release_lock("unit", "af-bbbb") is None
    assert store.lock_holder("unit")[0] == again
    assert store.release_lock("unit", "af-aaaa") == again
    assert store.lock_holder("unit")[0] is None
    assert take(store, "af-bbbb").attempt == "af-bbbb"
    assert store.lock_holder("other")[0] is None  # one lock per instance


def test_an_expired_lease_is_taken_by_another_attempt(store):
    take(store, "af-aaaa", minutes=1 / 600)  # 0.1 s
    time.sleep(0.2)
    assert take(store, "af-bbbb").attempt == "af-bbbb"
    assert store.renew_lock("unit", "af-aaaa", minutes=10) is False  # the first one learns it lost it


def test_a_commit_releases_its_own_lease_and_is_refused_while_another_attempt_holds_it(store):
    take(store, "af-aaaa")
    store.write_run("unit", "2024-01-01", scores({"a": 0.4}), published("v1", "af-aaaa"))
    assert store.lock_holder("unit")[0] is None  # the commit freed it
    take(store, "af-bbbb")
    before = frames(store)
    with pytest.raises(LockLostError, match=r"attempt af-cccc of unit no longer holds the run lock, so it publishes"):
        store.write_run("unit", "2024-01-01", scores({"a": 0.9}), published("v2", "af-cccc"))
    assert_frames_equal(before, frames(store))  # nothing of it was written
    assert store.lock_holder("unit")[0].attempt == "af-bbbb"


def test_a_commit_without_a_lease_or_over_an_expired_one_goes_ahead(store):
    store.write_run("unit", "2024-01-01", scores({"a": 0.4}), published("v1", "af-aaaa"))  # nobody holds it
    take(store, "af-bbbb", minutes=1 / 600)
    time.sleep(0.2)
    store.write_run("unit", "2024-01-01", scores({"a": 0.5}), published("v2", "af-cccc"))
    assert store.read_scores("unit")["probability"].tolist() == [0.5]
    assert store.lock_holder("unit")[0].attempt == "af-bbbb"  # not its lease: left to expire


def test_a_reader_never_takes_a_lease(store, tmp_path):
    take(store, "af-aaaa")
    reader = (
        SQLiteStore(store.path, create=False)
        if isinstance(store, SQLiteStore)
        else PostgresStore(store.dsn, store.schema, create=False)
    )
    with pytest.raises(RuntimeError, match="was opened for reading"):
        reader.take_lock("unit", "af-bbbb", "x", "dag:x", minutes=1)


# --- saved audiences (issue 25) ---------------------------------------------------------------------------------


def test_a_saved_audience_is_kept_with_who_saved_it_and_when_and_read_back_the_oldest_first(store):
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    first = store.save_audience("unit", SavedAudience("vip", "percentile", 90, "ana"))
    second = store.save_audience("unit", SavedAudience("best_500", "top", 500, "bo"))
    store.save_audience("other", SavedAudience("vip", "score", 40, "cy"))
    assert (first.name, first.cut, first.at, first.saved_by) == ("vip", "percentile", 90, "ana")
    saved_at = dt.datetime.strptime(first.saved_at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    assert before <= saved_at <= dt.datetime.now(dt.UTC)
    # the same second: by name
    assert [a.name for a in store.read_audiences("unit")] == (
        ["vip", "best_500"] if first.saved_at < second.saved_at else ["best_500", "vip"]
    )
    assert store.read_audiences("unit") == sorted([first, second], key=lambda a: (a.saved_at, a.name))
    assert store.read_audiences("other")[0].rule() == {"cut": "score", "at": 40}
    assert store.read_audiences("nobody") == []


def test_saving_a_name_twice_is_refused_unless_replaced(store):
    kept = store.save_audience("unit", SavedAudience("vip", "percentile", 90, "ana"))
    with pytest.raises(AudienceExistsError) as caught:
        store.save_audience("unit", SavedAudience("vip", "top", 10, "bo"))
    assert str(caught.value) == (
        f"unit has a saved audience named vip already (percentile at least 90, saved by ana at {kept.saved_at}): "
        "delete it first, or choose another name"
    )
    assert store.read_audiences("unit") == [kept]
    replaced = store.save_audience("unit", SavedAudience("vip", "top", 10, "bo"), replace=True)
    assert store.read_audiences("unit") == [replaced]
    assert (replaced.cut, replaced.at, replaced.saved_by) == ("top", 10, "bo")


@pytest.mark.parametrize(
    ("audience", "says"),
    [
        (SavedAudience("Vip", "score", 50), "audience name 'Vip': use a lower-case letter, then lower-case letters"),
        (SavedAudience("high", "score", 50), "audience name 'high' is the segment of the bucket high in every run"),
        (SavedAudience("vip", "decile", 5), "audience vip: a cut is by score, percentile or top, not 'decile'"),
        (
            SavedAudience("vip", "percentile", 0),
            "audience vip: a cut by percentile is at a whole number 1 to 100, not 0",
        ),
        (SavedAudience("vip", "top", 0), "audience vip: a cut by top is at a whole number at least 1, not 0"),
    ],
)
def test_an_audience_a_run_cannot_apply_is_never_saved(store, audience, says):
    with pytest.raises(AudienceError, match=re.escape(says)):
        store.save_audience("unit", audience)
    assert store.read_audiences("unit") == []


def test_a_deleted_audience_is_returned_once_and_gone_and_the_runs_membership_stays(store):
    store.save_audience("unit", SavedAudience("vip", "percentile", 90, "ana"))
    store.write_run("unit", "2024-01-01", scores({"p1": 0.9, "p2": 0.1}), run(), segments=members({"vip": ["p1"]}))
    gone = store.delete_audience("unit", "vip")
    assert (gone.name, gone.words(), gone.saved_by) == ("vip", "percentile at least 90", "ana")
    assert store.delete_audience("unit", "vip") is None
    assert store.read_audiences("unit") == []
    assert store.read_segment("unit", "vip")["profile_id"].tolist() == ["p1"]  # a published run keeps its members


def test_a_reader_reads_saved_audiences_but_never_writes_them(store, tmp_path):
    store.save_audience("unit", SavedAudience("vip", "score", 70, "ana"))
    reader = (
        SQLiteStore(store.path, create=False)
        if isinstance(store, SQLiteStore)
        else PostgresStore(store.dsn, store.schema, create=False)
    )
    assert [a.name for a in reader.read_audiences("unit")] == ["vip"]
    for write in (
        lambda: reader.save_audience("unit", SavedAudience("x", "score", 1)),
        lambda: reader.delete_audience("unit", "vip"),
    ):
        with pytest.raises(RuntimeError, match="was opened for reading"):
            write()
    assert SQLiteStore(tmp_path / "none.sqlite", create=False).read_audiences("unit") == []


def test_a_rule_changed_by_hand_is_named_when_read_and_can_still_be_deleted(tmp_path):
    path = tmp_path / "store.sqlite"
    store = SQLiteStore(path)
    store.save_audience("unit", SavedAudience("vip", "score", 70, "ana"))
    with closing(sqlite3.connect(path)) as connection:
        connection.execute('UPDATE customer_ai_audiences SET rule = \'{"cut": "score", "at": 700}\'')
        connection.commit()
    with pytest.raises(AudienceError) as caught:
        store.read_audiences("unit")
    assert str(caught.value) == (
        "the saved audience 'vip' of unit in the store cannot be applied: audience vip: a cut by score is at a whole "
        "number 0 to 100, not 700; delete it (customer-ai audience delete) and save it again"
    )
    assert store.delete_audience("unit", "vip").cut == ""
    assert store.read_audiences("unit") == []


def test_a_sqlite_file_of_version_4_gets_the_audiences_table(tmp_path):
    path = tmp_path / "store.sqlite"
    SQLiteStore(path).write_run("unit", "2024-01-01", scores({"p1": 0.2}), run())
    with closing(sqlite3.connect(path)) as connection:
        connection.execute("DROP TABLE customer_ai_audiences")
        connection.execute("PRAGMA user_version = 4")
        connection.commit()
    message = (
        f"the profile store {path} was written by an earlier version of customer-ai (SQLite user_version 4; this "
        f"version reads 5): {MIGRATE}"
    )
    assert_every_read_refused(SQLiteStore(path, create=False), message)
    assert SQLiteStore(path, create=False).migrate() == (4, 5)
    upgraded = SQLiteStore(path)
    assert upgraded.read_scores("unit")["profile_id"].tolist() == ["p1"]
    assert upgraded.save_audience("unit", SavedAudience("vip", "score", 10, "ana")).name == "vip"
