"""The file-based run steps: run folder contents, model reuse, the quality gate and validation failures."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from customer_ai import artifacts, steps
from customer_ai.flow import step_names
from customer_ai.store import SQLiteStore
from customer_ai.validation import DataValidationError

from conftest import RUN_FILES, make_events, make_spec, synthetic_events, ts

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
    folder = artifacts.staging_dir(tmp_path, "unit", AS_OF)  # a failed run's files stay in its staging folder
    result = json.loads((folder / "validation" / "events.json").read_text())
    assert result["success"] is False
    assert not (folder / "events.parquet").exists()
    assert not artifacts.run_dir(tmp_path, "unit", AS_OF).exists()


def test_score_takes_the_factor_count(first_run: tuple, events_file: Path) -> None:
    _, home, _ = first_run
    spec = make(events_file)
    steps.score(spec, AS_OF, home, factors=1)  # on its own after the run: works on a copy of the run folder
    assert {len(f) for f in steps.read_scores(spec, AS_OF, home)["factors"]} == {3}  # published: unchanged
    steps.publish(spec, AS_OF, home)
    assert {len(f) for f in steps.read_scores(spec, AS_OF, home)["factors"]} == {1}
    steps.score(spec, AS_OF, home)  # back to the instance's 3 for the other tests
    steps.publish(spec, AS_OF, home)


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


# --- a failed or concurrent run never destroys the last good one ---------------------------------------------------


def _published(home: Path) -> dict:
    folder = artifacts.run_dir(home, "unit", AS_OF)
    return {p.name: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def good_home(first_run: tuple, tmp_path: Path) -> tuple[Path, SQLiteStore]:
    """A home holding one good run as of AS_OF (a copy of the module's first run)."""
    import shutil

    _, home, _ = first_run
    copy = tmp_path / "home"
    shutil.copytree(home, copy)
    return copy, SQLiteStore(copy / "store.sqlite")


def test_a_failed_rerun_keeps_the_last_good_run_folder(good_home: tuple, events_file: Path, tmp_path: Path) -> None:
    # before: a re-run with bad events emptied the folder, leaving validation/ only; show still said ok
    home, store = good_home
    before, scores = _published(home), store.read_scores("unit")
    events = pd.read_parquet(events_file)
    bad = tmp_path / "future.parquet"
    pd.concat([events, events.iloc[:1].assign(timestamp=ts("2099-01-01"))]).to_parquet(bad, index=False)
    with pytest.raises(DataValidationError):
        steps.run(make(bad), AS_OF, home, store)
    assert _published(home) == before
    pd.testing.assert_frame_equal(store.read_scores("unit"), scores)
    assert (artifacts.staging_dir(home, "unit", AS_OF) / "validation" / "events.json").exists()  # to inspect


def test_a_poor_rerun_keeps_the_last_good_run_folder(good_home: tuple, events_file: Path) -> None:
    home, store = good_home
    before = _published(home)
    result = steps.run(make(events_file, min_auc=0.999), AS_OF, home, store)
    assert result.quality == "poor"
    assert result.artifact_dir == artifacts.staging_dir(home, "unit", AS_OF)
    assert _published(home) == before


def test_a_good_rerun_replaces_the_run_folder_and_leaves_no_staging(good_home: tuple, events_file: Path) -> None:
    home, store = good_home
    result = steps.run(make(events_file), AS_OF, home, store)
    assert result.artifact_dir == artifacts.run_dir(home, "unit", AS_OF)
    assert not [p.name for p in (home / "artifacts" / "unit").iterdir() if p.name.startswith(".2012")]


def test_a_second_run_of_the_instance_is_refused_while_one_runs(good_home: tuple, events_file: Path) -> None:
    # before: a second run into the same home failed with "events.parquet is missing" or mixed both runs' files
    home, store = good_home
    before = _published(home)
    with artifacts.instance_lock(home, "unit"):
        with pytest.raises(artifacts.RunInProgressError, match=r"another run of unit is in progress in .* \(process"):
            steps.run(make(events_file), AS_OF, home, store)
    assert _published(home) == before
    steps.run(make(events_file), ts("2012-01-08"), home, store)  # released: the next run goes ahead


def test_half_written_model_folders_are_never_reused(first_run: tuple, events_file: Path, tmp_path: Path) -> None:
    # before: a hidden staging folder left by a killed run was picked, then failed with FileNotFoundError
    import shutil

    result, home, _ = first_run
    trained = artifacts.read_json(result.artifact_dir / "model.json")
    copy = tmp_path / "home"
    shutil.copytree(home / "models", copy / "models")
    good = artifacts.model_dir(copy, "unit", trained["model_version"])
    later = {**artifacts.read_json(good / "model.json"), "as_of": "2012-01-05", "model_version": "20120105-x"}
    for name in (".20120105-x-abc123", "20120105-y"):  # a staging folder, and a folder without model.txt
        artifacts.write_json(copy / "models" / "unit" / name / "model.json", later)
    spec = make(events_file)
    assert steps.find_reusable_model(spec, ts("2012-01-08"), copy)["model_version"] == trained["model_version"]


def _scores_of(folder: Path) -> pd.DataFrame:
    return pd.read_parquet(folder / "scores.parquet").drop(columns=["model_version"])


def _run_script(home: Path, events_file: Path, kill_after: str | None = None) -> str:
    """Python code that runs the instance as of AS_OF in ``home``; it SIGKILLs itself after step ``kill_after``."""
    lines = [
        "import os, signal, sys; from pathlib import Path",
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})",
        "from test_steps import make, AS_OF",
        "from customer_ai import steps",
        "from customer_ai.store import SQLiteStore",
        f"home = Path({str(home)!r})",
    ]
    if kill_after is not None:
        lines += [
            f"real = steps.{kill_after}",
            "def dying(*args, **kwargs):",
            "    real(*args, **kwargs)",
            "    os.kill(os.getpid(), signal.SIGKILL)",
            f"steps.{kill_after} = dying",
        ]
    lines.append(f"steps.run(make(Path({str(events_file)!r})), AS_OF, home, SQLiteStore(home / 'store.sqlite'))")
    return "\n".join(lines) + "\n"


