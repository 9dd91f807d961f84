"""The file-based run steps: run folder contents, model reuse, the quality gate and validation failures."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from customer_ai import artifacts, steps
from customer_ai.store import SQLiteStore
from customer_ai.validation import DataValidationError

from conftest import RUN_FILES, make_spec, synthetic_events, ts

AS_OF = ts("2012-01-01")
PURCHASE = {"field": "event_type", "op": "eq", "value": "purchase"}


@pytest.fixture(scope="module")
def events_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("events") / "events.parquet"
    synthetic_events(days=800).to_parquet(path, index=False)
    return path


def make(events_file: Path, **training: object):
    settings = {"snapshots": 4, "snapshot_every_days": 30, "min_positives": 50, "min_negatives": 50, **training}
    return make_spec(
        events={"path": str(events_file)},
        eligibility={"lookback_days": 365, "events": [{"where": [PURCHASE]}]},
        training=settings,
        output={"factors": 3},
    )


@pytest.fixture(scope="module")
def first_run(events_file: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple:
    home = tmp_path_factory.mktemp("home")
    store = SQLiteStore(home / "store.sqlite")
    result = steps.run(make(events_file), AS_OF, home, store)
    return result, home, store


def test_run_folder_holds_each_steps_output(first_run: tuple) -> None:
    result, home, _ = first_run
    folder = result.artifact_dir
    assert folder == home / "artifacts" / "unit" / "2012-01-01"
    assert sorted(p.name for p in folder.iterdir()) == RUN_FILES
    assert sorted(p.name for p in (folder / "validation").iterdir()) == [
        "events.json",
        "scores.json",
        "training_set.json",
    ]
    meta = result.metadata
    assert meta["as_of"] == "2012-01-01"
    assert meta["quality"]["status"] == "ok"
    assert meta["model_reused"] is False
    assert meta["scored_profiles"] == len(result.scores)
    model = artifacts.read_json(folder / "model.json")
    assert (home / "models" / "unit" / model["model_version"] / "model.txt").exists()
    assert model["windows"]["snapshots"] == ["2011-12-02", "2011-11-02", "2011-10-03", "2011-09-03"]


def test_the_run_only_keeps_events_of_its_window(first_run: tuple, events_file: Path) -> None:
    result, _, _ = first_run
    kept = pd.read_parquet(result.artifact_dir / "events.parquet")
    assert kept["timestamp"].max() < AS_OF
    # oldest snapshot 2011-09-03 minus the 365-day lookback
    assert kept["timestamp"].min() >= ts("2010-09-03")
    assert (pd.read_parquet(events_file)["timestamp"] >= AS_OF).any()  # the source has later events, the run not


def test_scores_land_in_the_store(first_run: tuple) -> None:
    result, _, store = first_run
    stored = store.read_scores("unit")
    assert len(stored) == len(result.scores)
    assert store.read_runs("unit")["status"].tolist() == ["ok"]
    assert all(len(f) <= 3 for f in stored["factors"])


def test_a_model_is_reused_until_retraining_is_due(first_run: tuple, events_file: Path) -> None:
    result, home, store = first_run
    spec = make(events_file)
    trained = artifacts.read_json(result.artifact_dir / "model.json")
    week_later = steps.run(spec, ts("2012-01-08"), home, store, force_retrain=False)
    assert week_later.metadata["model_reused"] is True
    assert week_later.metadata["model_version"] == trained["model_version"]
    assert not (week_later.artifact_dir / "training_set.parquet").exists()
    assert steps.find_reusable_model(spec, ts("2012-01-30"), home)["model_version"] == trained["model_version"]
    assert steps.find_reusable_model(spec, ts("2012-01-31"), home) is None  # 30 days after: due
    assert steps.find_reusable_model(spec, ts("2011-12-31"), home) is None  # a model from the future: never
    other_goal = make(events_file, snapshots=3)
    assert steps.find_reusable_model(other_goal, ts("2012-01-08"), home) is None
    strict = make(events_file, min_auc=0.999)
    assert steps.find_reusable_model(strict, ts("2012-01-08"), home) is None
    never = make(events_file, retrain_every_days=0)
    assert steps.find_reusable_model(never, ts("2012-01-08"), home) is None


def test_force_retrain_trains_a_new_model(first_run: tuple, events_file: Path) -> None:
    _, home, store = first_run
    forced = steps.run(make(events_file), ts("2012-01-15"), home, store, force_retrain=True)
    assert forced.metadata["model_reused"] is False
    assert forced.metadata["model_trained_as_of"] == "2012-01-15"


def test_a_poor_model_is_recorded_and_keeps_the_previous_scores(events_file: Path, tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "store.sqlite")
    spec = make(events_file)
    steps.run(spec, AS_OF, tmp_path, store)
    before = store.read_scores("unit")
    strict = make(events_file, min_auc=0.999)
    result = steps.run(strict, ts("2012-01-08"), tmp_path, store)
    assert result.quality == "poor"
    assert result.written_to_store is False
    pd.testing.assert_frame_equal(store.read_scores("unit"), before)
    runs = store.read_runs("unit")
    assert runs["status"].tolist() == ["ok", "poor"]
    assert "is poor: validation ROC AUC" in runs["reason"].iloc[-1]
    assert "the previous scores are kept" in runs["reason"].iloc[-1]
    with pytest.raises(steps.QualityGateError, match="below the quality gate of 0.999"):
        steps.quality_gate(spec, ts("2012-01-08"), tmp_path, store, min_auc=0.999)


def test_events_from_the_future_fail_validation_before_training(events_file: Path, tmp_path: Path) -> None:
    events = pd.read_parquet(events_file)
    future = events.iloc[:1].assign(timestamp=pd.Timestamp("2099-01-01", tz="UTC"))
    bad = tmp_path / "bad.parquet"
    pd.concat([events, future]).to_parquet(bad, index=False)
    spec = make(bad)
    with pytest.raises(DataValidationError, match="timestamp"):
        steps.validate_events(spec, AS_OF, tmp_path)
    folder = artifacts.run_dir(tmp_path, "unit", AS_OF)
    result = json.loads((folder / "validation" / "events.json").read_text())
    assert result["success"] is False
    assert not (folder / "events.parquet").exists()


def test_score_takes_the_factor_count(first_run: tuple, events_file: Path) -> None:
    _, home, _ = first_run
    spec = make(events_file)
    steps.score(spec, AS_OF, home, factors=1)
    assert {len(f) for f in steps.read_scores(spec, AS_OF, home)["factors"]} == {1}
    steps.score(spec, AS_OF, home)  # back to the instance's 3 for the other tests


def test_missing_earlier_step_names_what_to_run(events_file: Path, tmp_path: Path) -> None:
    spec = make(events_file)
    with pytest.raises(FileNotFoundError, match="run the validate_events step"):
        steps.build_training_set(spec, AS_OF, tmp_path)


def test_a_users_own_suite_from_the_instance_runs_after_the_built_in_one(events_file: Path, tmp_path: Path) -> None:
    suite = {
        "name": "our_scores_rules",
        "expectations": [
            {"type": "expect_column_max_to_be_between", "kwargs": {"column": "probability", "max_value": 0.5}},
        ],
    }
    (tmp_path / "our_scores_rules.json").write_text(json.dumps(suite))
    spec = make(events_file).model_copy(
        update={
            "validation": make(events_file).validation.model_copy(update={"scores": ["our_scores_rules.json"]}),
            "base_dir": tmp_path,
        }
    )
    steps.validate_events(spec, AS_OF, tmp_path)
    steps.build_training_set(spec, AS_OF, tmp_path)
    steps.train(spec, AS_OF, tmp_path)
    steps.score(spec, AS_OF, tmp_path)
    with pytest.raises(DataValidationError) as caught:
        steps.validate_scores(spec, AS_OF, tmp_path)
    summary = str(caught.value)
    assert "scores: all 18 expectations passed" in summary
    assert "our_scores_rules: 1 of 1 expectations failed" in summary
    assert "- expect_column_max_to_be_between on probability: observed 0." in summary
