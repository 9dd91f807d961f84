"""Run artifacts: atomic folder writes, reload, model version and the home folder."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from customer_ai import artifacts
from customer_ai.estimator import PropensityModel
from customer_ai.model import PlattCalibration, TrainedModel, fit_model

from conftest import hidden_entries, make_spec, synthetic_events, ts

AS_OF = pd.Timestamp("2024-01-31", tz="UTC")
AS_OF_EVENTS = ts("2011-06-01")  # inside the synthetic events


def tiny_problem(n: int, rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray]:
    x = rng.normal(size=n)
    channel = rng.choice(["app", "shop", "web"], size=n)
    logit = 2 * x + np.where(channel == "web", 1.0, -0.5)
    label = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame({"x": x, "channel": pd.Categorical(channel, categories=["app", "shop", "web"])}), label


@pytest.fixture(scope="module")
def trained() -> tuple[TrainedModel, pd.DataFrame]:
    rng = np.random.default_rng(2)
    train_x, train_y = tiny_problem(400, rng)
    valid_x, valid_y = tiny_problem(200, rng)
    return fit_model(train_x, train_y, valid_x, valid_y, params={"num_threads": 1}), valid_x


@pytest.fixture(scope="module")
def fitted() -> tuple[PropensityModel, pd.DataFrame]:
    """A propensity model fitted on synthetic events, and the feature matrix of its scoring date."""
    events = synthetic_events()
    spec = make_spec(training={"snapshots": 3, "min_positives": 20, "min_negatives": 20})
    estimator = PropensityModel(spec).fit(events, AS_OF_EVENTS)
    return estimator, estimator.features(events, AS_OF_EVENTS)


def test_run_dir_layout(tmp_path):
    assert artifacts.run_dir(tmp_path, "churn", AS_OF) == tmp_path / "artifacts" / "churn" / "2024-01-31"


def test_model_dir_layout(tmp_path):
    assert artifacts.model_dir(tmp_path, "churn", "20240131-abc") == tmp_path / "models" / "churn" / "20240131-abc"


def test_save_and_load_model_round_trip(tmp_path, fitted):
    estimator, matrix = fitted
    model = estimator.model_
    version = artifacts.model_version(model, AS_OF)
    folder = artifacts.save_model(tmp_path, "unit", estimator, {"instance": "unit", "model_version": version})

    assert folder == tmp_path / "models" / "unit" / version
    assert sorted(p.name for p in folder.iterdir()) == ["model.json", "model.txt"]
    loaded, meta = artifacts.load_model(folder, estimator.spec)
    assert meta["model_version"] == version
    assert meta["parameters"] == json.loads(json.dumps(model.params))
    assert meta["best_iteration"] == model.best_iteration
    assert meta["history"] == estimator.snapshot_plan_.to_dict()
    assert meta["validation"]["metrics"] == pytest.approx(estimator.metrics_, nan_ok=True)
    assert loaded.feature_plan_ == estimator.feature_plan_
    assert loaded.snapshot_plan_ == estimator.snapshot_plan_
    assert loaded.model_.features == model.features
    assert loaded.model_.calibration == model.calibration
    assert loaded.model_.best_iteration == model.best_iteration  # a booster read from a file reports -1 itself
    np.testing.assert_array_equal(loaded.predict_proba(matrix), estimator.predict_proba(matrix))
    assert loaded.explain(matrix) == estimator.explain(matrix)
    assert artifacts.model_version(loaded.model_, AS_OF) == version
    assert hidden_entries(folder.parent) == []


def test_saving_a_version_twice_keeps_the_first(tmp_path, fitted):
    estimator, _ = fitted
    version = artifacts.model_version(estimator.model_, AS_OF)
    artifacts.save_model(tmp_path, "unit", estimator, {"model_version": version, "attempt": 1})
    artifacts.save_model(tmp_path, "unit", estimator, {"model_version": version, "attempt": 2})
    assert artifacts.read_json(artifacts.model_dir(tmp_path, "unit", version) / "model.json")["attempt"] == 1
    assert hidden_entries(tmp_path / "models" / "unit") == []


def test_model_version_format_and_stability(trained):
    model, _ = trained
    version = artifacts.model_version(model, AS_OF)
    assert re.fullmatch(r"20240131-[0-9a-f]{10}", version)
    assert artifacts.model_version(model, AS_OF) == version
    later = artifacts.model_version(model, pd.Timestamp("2024-03-01"))
    assert later == "20240301-" + version.split("-")[1]


def test_model_version_changes_with_calibration(trained):
    model, _ = trained
    recalibrated = TrainedModel(
        booster=model.booster,
        calibration=PlattCalibration(model.calibration.slope, model.calibration.intercept + 0.01),
        features=model.features,
        categorical=model.categorical,
    )
    assert artifacts.model_version(recalibrated, AS_OF) != artifacts.model_version(model, AS_OF)


def test_default_home_honours_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("CUSTOMER_AI_HOME", str(tmp_path / "ai-home"))
    assert artifacts.default_home() == tmp_path / "ai-home"


def test_default_home_expands_user(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("CUSTOMER_AI_HOME", "~/custom")
    assert artifacts.default_home() == tmp_path / "custom"


@pytest.mark.parametrize("value", [None, ""])
def test_default_home_falls_back_to_user_folder(monkeypatch, tmp_path, value):
    monkeypatch.setenv("HOME", str(tmp_path))
    if value is None:
        monkeypatch.delenv("CUSTOMER_AI_HOME", raising=False)
    else:
        monkeypatch.setenv("CUSTOMER_AI_HOME", value)
    assert artifacts.default_home() == tmp_path / ".customer-ai"


def test_package_versions_names_python_and_dependencies():
    versions = artifacts.package_versions()
    assert {"python", "lightgbm", "pandas", "numpy", "customer-ai"} <= set(versions)
    assert versions["lightgbm"][0].isdigit()


def test_published_runs_are_the_dated_folders_with_scores_oldest_first(tmp_path: Path) -> None:
    root = tmp_path / "artifacts" / "demo"
    for name in ("2011-12-11", "2011-10-02", "2011-11-06", ".2011-12-18.staging", "2011-13-45", "notes"):
        (root / name).mkdir(parents=True)
        (root / name / "scores.parquet").write_bytes(b"")
    (root / "2011-12-25").mkdir()  # a run folder without scores: the run did not score
    dates = artifacts.published_runs(tmp_path, "demo")
    assert [f"{d:%Y-%m-%d}" for d in dates] == ["2011-10-02", "2011-11-06", "2011-12-11"]
    assert all(str(d.tz) == "UTC" for d in dates)
    assert artifacts.published_runs(tmp_path, "other") == []