def _assert_killed_run_left_the_good_one_and_a_rerun_is_clean(
    home: Path, store: SQLiteStore, events_file: Path, clean: pd.DataFrame
) -> None:
    folder = artifacts.run_dir(home, "unit", AS_OF)
    pd.testing.assert_frame_equal(_scores_of(folder), clean)  # the old run, or the new one complete
    assert (folder / "metadata.json").exists()
    steps.run(make(events_file), AS_OF, home, store)  # the kernel released the lock of the killed run
    pd.testing.assert_frame_equal(_scores_of(folder), clean)
    stored = store.read_scores("unit", as_of="2012-01-01").set_index("profile_id")["probability"].sort_index()
    assert stored.to_dict() == clean.set_index("profile_id")["probability"].sort_index().to_dict()


@pytest.mark.e2e
@pytest.mark.parametrize("after", step_names())
def test_a_run_killed_after_any_step_leaves_the_last_good_run_and_a_rerun_equals_a_clean_run(
    good_home: tuple, events_file: Path, after: str
) -> None:
    import subprocess
    import sys

    home, store = good_home
    folder = artifacts.run_dir(home, "unit", AS_OF)
    clean = _scores_of(folder)
    killed = subprocess.run([sys.executable, "-c", _run_script(home, events_file, after)], check=False)
    assert killed.returncode == -9
    _assert_killed_run_left_the_good_one_and_a_rerun_is_clean(home, store, events_file, clean)


@pytest.mark.e2e
@pytest.mark.parametrize("seconds", [0.5, 2.0, 3.5, 5.0, 6.5])
def test_a_run_killed_at_any_point_leaves_the_last_good_run_and_a_rerun_equals_a_clean_run(
    good_home: tuple, events_file: Path, seconds: float
) -> None:
    import signal
    import subprocess
    import sys
    import time

    home, store = good_home
    folder = artifacts.run_dir(home, "unit", AS_OF)
    clean = _scores_of(folder)
    script = _run_script(home, events_file)
    process = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:  # the last good run stays readable throughout
        pd.testing.assert_frame_equal(_scores_of(folder), clean)
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    _assert_killed_run_left_the_good_one_and_a_rerun_is_clean(home, store, events_file, clean)


def test_a_window_inside_a_gap_of_the_events_is_named_as_such(events_file: Path, tmp_path: Path) -> None:
    events = pd.read_parquet(events_file)
    gap = events.loc[(events["timestamp"] < ts("2010-02-01")) | (events["timestamp"] >= ts("2012-01-01"))]
    path = tmp_path / "gap.parquet"
    gap.to_parquet(path, index=False)
    from customer_ai.events import EventsError

    with pytest.raises(EventsError, match=r"which lies in a gap of the events \(the events run from"):
        steps.validate_events(make(path), AS_OF, tmp_path)


@pytest.mark.parametrize(("as_of", "where"), [("2016-01-01", "after the events end"), ("2005-01-01", "before the")])
def test_a_date_the_events_do_not_cover_is_said_plainly(events_file: Path, tmp_path: Path, as_of: str, where: str):
    # before: "events end on (no events)" and then "0 positive and 0 negative examples"
    from customer_ai.events import EventsError

    with pytest.raises(EventsError) as info:
        steps.validate_events(make(events_file), ts(as_of), tmp_path)
    message = str(info.value)
    assert message.startswith(f"instance unit: no events before the as-of date {as_of} in the run's window [")
    assert where in message
    assert message.endswith("pick an as-of date the events cover")


