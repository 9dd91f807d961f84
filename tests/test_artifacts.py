"""Run artifacts: atomic folder writes, reload, model version and the home folder."""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from faults import failing_writes

from customer_ai import artifacts, files
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


def test_date_staging_and_run_folder_layout(tmp_path):
    date = tmp_path / "artifacts" / "churn" / "2024-01-31"
    assert artifacts.date_dir(tmp_path, "churn", AS_OF) == date
    assert artifacts.staging_dir(tmp_path, "churn", AS_OF) == date / ".local.staging"
    assert artifacts.staging_dir(tmp_path, "churn", AS_OF, "cli-0123456789") == date / ".cli-0123456789.staging"
    assert artifacts.run_dir(tmp_path, "churn", AS_OF, "cli-0123456789") == date / "cli-0123456789"
    assert artifacts.run_dir(tmp_path, "churn", AS_OF, "af-0123456789.12") == date / "af-0123456789.12"
    assert artifacts.run_dir(tmp_path, "churn", AS_OF, "") == date  # a run published before runs had names


@pytest.mark.parametrize(
    "run_id", ["../x", "..", ".", "a/b", "/tmp", ".local.staging", "cli-1.0", "cli-1.02", "cli-1.", "CLI-1", "a--b"]
)
def test_a_run_id_that_is_not_a_run_folder_name_is_refused(tmp_path, run_id):
    with pytest.raises(ValueError, match="is not the name of a run folder"):
        artifacts.run_dir(tmp_path, "churn", AS_OF, run_id)


def test_new_attempt_ids_are_fresh_and_name_their_kind():
    ids = [artifacts.new_attempt_id() for _ in range(200)]
    assert all(re.fullmatch(r"cli-[0-9a-f]{10}", i) for i in ids), ids[:3]
    assert len(set(ids)) == 200
    assert re.fullmatch(r"af-[0-9a-f]{10}", artifacts.new_attempt_id("af"))
    assert artifacts.DEFAULT_ATTEMPT == "local"


def test_an_attempt_id_is_a_fixed_digest_of_its_parts():
    dag_run = ("customer_ai_repurchase_30d", "scheduled__2011-12-11T00:00:00+00:00")
    assert artifacts.attempt_id(*dag_run) == "af-7a7eb3b1b5"  # the same in every task, try and process
    assert artifacts.attempt_id(*dag_run, kind="x") == "x-7a7eb3b1b5"
    assert artifacts.attempt_id("customer_ai_repurchase_30d", "manual__2011-12-11") != "af-7a7eb3b1b5"
    assert artifacts.attempt_id("a", "b") != artifacts.attempt_id("ab")  # the parts are kept apart
    assert artifacts.staging_dir(Path("h"), "i", AS_OF, artifacts.attempt_id(*dag_run)).name == ".af-7a7eb3b1b5.staging"


@pytest.mark.parametrize("attempt", ["", "CLI-1", "cli_1", "cli-", "-cli", "cli--1", "../x", "a/b", "cli-1.2", "é"])
def test_a_bad_attempt_id_is_refused(tmp_path, attempt):
    with pytest.raises(ValueError, match="is neither a kind and 10 hex digits"):
        artifacts.staging_dir(tmp_path, "churn", AS_OF, attempt)


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


def _folder(path: Path, *files: str) -> Path:
    path.mkdir(parents=True)
    for name in files:
        (path / name).write_text(name)
    return path


def test_sealing_names_the_folder_after_its_attempt_then_numbers_the_next_seals(tmp_path: Path) -> None:
    date = artifacts.date_dir(tmp_path, "unit", AS_OF)
    _folder(date / "cli-000000000b", "x")  # another attempt's sealed run
    names = []
    for seal in range(3):
        staging = _folder(artifacts.staging_dir(tmp_path, "unit", AS_OF, "cli-000000000a"), f"seal-{seal}")
        final = artifacts.next_seal(staging, "cli-000000000a")
        assert artifacts.seal(staging, final) == final
        assert not staging.exists()
        assert sorted(p.name for p in final.iterdir()) == [f"seal-{seal}"]  # the staging folder, whole
        names.append(final.name)
    assert names == ["cli-000000000a", "cli-000000000a.2", "cli-000000000a.3"]
    assert sorted(p.name for p in date.iterdir()) == [
        "cli-000000000a",
        "cli-000000000a.2",
        "cli-000000000a.3",
        "cli-000000000b",
    ]


