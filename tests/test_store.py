"""The profile stores: current scores, history, runs and all-or-nothing writes.

The behaviour tests run on both stores (the ``store`` fixture): the embedded SQLite file and PostgreSQL on the
real server named by ``$CUSTOMER_AI_TEST_POSTGRES`` (default: database ``test`` on 127.0.0.1), in a schema of
this module's own (``test_store_<random hex>``) dropped at the end.  PostgreSQL-only behaviour (COPY, locks,
migrations, lost connections) is in test_store_postgres.py, which reuses the helpers below.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import re
import secrets
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg2
import pytest
from psycopg2 import sql

from customer_ai.store import PostgresStore, SQLiteStore, open_store

PG_DSN = os.environ.get("CUSTOMER_AI_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
TABLES = ("customer_ai_scores", "customer_ai_score_history", "customer_ai_runs")
NEW_TABLES = ("customer_ai_segments", "customer_ai_outcomes")

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
        every = (*TABLES[1:], *NEW_TABLES, "customer_ai_current")  # customer_ai_scores is a view of them
        cursor.execute(sql.SQL("TRUNCATE {}").format(sql.SQL(", ").join(sql.Identifier(schema, t) for t in every)))
    return opened


def counts(current: int, history: int, runs: int) -> dict[str, int]:
    return {"customer_ai_scores": current, "customer_ai_score_history": history, "customer_ai_runs": runs}


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


@pytest.mark.parametrize(
    ("spoil", "error"),
    [
        # fails inserting history (PostgreSQL: moving the staged rows into history)
        (_duplicate_profile, "UNIQUE constraint failed|duplicate key value violates unique constraint"),
        (_nan_probability, r"missing values in \['probability'\]; nothing written"),  # checked before writing
        (_none_profile, r"missing values in \['profile_id'\]"),
        (_incomplete_run, "status"),  # refused before writing
        # the database refuses the run row, the last statement, after history and current scores were replaced
        (_run_without_model_version, 'NOT NULL constraint failed|null value in column "model_version"'),
    ],
)
@pytest.mark.parametrize("as_of", ["2024-01-01", "2024-02-01"])
def test_failed_write_leaves_previous_rows_intact(store, spoil, error, as_of):
    store.write_run("unit", "2024-01-01", scores({"p1": 0.2, "p2": 0.9}, "v1"), run("v1", roc_auc=0.8))
    before = (store.read_scores("unit"), store.read_scores("unit", as_of="2024-01-01"), store.read_runs("unit"))

    bad_scores, bad_run = spoil(scores({"p3": 0.1, "p4": 0.5}, "v2"), run("v2"))
    with pytest.raises(Exception, match=error):
        store.write_run("unit", as_of, bad_scores, bad_run)

    after = (store.read_scores("unit"), store.read_scores("unit", as_of="2024-01-01"), store.read_runs("unit"))
    for old, new in zip(before, after, strict=True):
        pd.testing.assert_frame_equal(old, new)
    assert store.count_rows("unit") == counts(2, 2, 1)
    # the store still accepts writes afterwards (no lock or open transaction left behind)
    store.write_run("unit", "2024-02-01", scores({"p3": 0.1}, "v2"), run("v2"))
    assert store.count_rows("unit") == counts(1, 3, 2)


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
    ]
    assert runs["as_of"].tolist() == ["2024-01-01", "2024-02-01"]
    assert runs["model_version"].tolist() == ["v1", "v3"]
    assert runs["status"].tolist() == ["ok", "ok"]
    assert runs["reason"].tolist() == ["fine", "fine"]
    assert runs["scored_profiles"].tolist() == [1, 3]
    assert [json.loads(m) for m in runs["metrics"]] == [{"roc_auc": 0.7}, {"roc_auc": 0.9}]
    assert runs["written_at"].str.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ").all()
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


# --- behaviour shared by both stores: which run is current, record_run, latest_run -----------------------------


def frames(store, instance: str = "unit", dates: tuple[str, ...] = ("2024-01-01",)) -> list[pd.DataFrame]:
    return [store.read_scores(instance), *(store.read_scores(instance, as_of=d) for d in dates)]


def assert_frames_equal(before: list[pd.DataFrame], after: list[pd.DataFrame]) -> None:
    for old, new in zip(before, after, strict=True):
        pd.testing.assert_frame_equal(old, new)


def poor(version: str = "v9", **metrics: float) -> dict:
    return {"model_version": version, "status": "poor", "reason": "validation ROC AUC 0.55 < 0.65", "metrics": metrics}


def test_a_poor_rerun_of_the_current_date_still_protects_its_scores_from_older_backfills(store):
    store.write_run("unit", "2024-02-01", scores({"p1": 0.2, "p2": 0.9}, "v2"), run("v2", roc_auc=0.8))
    store.record_run("unit", "2024-02-01", poor("v3"))  # the same date re-run with a model that failed the gate
    store.write_run("unit", "2024-01-01", scores({"p9": 0.5}, "v1"), run("v1", roc_auc=0.8))  # a backfill
    current = store.read_scores("unit")
    assert current["profile_id"].tolist() == ["p2", "p1"]
    assert set(current["as_of"]) == {"2024-02-01"}
    assert store.read_scores("unit", as_of="2024-01-01")["profile_id"].tolist() == ["p9"]


def test_poor_run_recorded_after_an_ok_run_keeps_scores_and_history(store):
    store.write_run("unit", "2024-01-01", scores({"p1": 0.2, "p2": 0.9}, "v1"), run("v1", roc_auc=0.8))
    before = frames(store)
    store.record_run("unit", "2024-02-01", poor("v2", roc_auc=0.55))

    assert_frames_equal(before, frames(store))
    assert store.read_scores("unit", as_of="2024-02-01").empty
    assert store.count_rows("unit") == counts(2, 2, 2)
    latest = store.latest_run("unit", status=None)
    written_at = latest.pop("written_at")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", written_at)
    assert latest == {
        "instance": "unit",
        "as_of": "2024-02-01",
        "model_version": "v2",
        "status": "poor",
        "reason": "validation ROC AUC 0.55 < 0.65",
        "metrics": {"roc_auc": 0.55},
        "scored_profiles": 0,
    }
    ok = store.latest_run("unit")
    assert (ok["as_of"], ok["model_version"], ok["status"], ok["metrics"], ok["scored_profiles"]) == (
        "2024-01-01",
        "v1",
        "ok",
        {"roc_auc": 0.8},
        2,
    )
    assert store.latest_run("unit", status="poor")["as_of"] == "2024-02-01"
    assert store.latest_run("unit", status="failed") is None
    assert store.latest_run("other") is None
    assert store.latest_run("other", status=None) is None
    runs = store.read_runs("unit")
    assert runs["status"].tolist() == ["ok", "poor"]
    assert runs["scored_profiles"].tolist() == [2, 0]


def test_only_ok_runs_decide_which_as_of_is_current(store):
    store.write_run("unit", "2024-01-01", scores({"p1": 0.2, "p2": 0.9}, "v1"), run("v1"))
    store.record_run("unit", "2024-03-01", poor("v3"))
    # older than the poor run, newer than every ok run: its scores become current
    store.write_run("unit", "2024-02-01", scores({"p2": 0.4, "p3": 0.6}, "v2"), run("v2"))
    current = store.read_scores("unit")
    assert current["profile_id"].tolist() == ["p3", "p2"]
    assert set(current["as_of"]) == {"2024-02-01"}
    assert store.latest_run("unit")["as_of"] == "2024-02-01"
    assert store.latest_run("unit", status=None)["as_of"] == "2024-03-01"
    assert store.count_rows("unit") == counts(2, 4, 3)
    # a backfill older than the newest ok run still only fills history
    store.write_run("unit", "2023-12-01", scores({"p9": 0.5}, "v0"), run("v0"))
    assert store.read_scores("unit")["profile_id"].tolist() == ["p3", "p2"]
    assert store.read_scores("unit", as_of="2023-12-01")["profile_id"].tolist() == ["p9"]


def test_written_run_that_is_not_ok_fills_history_but_not_current(store):
    store.write_run("unit", "2024-01-01", scores({"p1": 0.2}, "v1"), run("v1"))
    store.write_run("unit", "2024-02-01", scores({"p2": 0.7}, "v2"), {**run("v2"), "status": "poor"})
    assert store.read_scores("unit")["profile_id"].tolist() == ["p1"]
    assert store.read_scores("unit", as_of="2024-02-01")["profile_id"].tolist() == ["p2"]
    assert store.latest_run("unit")["as_of"] == "2024-01-01"
    assert store.read_runs("unit")["scored_profiles"].tolist() == [1, 1]


def test_record_run_on_a_new_instance_and_repeated(store):
    store.record_run("unit", "2024-02-01", {**poor("v1"), "status": "failed", "reason": "events missing"})
    assert store.count_rows("unit") == counts(0, 0, 1)
    assert store.latest_run("unit") is None
    store.record_run("unit", "2024-02-01", poor("v2"))  # the same as-of date: its run row is replaced
    assert store.count_rows("unit") == counts(0, 0, 1)
    latest = store.latest_run("unit", status=None)
    assert (latest["status"], latest["model_version"], latest["metrics"]) == ("poor", "v2", {})
    # a poor run does not count: the first ok run of an older date becomes current
    store.write_run("unit", "2024-01-01", scores({"p1": 0.2}), run())
    assert store.read_scores("unit")["profile_id"].tolist() == ["p1"]


def test_record_run_refuses_an_ok_run(store):
    with pytest.raises(ValueError, match="record_run is for runs that wrote no scores"):
        store.record_run("unit", "2024-02-01", run())
    assert store.count_rows("unit") == counts(0, 0, 0)


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
    with pytest.raises(ValueError, match="is not a date"):
        store.record_run("unit", as_of, poor())
    assert store.count_rows("unit") == counts(0, 0, 0)
    store.write_run("unit", "2024-02-01", scores({"p1": 0.2}), run())
    assert store.read_scores("unit", as_of=as_of).empty  # reading a date that is not one finds nothing


def test_empty_reads_have_the_same_dtypes_as_full_ones(store):
    store.write_run("unit", "2024-02-01", scores({"p1": 0.2}), run(roc_auc=0.7))
    for full, empty in (
        (store.read_scores("unit"), store.read_scores("none")),
        (store.read_runs("unit"), store.read_runs("none")),
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
        "factors": "object",
    }
    assert store.read_runs("unit")["scored_profiles"].dtype == "int64"


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
    store.record_run(instance, "2024-03-01", poor("v'2"))
    assert store.latest_run(instance, status=None)["model_version"] == "v'2"


# --- segment membership ---------------------------------------------------------------------------------------


def members(pairs: dict[str, list[str]]) -> pd.DataFrame:
    """Return a membership frame from ``{segment: [profile ids]}``."""
    rows = [(segment, profile) for segment, profiles in pairs.items() for profile in profiles]
    return pd.DataFrame(rows, columns=["segment", "profile_id"], dtype="str")


def membership(store, instance: str = "unit") -> list[tuple[str, str, str, str]]:
    """Return every membership row of an instance, read from outside the store, sorted."""
    if isinstance(store, SQLiteStore):
        with sqlite3.connect(store.path) as connection:
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


def test_segment_reads_default_to_the_newest_ok_run(store):
    store.write_run(
        "unit", "2024-01-01", scores({"p1": 0.2, "p2": 0.4}, "v1"), run("v1"), segments=members({"s": ["p1"]})
    )
    store.write_run("unit", "2023-12-01", scores({"p9": 0.2}, "v0"), run("v0"), segments=members({"s": ["p9"]}))
    store.write_run(
        "unit",
        "2024-02-01",
        scores({"p2": 0.7}, "v2"),
        {**run("v2"), "status": "poor"},
        segments=members({"s": ["p2"]}),
    )
    store.record_run("unit", "2024-03-01", poor())
    assert store.read_segment("unit", "s")["profile_id"].tolist() == ["p1"]
    assert store.read_segment("unit", "s")["as_of"].tolist() == ["2024-01-01"]
    assert store.read_segment("unit", "s", as_of="2024-02-01")["probability"].tolist() == [0.7]
    assert store.read_segment("unit", "s", as_of=dt.date(2023, 12, 1))["profile_id"].tolist() == ["p9"]
    assert store.segment_names("unit") == ["s"]
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
            members({"b": ["p3"]}),
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
        "tracked_at",
    ]
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
        "tracked_at": "str",
    }
    assert store.read_outcomes("nobody").empty
    assert store.read_outcomes("nobody").dtypes.to_dict() == read.dtypes.to_dict()
    assert store.count_rows("unit") == counts(0, 0, 0)  # outcomes touch neither scores nor runs


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
    # the JSON text scores.parquet holds, as enrich_profiles reads it: stored as it is, without decoding
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
def test_enrich_profiles_stores_the_factors_of_scores_parquet(store, tmp_path, rule, chosen):
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
    folder = artifacts.staging_dir(tmp_path, spec.name, as_of)
    write_frame(folder / "scores.parquet", written)
    model = {"model_version": "v1", "as_of": "2024-01-01", "validation": {"metrics": {"roc_auc": 0.8}}}
    artifacts.write_json(folder / "model.json", model)
    result = steps.enrich_profiles(spec, as_of, tmp_path, store)
    assert result["written"] == 3
    assert result["segments"] == {"low": 3, "medium": 0, "high": 0, "chosen": len(chosen)}
    assert store.read_segment(spec.name, "chosen")["profile_id"].tolist() == chosen
    # the same stored factors as a write of the lists themselves
    store.write_run("reference", "2024-02-01", written, run())
    assert stored_factor_texts(store, "2024-02-01", spec.name) == stored_factor_texts(store, "2024-02-01", "reference")
    assert store.read_scores(spec.name)["factors"].tolist()[0] == [{**FACTOR, "contribution": 0.5}]
