"""The SQLite profile store: current scores, history, runs and all-or-nothing writes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from customer_ai.store import SQLiteStore, open_store

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


@pytest.fixture
def store(tmp_path) -> SQLiteStore:
    return SQLiteStore(tmp_path / "nested" / "store.sqlite")


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
    assert store.path.exists()


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


@pytest.mark.parametrize(
    ("spoil", "error"),
    [
        (_duplicate_profile, "UNIQUE constraint failed"),  # fails inserting history
        (_nan_probability, r"missing values in \['probability'\]; nothing written"),  # checked before writing
        (_none_profile, r"missing values in \['profile_id'\]"),
        (_incomplete_run, "status"),  # fails after the scores were replaced, on the run row
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


@pytest.mark.parametrize("uri", ["postgresql://user@host/db", "sqlite://scores.sqlite", "/tmp/store.sqlite"])
def test_open_store_rejects_unsupported_addresses(tmp_path, uri):
    with pytest.raises(ValueError, match=re.escape(f"unsupported store address {uri!r}")):
        open_store(uri, tmp_path)


def test_backfill_after_a_newer_run_that_scored_nobody_keeps_current_empty(store) -> None:
    store.write_run("unit", "2024-02-01", scores({}), run())
    store.write_run("unit", "2024-01-01", scores({"p1": 0.4}), run())
    assert store.read_scores("unit").empty
    assert store.read_scores("unit", as_of="2024-01-01")["profile_id"].tolist() == ["p1"]
    assert store.read_runs("unit")["as_of"].tolist() == ["2024-01-01", "2024-02-01"]