def test_a_seal_number_follows_the_highest_one_left_not_the_first_free_one(tmp_path: Path) -> None:
    # a cleared Airflow DAG run keeps its attempt: once its first folder is removed, that name is not given again
    date = artifacts.date_dir(tmp_path, "unit", AS_OF)
    _folder(date / "cli-000000000a.2", "x")
    _folder(date / "cli-000000000a.7.staging-not-a-seal", "x")
    staging = _folder(artifacts.staging_dir(tmp_path, "unit", AS_OF, "cli-000000000a"), "y")
    assert artifacts.next_seal(staging, "cli-000000000a").name == "cli-000000000a.3"
    assert artifacts.next_seal(staging, "cli-000000000b").name == "cli-000000000b"


def test_a_seal_never_replaces_a_sealed_folder(tmp_path: Path) -> None:
    date = artifacts.date_dir(tmp_path, "unit", AS_OF)
    sealed = _folder(date / "cli-000000000a", "old")
    staging = _folder(artifacts.staging_dir(tmp_path, "unit", AS_OF, "cli-000000000a"), "new")
    with pytest.raises(FileExistsError, match="cli-000000000a exists: a sealed run folder is never replaced"):
        artifacts.seal(staging, sealed)
    assert sorted(p.name for p in sealed.iterdir()) == ["old"]
    assert sorted(p.name for p in staging.iterdir()) == ["new"]


def test_sealed_runs_are_one_attempts_folders_in_the_order_sealed(tmp_path: Path) -> None:
    assert artifacts.sealed_runs(tmp_path, "unit", AS_OF, "cli-000000000a") == []  # no folder of the date yet
    date = artifacts.date_dir(tmp_path, "unit", AS_OF)
    for name in (
        "cli-000000000a.10",
        "cli-000000000a.2",
        "cli-000000000a",
        "cli-000000000a.3",
        "cli-000000000b",
        "cli-000000000a-b",
        ".cli-000000000a.staging",
        "validation",
    ):
        _folder(date / name)
    (date / "cli-000000000a.4").write_text("a file, not a run folder")
    found = artifacts.sealed_runs(tmp_path, "unit", AS_OF, "cli-000000000a")
    assert [p.name for p in found] == [
        "cli-000000000a",
        "cli-000000000a.2",
        "cli-000000000a.3",
        "cli-000000000a.10",
    ]  # by number, not by name
    assert [p.name for p in artifacts.sealed_runs(tmp_path, "unit", AS_OF, "cli-000000000b")] == ["cli-000000000b"]
    assert artifacts.sealed_runs(tmp_path, "unit", AS_OF, "local") == []