def test_a_changed_definition_under_the_same_name_is_said(
    good_home: tuple, events_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    home, store = good_home
    changed = make(events_file, snapshots=3)
    with caplog.at_level("INFO", logger="customer_ai"):
        result = steps.run(changed, ts("2012-01-08"), home, store, force_retrain=False)
    assert re.search(r"the definition of unit changed since its run as of 2012-01-\d\d \(spec \w+ then", caplog.text)
    assert result.metadata["model_reused"] is False  # a model of the old definition is never reused
    assert f"model {result.metadata['model_version']} trained as of 2012-01-08, stored in" in caplog.text
    assert result.metadata["spec_hash"] == changed.spec_hash()


def test_the_steps_log_what_a_person_checks(good_home: tuple, events_file: Path, caplog: pytest.LogCaptureFixture):
    home, store = good_home
    with caplog.at_level("INFO", logger="customer_ai"):
        result = steps.run(make(events_file), ts("2012-01-22"), home, store, force_retrain=False)
    version = result.metadata["model_version"]
    assert f"model {version} reused: trained as of {result.metadata['model_trained_as_of']}" in caplog.text
    assert re.search(
        rf"quality gate: model {version}: held-out ROC AUC 0\.\d{{3}} against the gate of 0\.65, "
        rf"calibration error 0\.\d{{3}}: ok",
        caplog.text,
    )
    buckets = result.metadata["buckets"]
    assert (
        f"scored {result.metadata['scored_profiles']:,} profiles: low {buckets['low']:,}, "
        f"medium {buckets['medium']:,}, high {buckets['high']:,}"
    ) in caplog.text


# --- did it come true ------------------------------------------------------------------------------------------


def _past_scores(rows: list[tuple]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["profile_id", "probability", "score", "percentile", "bucket"])
    return frame.assign(propensity="conversion", model_version="m1", factors=[[] for _ in rows])


def _ok(metrics: dict | None = None) -> dict:
    return {"model_version": "m1", "status": "ok", "reason": "fine", "metrics": metrics or {}}


def test_outcomes_are_tracked_once_for_past_runs_whose_goal_window_closed(tmp_path: Path) -> None:
    spec = make_spec()  # goal: a purchase within 30 days
    now = ts("2011-10-10")
    events = make_events(
        [
            ("a", "2011-09-05", "purchase"),  # inside [2011-09-01, 2011-10-01)
            ("c", "2011-10-02", "purchase"),  # after that window; the events reach its last day
        ]
    )
    artifacts.write_frame(artifacts.staging_dir(tmp_path, spec.name, now) / "events.parquet", events)
    store = SQLiteStore(tmp_path / "store.sqlite")
    scored = _past_scores([("a", 0.7, 70, 100, "high"), ("b", 0.4, 40, 67, "medium"), ("c", 0.1, 10, 34, "low")])
    store.write_run(spec.name, "2011-09-01", scored, _ok())  # window closed on 2011-10-01: due
    store.write_run(spec.name, "2011-09-20", scored, _ok())  # window closes on 2011-10-20: still open
    store.record_run(spec.name, "2011-08-01", {**_ok(), "status": "poor"})  # scored nobody: nothing to track

    result = steps.track_outcomes(spec, now, tmp_path, store)

    assert result == {"tracked": ["2011-09-01"], "skipped": {}}
    outcomes = store.read_outcomes(spec.name)
    assert set(outcomes["as_of"]) == {"2011-09-01"}
    came_true = dict(zip(outcomes["group"], outcomes["realised_rate"], strict=True))
    assert came_true == {"all": 1 / 3, "low": 0.0, "medium": 0.0, "high": 1.0, "1": 1.0, "4": 0.0, "7": 0.0}
    # a later run does not track it again
    assert steps.track_outcomes(spec, now, tmp_path, store) == {"tracked": [], "skipped": {}}


def test_a_past_run_that_scored_another_goal_is_not_tracked(tmp_path: Path) -> None:
    spec = make_spec()
    now = ts("2011-10-10")
    events = make_events([("a", "2011-09-05", "purchase"), ("a", "2011-10-05", "purchase")])
    artifacts.write_frame(artifacts.staging_dir(tmp_path, spec.name, now) / "events.parquet", events)
    then = artifacts.run_dir(tmp_path, spec.name, ts("2011-09-01"))
    artifacts.write_json(then / "metadata.json", {"goal": "will buy a gift card within 7 days"})
    store = SQLiteStore(tmp_path / "store.sqlite")
    store.write_run(spec.name, "2011-09-01", _past_scores([("a", 0.7, 70, 100, "high")]), _ok())

    result = steps.track_outcomes(spec, now, tmp_path, store)

    assert result == {
        "tracked": [],
        "skipped": {"2011-09-01": "it scored another goal (will buy a gift card within 7 days)"},
    }
    assert store.read_outcomes(spec.name).empty