def test_clear_abandoned_removes_staging_and_unpublished_run_folders_only(tmp_path: Path) -> None:
    instance = tmp_path / "artifacts" / "unit"
    date = artifacts.date_dir(tmp_path, "unit", AS_OF)
    # files of a run published in the date's folder itself, before run folders had names
    _folder(date, "scores.parquet", "metadata.json")
    _folder(date / "validation", "events.json")
    _folder(date / "scoring", "plan.json")
    _folder(date / "cli-000000000a", "scores.parquet")  # the published run
    _folder(date / "cli-000000000b", "scores.parquet")  # replaced by a later run of the date
    _folder(date / "af-0123456789.2", "scores.parquet")  # sealed, killed before its commit
    _folder(date / ".cli-000000000c.staging", "events.parquet")  # another attempt's work
    _folder(date / ".local.staging")
    _folder(date / "my_notes", "todo.txt")  # not a run folder's name: not the run's to remove
    (date / "cli-d").write_text("a file")  # not a folder
    _folder(instance / ".2024-01-31.staging", "events.parquet")  # the staging folder of earlier versions
    _folder(instance / ".2024-02-01.staging")  # another date's

    removed = artifacts.clear_abandoned(tmp_path, "unit", AS_OF, {"cli-000000000a"})

    assert removed == [
        ".2024-01-31.staging",
        ".cli-000000000c.staging",
        ".local.staging",
        "af-0123456789.2",
        "cli-000000000b",
    ]
    assert sorted(p.name for p in date.iterdir()) == [
        "cli-000000000a",
        "cli-d",
        "metadata.json",
        "my_notes",
        "scores.parquet",
        "scoring",
        "validation",
    ]
    assert sorted(p.name for p in (date / "cli-000000000a").iterdir()) == ["scores.parquet"]
    assert sorted(p.name for p in (date / "validation").iterdir()) == ["events.json"]
    assert sorted(p.name for p in instance.iterdir()) == [".2024-02-01.staging", "2024-01-31"]
    assert artifacts.clear_abandoned(tmp_path, "unit", AS_OF, {"cli-000000000a"}) == []  # nothing left to remove
    assert artifacts.clear_abandoned(tmp_path, "unit", AS_OF, set()) == [
        "cli-000000000a"
    ]  # nothing published: it goes too


def test_clear_abandoned_of_a_date_without_folders(tmp_path: Path) -> None:
    assert artifacts.clear_abandoned(tmp_path, "unit", AS_OF, set()) == []
    _folder(tmp_path / "artifacts" / "unit" / ".2024-01-31.staging")
    assert artifacts.clear_abandoned(tmp_path, "unit", AS_OF, set()) == [".2024-01-31.staging"]
    assert sorted(p.name for p in (tmp_path / "artifacts" / "unit").iterdir()) == []


def test_published_folders_follow_the_stores_run_rows(tmp_path: Path) -> None:
    runs = pd.DataFrame(
        {
            "instance": ["demo", "demo"],
            "as_of": ["2011-11-06", "2011-12-11"],
            "status": ["ok", "ok"],
            "run_id": ["", "cli-0123456789.2"],
        }
    )
    root = tmp_path / "artifacts" / "demo"
    assert artifacts.published_folders(tmp_path, "demo", runs) == {
        "2011-11-06": root / "2011-11-06",  # published before runs had names: the date's folder
        "2011-12-11": root / "2011-12-11" / "cli-0123456789.2",
    }
    assert artifacts.published_folders(tmp_path, "demo", runs.iloc[:0]) == {}
    with pytest.raises(ValueError, match="'../../x' is not the name of a run folder"):
        artifacts.published_folders(tmp_path, "demo", runs.assign(run_id=["", "../../x"]))


def test_save_model_keeps_the_evaluation_in_the_same_folder(tmp_path, fitted):
    estimator, _ = fitted
    version = artifacts.model_version(estimator.model_, AS_OF)
    evaluation = {"model_version": version, "rows": 3, "scorers": {"model": {"auc": 0.75}}}
    folder = artifacts.save_model(tmp_path, "unit", estimator, {"model_version": version}, evaluation)
    assert sorted(p.name for p in folder.iterdir()) == ["evaluation.json", "model.json", "model.txt"]
    assert artifacts.read_json(folder / "evaluation.json") == evaluation
    # readable by other users of a shared home, as an ordinary new folder and its files are (mkdtemp's was 0700)
    assert stat.S_IMODE(folder.stat().st_mode) == files.FOLDER_MODE
    assert {stat.S_IMODE(p.stat().st_mode) & 0o444 for p in folder.iterdir()} == {files.FILE_MODE & 0o444}
    # a folder of that version is kept as it is, evaluation included
    artifacts.save_model(tmp_path, "unit", estimator, {"model_version": version}, {"model_version": version})
    assert artifacts.read_json(folder / "evaluation.json") == evaluation
    assert hidden_entries(folder.parent) == []


def test_a_model_whose_evaluation_cannot_be_written_is_not_stored(tmp_path, fitted, monkeypatch):
    estimator, _ = fitted
    version = artifacts.model_version(estimator.model_, AS_OF)

    tried = []

    def full_disk(path: Path, data: dict) -> None:
        tried.append(path.name)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(artifacts, "write_json", full_disk)
    with pytest.raises(OSError, match="No space left on device"):
        artifacts.save_model(tmp_path, "unit", estimator, {"model_version": version}, {"model_version": version})
    assert tried == ["evaluation.json"]  # the model itself was written
    assert list((tmp_path / "models" / "unit").iterdir()) == []  # no model folder without its evaluation


# --- broken model folders ----------------------------------------------------------------------------------------


def _saved(home: Path, fitted: tuple) -> Path:
    estimator, _ = fitted
    version = artifacts.model_version(estimator.model_, AS_OF)
    evaluation = {"model_version": version, "rows": 3, "scorers": {"model": {"auc": 0.75}}}
    return artifacts.save_model(home, "unit", estimator, {"model_version": version, "as_of": "2024-01-31"}, evaluation)


def _change_a_byte_in_a_tree(data: bytes) -> bytes:
    at = data.index(b"Tree=0")
    at = data.index(b"threshold=", at) + len(b"threshold=")
    return data[:at] + (b"7" if data[at : at + 1] != b"7" else b"8") + data[at + 1 :]


def _json_with(data: bytes, **changes: object) -> bytes:
    return json.dumps({**json.loads(data), **changes}).encode()


def _json_without(data: bytes, key: str) -> bytes:
    return json.dumps({k: v for k, v in json.loads(data).items() if k != key}).encode()


# file, how it is broken, and what is said about it (before: a JSONDecodeError, a KeyError or a LightGBMError, and
# LightGBM crashed the whole process on a model.txt with a byte changed inside a tree or cut in half)
FOLDER_FAULTS = {
    "model.txt cut in half": ("model.txt", lambda d: d[: len(d) // 2], "is cut short: the end of a LightGBM model"),
    "model.txt with a byte changed": ("model.txt", _change_a_byte_in_a_tree, "its content (with the calibration in "),
    "model.txt garbage": ("model.txt", lambda d: b"\x00\xff" * 100, "is not a LightGBM model: byte 0xff at offset 1"),
    "model.json cut short": ("model.json", lambda d: d[:100], "is not valid JSON ("),
    "model.json without calibration": (
        "model.json",
        lambda d: _json_without(d, "calibration"),
        "lacks the key 'calibration.slope'",
    ),
    "model.json of another version": (
        "model.json",
        lambda d: _json_with(d, model_version="20240131-0000000000"),
        "names the version '20240131-0000000000', not ",
    ),
    "evaluation.json garbage": ("evaluation.json", lambda d: b"\x13\x37", "is not valid JSON (Expecting value: line 1"),
    "evaluation.json empty": ("evaluation.json", lambda d: b"", "is empty (0 bytes)"),
    "evaluation.json without scorers": (
        "evaluation.json",
        lambda d: _json_without(d, "scorers"),
        "lacks the key 'scorers'",
    ),
}
BROKEN = re.compile(r"(?P<version>20240131-[0-9a-f]{10})\.broken-[0-9]{8}T[0-9]{6}Z")


@pytest.mark.parametrize("fault", sorted(FOLDER_FAULTS))
def test_a_broken_model_folder_is_moved_aside_when_loaded(tmp_path, fitted, caplog, fault):
    name, change, problem = FOLDER_FAULTS[fault]
    folder = _saved(tmp_path, fitted)
    (folder / name).write_bytes(change((folder / name).read_bytes()))
    assert artifacts.model_problem(folder).startswith(f"{folder / name}: {problem}")
    with caplog.at_level("WARNING", logger="customer_ai"), pytest.raises(artifacts.BrokenModelError) as raised:
        artifacts.load_model(folder, fitted[0].spec)
    (aside,) = [p for p in folder.parent.iterdir() if p.name != folder.name]
    assert BROKEN.fullmatch(aside.name)["version"] == folder.name
    assert not folder.exists()
    said = artifacts.model_problem(aside, version=folder.name)  # what is wrong, kept for inspection
    assert said.startswith(f"{aside / name}: {problem}")
    assert str(raised.value) == (
        f"model {folder.name} is broken: {folder / name}: {said.split(': ', 1)[1]}; its folder was moved aside to "
        f"{aside}; run again to train a new model"
    )
    assert (
        f"model {folder.name} is broken: {folder / name}: {said.split(': ', 1)[1]}; its folder was moved aside to "
        f"{aside} (kept for inspection, never used again)"
    ) in caplog.text
    assert artifacts.model_folders(tmp_path, "unit") == []  # never listed, reused or loaded again


def test_a_whole_model_folder_reads_back(tmp_path, fitted):
    folder = _saved(tmp_path, fitted)
    assert artifacts.model_problem(folder) is None
    assert artifacts.model_problem(folder, evaluation=True) is None
    assert artifacts.usable_model(folder)
    assert artifacts.model_folders(tmp_path, "unit") == [folder]
    (folder / "evaluation.json").unlink()  # models stored before evaluations existed have none
    assert artifacts.model_problem(folder) is None
    assert artifacts.model_problem(folder, evaluation=True) == f"{folder / 'evaluation.json'}: is missing"
    for name in (f".{folder.name}-abc123", "notes", f"{folder.name}.broken-20240101T000000Z"):
        (folder.parent / name).mkdir()
    assert artifacts.model_folders(tmp_path, "unit") == [folder]


@pytest.mark.parametrize("name", ["model.txt", "model.json", "evaluation.json"])
def test_save_model_replaces_a_broken_folder_of_its_version(tmp_path, fitted, caplog, name):
    # before: the broken folder was kept ("a folder of that version is kept"), so every run of its date failed
    folder = _saved(tmp_path, fitted)
    good = {p.name: p.read_bytes() for p in folder.iterdir()}
    (folder / name).write_bytes(good[name][:50])
    with caplog.at_level("WARNING", logger="customer_ai"):
        assert _saved(tmp_path, fitted) == folder
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == good
    (aside,) = [p for p in folder.parent.iterdir() if p.name != folder.name]
    assert BROKEN.fullmatch(aside.name)["version"] == folder.name
    assert (aside / name).read_bytes() == good[name][:50]
    assert f"model {folder.name} is broken: {folder / name}: " in caplog.text
    assert hidden_entries(folder.parent) == []


@pytest.mark.parametrize("fault", ["full disk", "file size limit"])
def test_a_model_the_machine_cannot_write_names_model_txt_and_the_reason(tmp_path, fitted, fault):
    # before: LightGBMError "Cannot write binary data to ..., wrote 8192 of N bytes", with no reason
    estimator, _ = fitted
    version = artifacts.model_version(estimator.model_, AS_OF)
    home = tmp_path / "home"
    with failing_writes(fault, home, 8192) as (code, text):
        with pytest.raises(OSError, match="Errno") as raised:
            artifacts.save_model(home, "unit", estimator, {"model_version": version}, {"model_version": version})
        assert (raised.value.errno, raised.value.strerror) == (code, text)
        assert re.fullmatch(rf"{home}/models/unit/\.{version}-[^/]+/model\.txt", raised.value.filename)
        assert list((home / "models" / "unit").iterdir()) == []  # no model folder, no staging folder


# --- a goal with a value: its value model is stored, versioned and checked with the model ----------------------


@pytest.fixture(scope="module")
def valued() -> tuple[PropensityModel, pd.DataFrame]:
    """A model of a goal with a value (purchases' ``value``), and the feature matrix of its scoring date."""
    events = synthetic_events()
    goal = {**make_spec().goal.model_dump(mode="json"), "value": {"field": "value"}}
    spec = make_spec(goal=goal, training={"snapshots": 3, "min_positives": 20, "min_negatives": 20})
    estimator = PropensityModel(spec).fit(events, AS_OF_EVENTS)
    return estimator, estimator.features(events, AS_OF_EVENTS)


def test_a_value_model_is_stored_and_versioned_with_its_propensity_model(tmp_path, valued):
    estimator, matrix = valued
    value = estimator.value_model_
    assert value is not None
    metrics = estimator.describe()["value"]["metrics"]
    assert metrics["normalised_gini"] > metrics["baselines"]["past_spend"]["normalised_gini"] - 0.1
    version = artifacts.model_version(estimator.model_, AS_OF, value)
    assert version != artifacts.model_version(estimator.model_, AS_OF)  # its trees are part of the version
    folder = artifacts.save_model(tmp_path, "unit", estimator, {"instance": "unit", "model_version": version})
    assert sorted(p.name for p in folder.iterdir()) == ["model.json", "model.txt", "value_model.txt"]
    loaded, meta = artifacts.load_model(folder, estimator.spec)
    assert meta["value"]["scale"] == value.scale
    np.testing.assert_array_equal(loaded.value_model_.predict(matrix), value.predict(matrix))
    assert artifacts.model_version(loaded.model_, AS_OF, loaded.value_model_) == version
    assert loaded.value_model_.start == value.start  # where its boosting started, read back
    assert loaded.value_model_.best_iteration == value.best_iteration  # a booster read back says -1: all its trees
    assert meta["value"]["features"] == value.features
    assert "goal_value_per_30d" in value.features
    assert "goal_value_per_30d" not in loaded.model_.features  # the chance is the same with a value or without
    # the start is part of the version: a changed floor in model.json is found
    saved = (folder / "model.json").read_text()
    moved = json.loads(saved)
    moved["value"]["start"]["floor"] += 1.0
    (folder / "model.json").write_text(json.dumps(moved))
    assert "its content (with the calibration in model.json) hashes to" in artifacts.model_problem(folder)
    (folder / "model.json").write_text(saved)
    assert artifacts.model_problem(folder) is None
    # a byte changed in the value model's trees is found like one in model.txt's
    path = folder / "value_model.txt"
    path.write_bytes(_change_a_byte_in_a_tree(path.read_bytes()))
    assert "its content (with the calibration in model.json) hashes to" in artifacts.model_problem(folder)
    path.unlink()
    assert artifacts.model_problem(folder) == f"{path}: is missing"


def test_a_timing_model_is_stored_and_versioned_with_its_propensity_model(tmp_path):
    events = synthetic_events()
    spec = make_spec(output={"timing": True}, training={"snapshots": 3, "min_positives": 20, "min_negatives": 20})
    estimator = PropensityModel(spec).fit(events, AS_OF_EVENTS)
    timing = estimator.timing_model_
    version = artifacts.model_version(estimator.model_, AS_OF, None, timing)
    assert version != artifacts.model_version(estimator.model_, AS_OF)  # its trees are part of the version
    folder = artifacts.save_model(tmp_path, "unit", estimator, {"instance": "unit", "model_version": version})
    assert sorted(p.name for p in folder.iterdir()) == ["model.json", "model.txt", "timing_model.txt"]
    loaded, meta = artifacts.load_model(folder, spec)
    matrix = estimator.features(events, AS_OF_EVENTS)
    np.testing.assert_array_equal(loaded.timing_model_.curves(matrix), timing.curves(matrix))
    assert meta["timing"]["learned_intervals"] == timing.learned_intervals
    assert artifacts.model_version(loaded.model_, AS_OF, None, loaded.timing_model_) == version
    path = folder / "timing_model.txt"
    path.write_bytes(_change_a_byte_in_a_tree(path.read_bytes()))
    assert "its content (with the calibration in model.json) hashes to" in artifacts.model_problem(folder)


def test_a_model_without_a_value_keeps_its_version_and_files(fitted):
    estimator, _ = fitted
    assert estimator.value_model_ is None
    assert "value" not in estimator.describe()
    assert artifacts.model_version(estimator.model_, AS_OF, None) == artifacts.model_version(estimator.model_, AS_OF)
