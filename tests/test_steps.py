"""The file-based run steps: run folder contents, model reuse, the quality gate, validation failures, the commit point.

The kill tests run a whole run in a subprocess and SIGKILL it at every step boundary, inside the seal, the store
write and the report, and at random moments, with the SQLite and the PostgreSQL store: every reader must then see
exactly the previous run or exactly the new one, and a re-run must equal a clean run.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from customer_ai import artifacts, steps
from customer_ai.drift import DriftStopError
from customer_ai.event_split import read_all_parts
from customer_ai.features import FEATURES_VERSION
from customer_ai.flow import step_names
from customer_ai.outcomes import read_tracked
from customer_ai.saved_audiences import SavedAudience
from customer_ai.spec import MonitoringSettings, ScoringSettings
from customer_ai.store import SQLiteStore
from customer_ai.store.lease import LockLostError, RunInProgressError
from customer_ai.validation import DataValidationError

from conftest import RUN_FILES, make_events, make_spec, synthetic_events, ts, write_run_events

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
    """The first run as of AS_OF; later tests add runs to its home (``good_home`` copies it as it was first)."""
    import shutil

    home = tmp_path_factory.mktemp("home")
    store = SQLiteStore(home / "store.sqlite")
    result = steps.run(make(events_file), AS_OF, home, store)
    shutil.copytree(home, home.with_name(f"{home.name}-as-first-run"))
    return result, home, store


def test_run_folder_holds_each_steps_output(first_run: tuple) -> None:
    result, home, store = first_run
    folder = result.artifact_dir
    run_id = result.metadata["run_id"]
    assert re.fullmatch(r"cli-[0-9a-f]{10}", run_id)
    assert folder == home / "artifacts" / "unit" / "2012-01-01" / run_id
    assert store.latest_run("unit")["run_id"] == run_id  # the store names the folder readers use
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
    kept = read_all_parts(result.artifact_dir, 1)
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
    attempts = store.read_attempts("unit")
    assert attempts[["step", "status", "run_id"]].values.tolist()[:2] == [
        ["validate_events", "started", ""],
        ["publish", "ok", result.metadata["run_id"]],
    ]
    assert set(attempts["attempt"].iloc[:2]) == {result.metadata["attempt"]}


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


def test_a_run_compares_the_scored_profiles_with_the_models_training_rows(first_run: tuple) -> None:
    result, _, store = first_run
    drift = artifacts.read_json(result.artifact_dir / "drift.json")
    model = artifacts.read_json(result.artifact_dir / "model.json")
    assert drift["status"] in {"ok", "warn"}
    assert (drift["warn"], drift["stop"]) == (0.1, None)
    features = drift["features"]
    assert [f["feature"] for f in features] != []
    assert {f["feature"] for f in features} == set(model["features"]["names"])
    assert [f["psi"] for f in features] == sorted((f["psi"] for f in features), reverse=True)
    assert drift["largest_psi"] == features[0]["psi"]
    assert len(drift["moved_most"]) == 3
    assert f"({features[0]['feature']}): " in drift["moved_most"][0]
    assert (drift["status"] == "warn") == (drift["largest_psi"] >= 0.1)
    assert model["drift_reference"].keys() == {f["feature"] for f in features}
    assert result.metadata["drift"] == {k: drift[k] for k in ("status", "largest_psi", "moved_most")}
    row = store.read_runs("unit").set_index("as_of").loc["2012-01-01"]
    assert json.loads(row["metrics"])["drift"] == {"status": drift["status"], "largest_psi": drift["largest_psi"]}


def test_a_run_compares_its_scores_with_those_of_the_run_before(
    first_run: tuple, events_file: Path, tmp_path: Path
) -> None:
    import shutil

    _, home, _ = first_run
    copy = tmp_path / "home"
    shutil.copytree(home.with_name(f"{home.name}-as-first-run"), copy)
    store = SQLiteStore(copy / "store.sqlite")
    later = steps.run(make(events_file), LATER, copy, store, force_retrain=False)
    scores = artifacts.read_json(later.artifact_dir / "drift.json")["scores"]
    assert scores["previous_as_of"] == "2012-01-01"
    first = pd.read_parquet(first_run[0].artifact_dir / "scores.parquet")
    assert scores["mean_previous"] == pytest.approx(first["probability"].mean())
    assert scores["mean_now"] == pytest.approx(later.scores["probability"].mean())
    assert 0 <= scores["psi"] < 0.1  # the same model a week later
    assert later.metadata["drift"]["scores"] == scores


@pytest.fixture(scope="module")
def shifted_file(events_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The events with the purchase values of the 60 days before LATER multiplied by 20."""
    shifted = pd.read_parquet(events_file)
    recent = (shifted["event_type"] == "purchase") & (shifted["timestamp"] >= LATER - pd.Timedelta(days=60))
    shifted.loc[recent, "value"] *= 20
    path = tmp_path_factory.mktemp("shifted") / "events.parquet"
    shifted.to_parquet(path, index=False)
    return path


def test_a_planted_shift_is_named_and_past_the_stop_stops_the_run(
    first_run: tuple, shifted_file: Path, tmp_path: Path
) -> None:
    import shutil

    _, home, _ = first_run
    copy = tmp_path / "home"
    shutil.copytree(home, copy)
    stopping = make(shifted_file).model_copy(update={"monitoring": MonitoringSettings(drift_warn=0.1, drift_stop=0.25)})
    copied = SQLiteStore(copy / "store.sqlite")
    current = copied.latest_run("unit")
    with pytest.raises(DriftStopError, match=r"what moved most: average purchase worth N \(purchase_value_mean\): "):
        steps.run(stopping, LATER, copy, copied, force_retrain=False)
    assert copied.latest_run("unit")["run_id"] == current["run_id"]  # nothing published
    attempts = copied.read_attempts("unit")
    failed = attempts.loc[attempts["as_of"] == "2012-01-08"].iloc[-1]
    assert (failed["step"], failed["status"]) == ("combine_scores", "failed")
    assert "DriftStopError" in failed["reason"]


def test_a_reused_model_is_retrained_early_when_the_profiles_drifted_past_the_warning(
    events_file: Path, shifted_file: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import shutil

    path = tmp_path / "events.parquet"  # one instance, whose event file changes between its runs
    shutil.copy(events_file, path)
    store = SQLiteStore(tmp_path / "home" / "store.sqlite")
    steps.run(make(path), AS_OF, tmp_path / "home", store)
    steady = steps.run(make(path), LATER, tmp_path / "home", store, force_retrain=False)
    assert steady.metadata["model_reused"] is True  # retraining is not due, and nothing drifted
    assert artifacts.read_json(steady.artifact_dir / "plan.json")["drift_check"]["status"] == "ok"
    shutil.copy(shifted_file, path)
    moved = steps.run(make(path), LATER, tmp_path / "home", store, force_retrain=False)
    assert moved.metadata["model_reused"] is False
    assert "retraining early: since model " in caplog.text
    assert "average purchase worth N (purchase_value_mean)" in caplog.text
    assert artifacts.read_json(moved.artifact_dir / "drift.json")["status"] in {"ok", "warn"}


def test_a_history_too_short_to_train_across_time_is_served_on_one_period_and_says_so(tmp_path: Path) -> None:
    # 75 days of events: a 30-day goal leaves 15 days before a training snapshot (before: refused, exit 2)
    path = tmp_path / "events.parquet"
    synthetic_events(customers=3000, start="2011-10-18", days=75).to_parquet(path, index=False)
    store = SQLiteStore(tmp_path / "home" / "store.sqlite")
    # six weeks of purchases tell these steady buyers apart less well than a year: a lower gate
    result = steps.run(make(path, min_auc=0.55), AS_OF, tmp_path / "home", store)
    said = "trained and judged on one period: no check across time"
    assert result.metadata["history"]["single_period"] is True
    row = store.latest_run("unit")
    assert row["reason"].endswith(f"; {said}")  # show prints the run's reason
    assert row["metrics"]["single_period"] is True  # the Airflow view says it from there
    model = artifacts.read_json(result.artifact_dir / "model.json")
    assert model["validation"]["design"].startswith(said)
    assert model["windows"]["snapshots"] == ["2011-12-02"]
    assert said in (result.artifact_dir / "report.html").read_text(encoding="utf-8")


def test_a_model_whose_features_meant_something_else_is_never_reused(
    first_run: tuple, events_file: Path, tmp_path: Path
) -> None:
    import shutil

    result, home, _ = first_run
    trained = artifacts.read_json(result.artifact_dir / "model.json")
    assert trained["features_version"] == FEATURES_VERSION == 2
    copy = tmp_path / "home"
    shutil.copytree(home / "models", copy / "models")
    folder = artifacts.model_dir(copy, "unit", trained["model_version"])
    spec = make(events_file)
    assert steps.find_reusable_model(spec, ts("2012-01-08"), copy)["model_version"] == trained["model_version"]
    # a model stored before the goal counts covered the lookback only: its scoring features would mean more
    older = {k: v for k, v in artifacts.read_json(folder / "model.json").items() if k != "features_version"}
    artifacts.write_json(folder / "model.json", older)
    assert steps.find_reusable_model(spec, ts("2012-01-08"), copy) is None


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
    assert store.read_runs("unit")["as_of"].tolist() == ["2012-01-01"]  # a poor attempt publishes nothing
    poor = store.latest_attempt("unit")
    assert (poor["as_of"], poor["step"], poor["status"]) == ("2012-01-08", "quality_gate", "poor")
    assert "is poor: validation ROC AUC" in poor["reason"]
    assert "the previous scores are kept" in poor["reason"]
    assert poor["model_version"] == result.metadata["model_version"]
    attempt = result.artifact_dir.name.removeprefix(".").removesuffix(".staging")
    with pytest.raises(steps.QualityGateError, match="below the quality gate of 0.999"):
        steps.quality_gate(spec, ts("2012-01-08"), tmp_path, store, min_auc=0.999, attempt=attempt)


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
    assert not (folder / "events").exists()
    assert [p.name for p in artifacts.date_dir(tmp_path, "unit", AS_OF).iterdir()] == [".local.staging"]


def test_a_step_run_again_after_its_attempt_was_published_works_on_a_copy(good_home: tuple, events_file: Path):
    # an Airflow task cleared and run again after its DAG run published: the sealed folder never changes
    home, store = good_home
    spec = make(events_file)
    published = _published(home, store)
    attempt = artifacts.read_json(published / "metadata.json")["attempt"]
    steps.score(spec, AS_OF, home, factors=1, attempt=attempt)
    assert {len(f) for f in steps.read_scores(published)["factors"]} == {3}  # the published folder: unchanged
    assert {len(f) for f in store.read_scores("unit")["factors"]} == {3}
    summary = steps.publish(spec, AS_OF, home, store, attempt=attempt)  # sealed under a name of its own
    assert summary["run_id"] == f"{attempt}.2"
    assert _published(home, store) == published.with_name(f"{attempt}.2")
    assert {len(f) for f in store.read_scores("unit")["factors"]} == {1}
    assert {len(f) for f in steps.read_scores(published)["factors"]} == {3}  # still there, unchanged
    again = steps.publish(spec, AS_OF, home, store, attempt=attempt)  # a retried publish: the same run again
    assert again["run_id"] == f"{attempt}.2"
    assert store.read_attempts("unit")["run_id"].tolist().count(f"{attempt}.2") == 1  # one ok row per run


def test_missing_earlier_step_names_what_to_run(events_file: Path, tmp_path: Path) -> None:
    spec = make(events_file)
    with pytest.raises(FileNotFoundError, match="run the validate_events step"):
        steps.build_training_set(spec, AS_OF, tmp_path)
    with pytest.raises(FileNotFoundError, match="run the steps before publish for unit"):
        steps.publish(spec, AS_OF, tmp_path, SQLiteStore(tmp_path / "store.sqlite"))


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


# --- a failed, poor, killed or concurrent run never hides or replaces the current one --------------------------------

LOYAL = {"name": "loyal", "where": [{"field": "percentile", "op": "gt", "value": 50}]}
LATER = ts("2012-01-08")  # the date of the run that is killed, fails or is poor in the tests below


def _published(home: Path, store: object, as_of: pd.Timestamp = AS_OF) -> Path:
    """Return the folder of the run the store says was published as of ``as_of``."""
    run = steps.published_run(make_spec(), as_of, store)
    return artifacts.run_dir(home, "unit", as_of, run["run_id"])


def _files(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _readers(home: Path, store: object) -> dict:
    """Return what every reader shows as current, after checking that they all describe the same run.

    The store's newest published run names its folder; that folder must exist, be complete (metadata naming the
    same run, a report), and hold exactly the store's current scores and the store's segment membership.  Each read
    is one query, so a run published between two of them is seen by the later ones only: the reads are taken again
    until the store's newest run is the same before and after them (a snapshot of one moment).
    """
    for _ in range(20):
        latest = store.latest_run("unit")
        seen = _read_everything(home, store, latest)
        if store.latest_run("unit") == latest:
            return seen
    raise AssertionError("the store's newest run kept changing while it was read")


def _read_everything(home: Path, store: object, latest: dict) -> dict:
    folder = artifacts.run_dir(home, "unit", ts(latest["as_of"]), latest["run_id"])
    meta = artifacts.read_json(folder / "metadata.json")
    assert (meta["run_id"], meta["as_of"], meta["model_version"]) == (
        latest["run_id"],
        latest["as_of"],
        latest["model_version"],
    )
    assert (folder / "report.html").stat().st_size > 0
    current = store.read_scores("unit")
    published = pd.read_parquet(folder / "scores.parquet")
    probabilities = dict(zip(published["profile_id"], published["probability"], strict=True))
    if store.latest_run("unit") != latest:
        return {}  # published meanwhile: read again
    assert dict(zip(current["profile_id"], current["probability"], strict=True)) == probabilities
    assert set(current["as_of"]) <= {latest["as_of"]}
    assert set(current["model_version"]) <= {latest["model_version"]}
    members = pd.read_parquet(folder / "segments.parquet")
    for segment in ("low", "high"):
        stored = set(store.read_segment("unit", segment, as_of=latest["as_of"])["profile_id"])
        assert stored == set(members.loc[members["segment"] == segment, "profile_id"])
    return {"as_of": latest["as_of"], "run_id": latest["run_id"], "probabilities": probabilities}


def _first_home(first_run: tuple, target: Path) -> Path:
    """Copy the home of the module's first run, as it was right after that run, to ``target``."""
    import shutil

    _, home, _ = first_run
    return Path(shutil.copytree(home.with_name(f"{home.name}-as-first-run"), target))


@pytest.fixture
def good_home(first_run: tuple, tmp_path: Path) -> tuple[Path, SQLiteStore]:
    """A home holding one good run as of AS_OF (a copy of the module's first run)."""
    copy = _first_home(first_run, tmp_path / "home")
    return copy, SQLiteStore(copy / "store.sqlite")


@pytest.fixture
def pg_good_home(first_run: tuple, tmp_path: Path) -> Iterator[tuple[Path, object, str]]:
    """A home holding the module's first run as of AS_OF, published again into a fresh PostgreSQL schema."""
    from test_store import PG_DSN, schemas

    from customer_ai.store import PostgresStore

    result, _, _ = first_run
    copy = _first_home(first_run, tmp_path / "home")
    with schemas("test_steps") as fresh:
        schema = fresh()
        store = PostgresStore(PG_DSN, schema)
        steps.publish(make_spec(), AS_OF, copy, store, attempt=result.metadata["attempt"])  # the sealed folder again
        yield copy, store, f"PostgresStore({PG_DSN!r}, {schema!r})"


@pytest.fixture(scope="module")
def clean_later(first_run: tuple, events_file: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """What the readers show after a clean run as of LATER on top of the first run (in a home of its own)."""
    copy = _first_home(first_run, tmp_path_factory.mktemp("clean") / "home")
    store = SQLiteStore(copy / "store.sqlite")
    steps.run(make(events_file), LATER, copy, store)
    return _readers(copy, store)


def test_a_failed_rerun_keeps_the_last_good_run_folder(good_home: tuple, events_file: Path, tmp_path: Path) -> None:
    # before: a re-run with bad events emptied the folder, leaving validation/ only; show still said ok
    home, store = good_home
    folder = _published(home, store)
    before, readers = _files(folder), _readers(home, store)
    events = pd.read_parquet(events_file)
    bad = tmp_path / "future.parquet"
    pd.concat([events, events.iloc[:1].assign(timestamp=ts("2099-01-01"))]).to_parquet(bad, index=False)
    with pytest.raises(DataValidationError):
        steps.run(make(bad), AS_OF, home, store)
    assert _files(folder) == before
    assert _readers(home, store) == readers
    staging = [p for p in artifacts.date_dir(home, "unit", AS_OF).iterdir() if p.name.endswith(".staging")]
    assert [(p / "validation" / "events.json").exists() for p in staging] == [True]  # kept, to inspect
    # the attempt is recorded: before, a run failing at validate_events never reached the store
    failed = store.read_attempts("unit", as_of="2012-01-01").iloc[-2:]
    assert failed[["step", "status"]].values.tolist() == [["validate_events", "started"], ["validate_events", "failed"]]
    assert failed["reason"].iloc[-1].startswith("DataValidationError: ")
    assert "timestamp" in failed["reason"].iloc[-1]


def test_a_poor_rerun_keeps_the_published_run_and_its_record(good_home: tuple, events_file: Path) -> None:
    # before: the poor re-run replaced the date's ok run row by a poor row with 0 profiles, so "segment export"
    # found no ok run and "show" exited 1, although the folder and the scores were still the good run's
    home, store = good_home
    folder = _published(home, store)
    before, readers, runs = _files(folder), _readers(home, store), store.read_runs("unit")
    high = store.read_segment("unit", "high")
    result = steps.run(make(events_file, min_auc=0.999), AS_OF, home, store)
    assert result.quality == "poor"
    assert result.artifact_dir.name.endswith(".staging")
    assert result.artifact_dir.parent == artifacts.date_dir(home, "unit", AS_OF)
    assert _files(folder) == before
    assert _readers(home, store) == readers
    pd.testing.assert_frame_equal(store.read_runs("unit"), runs)
    assert store.latest_run("unit")["status"] == "ok"
    pd.testing.assert_frame_equal(store.read_segment("unit", "high"), high)
    newest = store.latest_attempt("unit")
    assert (newest["as_of"], newest["step"], newest["status"]) == ("2012-01-01", "quality_gate", "poor")


def test_a_report_that_fails_leaves_the_store_on_the_previous_run(
    good_home: tuple, events_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # before: enrich_profiles committed the new scores before the report and the publish, so a run dying in the
    # report left the store saying the new date was current with a folder nobody had published
    import customer_ai.report

    home, store = good_home
    readers = _readers(home, store)

    def broken(*args: object, **kwargs: object) -> None:
        raise UnicodeEncodeError("utf-8", "\ud83d", 0, 1, "surrogates not allowed")

    monkeypatch.setattr(customer_ai.report, "build_report", broken)
    with pytest.raises(UnicodeEncodeError):
        steps.run(make(events_file), LATER, home, store)
    assert _readers(home, store) == readers
    assert store.read_runs("unit")["as_of"].tolist() == ["2012-01-01"]
    failed = store.latest_attempt("unit")
    assert (failed["as_of"], failed["step"], failed["status"]) == ("2012-01-08", "write_report", "failed")
    assert "surrogates not allowed" in failed["reason"]


def test_a_published_folder_nobody_points_at_is_removed_by_the_next_run_of_its_date(
    good_home: tuple, events_file: Path
) -> None:
    home, store = good_home
    first = _published(home, store)
    steps.run(make(events_file), AS_OF, home, store)  # a re-run of the date: the first folder is not current now
    second = _published(home, store)
    assert second != first
    assert first.exists()  # left for readers that resolved it just before the commit
    steps.run(make(events_file), AS_OF, home, store)
    third = _published(home, store)
    assert not first.exists()
    assert sorted(p.name for p in artifacts.date_dir(home, "unit", AS_OF).iterdir()) == sorted(
        [second.name, third.name]
    )


def test_a_second_run_of_the_instance_is_refused_while_one_runs(good_home: tuple, events_file: Path) -> None:
    # before: a second run into the same home failed with "events.parquet is missing" or mixed both runs' files
    home, store = good_home
    readers = _readers(home, store)
    store.take_lock("unit", "af-other", "Airflow DAG run x / y, task train", "dag:customer_ai__unit", minutes=10)
    with pytest.raises(RunInProgressError, match=r"another run of unit is in progress: attempt af-other \(Airflow"):
        steps.run(make(events_file), AS_OF, home, store)
    assert _readers(home, store) == readers
    assert store.lock_holder("unit")[0].attempt == "af-other"  # the refused run took nothing
    store.release_lock("unit", "af-other")
    steps.run(make(events_file), LATER, home, store)  # released: the next run goes ahead
    assert store.lock_holder("unit")[0] is None  # and it released it in turn


def test_a_run_whose_lock_was_taken_over_stops_before_its_commit(
    good_home: tuple, events_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home, store = good_home
    readers = _readers(home, store)
    real_publish = steps.publish

    def stolen(*args: object, **kwargs: object) -> dict:  # another run took the lock while this one worked
        store.release_lock("unit")
        store.take_lock("unit", "af-other", "another run", "dag:customer_ai__unit", minutes=10)
        return real_publish(*args, **kwargs)

    monkeypatch.setattr(steps, "publish", stolen)
    with pytest.raises(LockLostError, match=r"attempt cli-\w+ of unit no longer holds the run lock, so it publishes"):
        steps.run(make(events_file), AS_OF, home, store)
    assert _readers(home, store) == readers  # nothing of it was published
    assert store.lock_holder("unit")[0].attempt == "af-other"


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


# where a killed run dies: after a step, or inside one: (module, attribute, "before" or "after" the call)
KILL_POINTS = {
    **{f"after {name}": ("customer_ai.steps", name, "after") for name in step_names()},
    "in the report, its page built but not written": ("customer_ai.report", "_page", "after"),
    "sealing: metadata written, folder not renamed": ("customer_ai.artifacts", "seal", "before"),
    "sealed, before the store transaction": ("customer_ai.steps", "_commit", "before"),
    "in the SQLite transaction, every row written": ("customer_ai.store.sqlite", "_SQLiteWriter.upsert_run", "after"),
    "in the PostgreSQL transaction, every row written": (
        "customer_ai.store.postgres",
        "_PostgresWriter.upsert_run",
        "after",
    ),
}


def _run_script(home: Path, events_file: Path, store: str, kill: tuple[str, str, str] | None = None) -> str:
    """Python code that runs the instance as of LATER in ``home``; it SIGKILLs itself at ``kill``, if given."""
    lines = [
        "import importlib, os, signal, sys; from pathlib import Path",
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})",
        "from test_steps import make, LATER",
        "from customer_ai import steps",
        "from customer_ai.store import PostgresStore, SQLiteStore",
        f"home = Path({str(home)!r})",
    ]
    if kill is not None:
        module, attribute, when = kill
        owner, _, name = attribute.rpartition(".")
        lines += [
            f"holder = importlib.import_module({module!r})",
            *([f"holder = getattr(holder, {owner!r})"] if owner else []),
            f"real = getattr(holder, {name!r})",
            "def dying(*args, **kwargs):",
            *(["    os.kill(os.getpid(), signal.SIGKILL)"] if when == "before" else []),
            "    returned = real(*args, **kwargs)",
            "    os.kill(os.getpid(), signal.SIGKILL)",
            "    return returned",
            f"setattr(holder, {name!r}, dying)",
        ]
    lines.append(f"steps.run(make(Path({str(events_file)!r})), LATER, home, {store})")
    return "\n".join(lines) + "\n"


def _assert_one_run_or_the_other_and_a_rerun_is_clean(
    home: Path, store: object, events_file: Path, before: dict, clean: dict
) -> None:
    after = _readers(home, store)
    if after["as_of"] == before["as_of"]:
        assert after == before  # the previous run, whole
    else:
        assert (after["as_of"], after["probabilities"]) == (clean["as_of"], clean["probabilities"])  # the new one
    steps.run(make(events_file), LATER, home, store)  # the kernel released the lock of the killed run
    rerun = _readers(home, store)
    assert (rerun["as_of"], rerun["probabilities"]) == (clean["as_of"], clean["probabilities"])
    # the killed attempt's folders are gone; a run it had published stays until the next run of the date
    published_before = {after["run_id"]} if after["as_of"] == clean["as_of"] else set()
    left = {p.name for p in artifacts.date_dir(home, "unit", LATER).iterdir()}
    assert left == {rerun["run_id"], *published_before}


def _kill_run(home: Path, events_file: Path, store: str, kill: tuple[str, str, str]) -> None:
    import subprocess
    import sys

    killed = subprocess.run(
        [sys.executable, "-c", _run_script(home, events_file, store, kill)], check=False, stderr=subprocess.PIPE
    )
    assert killed.returncode == -9, killed.stderr.decode()[-3000:]


@pytest.mark.e2e
@pytest.mark.parametrize("point", [p for p in KILL_POINTS if "PostgreSQL" not in p])
def test_a_run_killed_at_any_step_or_inside_one_leaves_one_run_or_the_other_and_a_rerun_equals_a_clean_run(
    good_home: tuple, events_file: Path, clean_later: dict, point: str
) -> None:
    home, store = good_home
    before = _readers(home, store)
    _kill_run(home, events_file, f"SQLiteStore(home / {'store.sqlite'!r})", KILL_POINTS[point])
    _assert_one_run_or_the_other_and_a_rerun_is_clean(home, store, events_file, before, clean_later)


@pytest.mark.e2e
@pytest.mark.parametrize(
    "point",
    [
        "after validate_events",
        "in the report, its page built but not written",
        "sealed, before the store transaction",
        "in the PostgreSQL transaction, every row written",
        "after publish",
    ],
)
def test_a_run_killed_with_the_postgres_store_leaves_one_run_or_the_other_and_a_rerun_equals_a_clean_run(
    pg_good_home: tuple, events_file: Path, clean_later: dict, point: str
) -> None:
    home, store, address = pg_good_home
    before = _readers(home, store)
    _kill_run(home, events_file, address, KILL_POINTS[point])
    _assert_one_run_or_the_other_and_a_rerun_is_clean(home, store, events_file, before, clean_later)


def _kill_at_moment(
    home: Path, store: object, address: str, events_file: Path, *, seconds: float, before: dict
) -> None:
    """Start the run, check the readers every 50 ms until ``seconds`` have passed, then SIGKILL it."""
    import signal
    import subprocess
    import sys
    import time

    process = subprocess.Popen(
        [sys.executable, "-c", _run_script(home, events_file, address)], stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + seconds
    seen = set()
    while time.monotonic() < deadline:  # every reader agrees at every moment: the old run, or the new one whole
        now = _readers(home, store)
        seen.add(now["as_of"])
        if now["as_of"] == before["as_of"]:
            assert now == before
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert seen <= {before["as_of"], f"{LATER:%Y-%m-%d}"}


@pytest.mark.e2e
@pytest.mark.parametrize("seconds", [0.5, 2.0, 3.5, 5.0, 6.5, 8.0])
def test_a_run_killed_at_any_moment_leaves_one_run_or_the_other_and_a_rerun_equals_a_clean_run(
    good_home: tuple, events_file: Path, clean_later: dict, seconds: float
) -> None:
    home, store = good_home
    before = _readers(home, store)
    _kill_at_moment(home, store, f"SQLiteStore(home / {'store.sqlite'!r})", events_file, seconds=seconds, before=before)
    _assert_one_run_or_the_other_and_a_rerun_is_clean(home, store, events_file, before, clean_later)


@pytest.mark.e2e
@pytest.mark.parametrize("seconds", [2.0, 5.0, 7.0])
def test_a_run_killed_at_any_moment_with_the_postgres_store_leaves_one_run_or_the_other(
    pg_good_home: tuple, events_file: Path, clean_later: dict, seconds: float
) -> None:
    home, store, address = pg_good_home
    before = _readers(home, store)
    _kill_at_moment(home, store, address, events_file, seconds=seconds, before=before)
    _assert_one_run_or_the_other_and_a_rerun_is_clean(home, store, events_file, before, clean_later)


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


def _retail_with(folder: Path, day: str, count: int, source: dict | None = None):  # noqa: ANN202 - a spec
    """The repurchase instance over the real online-retail events plus ``count`` rows dated ``day`` (a broken date).

    With ``source``, the events come from there (a table) and the file is only written.
    """
    import yaml

    from customer_ai.spec import load_spec

    from conftest import RETAIL_EVENTS, ROOT

    events = pd.read_parquet(RETAIL_EVENTS)
    broken = events.head(count).assign(timestamp=pd.Series([ts(day)] * count, dtype=events["timestamp"].dtype))
    folder.mkdir(parents=True)
    pd.concat([broken, events], ignore_index=True).to_parquet(folder / "events.parquet", index=False)
    instance = yaml.safe_load((ROOT / "instances" / "repurchase_30d.yaml").read_text())
    instance["events"] = source or {"path": str(folder / "events.parquet")}
    instance["profiles"]["path"] = str(ROOT / "examples" / "online_retail" / "profiles.parquet")
    (folder / "instance.yaml").write_text(yaml.safe_dump(instance))
    return load_spec(folder / "instance.yaml")


RETAIL_AS_OF = ts("2011-12-11")
BEFORE_1900 = (
    "20 of 22,210 events (0.09%), dated 1900-01-01, lie before 40,510 days without any event; the history starts "
    "after them, on 2010-12-01 (at least 99.9% of the events lie on or after that day): the snapshots and the "
    "feature lookback are planned from there; correct or filter those rows if their dates are wrong"
)


def test_twenty_rows_dated_1900_leave_the_plan_of_the_real_history_and_say_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # before: 20 events dated 1900-01-01 made 111 years of history: no adaptation, 5 snapshots 30 days apart
    # looking back 365 days over data that starts on 2010-12-01, exit 0, no word
    plans, sources = {}, {}
    for count in (0, 20):
        spec, home = _retail_with(tmp_path / f"with-{count}", "1900-01-01", count), tmp_path / f"home-{count}"
        with caplog.at_level("WARNING", logger="customer_ai"):
            returned = steps.validate_events(spec, RETAIL_AS_OF, home)
        steps.build_training_set(spec, RETAIL_AS_OF, home)
        folder = artifacts.staging_dir(home, spec.name, RETAIL_AS_OF, artifacts.DEFAULT_ATTEMPT)
        plans[count] = json.loads((folder / "plan.json").read_text())["history"]
        sources[count] = json.loads((folder / "source.json").read_text())
        assert returned["before_start"] == sources[count]["before_start"]
    assert plans[20] == plans[0]  # the plan of the real history: what the README says
    assert (len(plans[0]["training"]), plans[0]["every_days"], plans[0]["lookback_days"]) == (5, 19, 238)
    assert sources[0]["data_start"] == sources[20]["data_start"] == "2010-12-01T08:26:00+00:00"
    assert sources[0]["before_start"] is None
    message = f"{tmp_path / 'with-20' / 'events.parquet'}: {BEFORE_1900}"
    assert sources[20]["before_start"] == {
        "events": 20,
        "of": 22_210,
        "share": 20 / 22_210,
        "first": "1900-01-01T00:00:00+00:00",
        "last": "1900-01-01T00:00:00+00:00",
        "message": message,
    }
    assert caplog.messages.count(message) == 1


def test_five_percent_of_rows_dated_1970_are_refused_with_what_to_do(tmp_path: Path) -> None:
    from customer_ai.events import EventsError

    spec, home = _retail_with(tmp_path / "events", "1970-01-01", 1_200), tmp_path / "home"
    with pytest.raises(EventsError) as info:
        steps.validate_events(spec, RETAIL_AS_OF, home)
    assert str(info.value) == (
        f"{tmp_path / 'events' / 'events.parquet'}: 1,200 of 23,390 events (5.1%), dated 1970-01-01, lie before "
        "14,943 days without any event; the events really start on 2010-12-01. At most 0.1% of the events may lie "
        "before the start (they are then left out of the history with a warning): correct the dates of those rows "
        "or filter them out of the events (1900-01-01 and 1970-01-01 are the usual stand-ins for a missing date)"
    )
    folder = artifacts.staging_dir(home, spec.name, RETAIL_AS_OF, artifacts.DEFAULT_ATTEMPT)
    assert not (folder / "source.json").exists()


def test_a_table_with_twenty_rows_dated_1900_starts_where_its_events_really_start(tmp_path: Path) -> None:
    import io

    from psycopg2 import sql
    from test_store import PG_DSN, admin, schemas

    with schemas("test_steps_start") as fresh:
        schema = fresh()
        table = {"table": f"{schema}.events", "columns": {"timestamp": "occurred_at"}}
        spec = _retail_with(tmp_path / "events", "1900-01-01", 20, source=table)
        events = pd.read_parquet(tmp_path / "events" / "events.parquet")
        with admin() as connection, connection.cursor() as cursor:
            cursor.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
            cursor.execute(
                sql.SQL(
                    "CREATE TABLE {} (profile_id text, occurred_at timestamptz, event_type text, value float8)"
                ).format(sql.Identifier(schema, "events"))
            )
            csv = events[["profile_id", "timestamp", "event_type", "value"]].to_csv(index=False)
            copy = sql.SQL("COPY {} FROM STDIN WITH (FORMAT csv, HEADER true)").format(sql.Identifier(schema, "events"))
            cursor.copy_expert(copy.as_string(connection), io.StringIO(csv))
        returned = steps.validate_events(spec, RETAIL_AS_OF, tmp_path / "home", dsn=PG_DSN)
    assert returned["data_start"] == "2010-12-01T08:26:00+00:00"  # before: 1900-01-01, the table's min(timestamp)
    assert returned["before_start"]["message"] == f"postgresql table {schema}.events: {BEFORE_1900}"


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
    write_run_events(artifacts.staging_dir(tmp_path, spec.name, now), events)
    store = SQLiteStore(tmp_path / "store.sqlite")
    scored = _past_scores([("a", 0.7, 70, 100, "high"), ("b", 0.4, 40, 67, "medium"), ("c", 0.1, 10, 34, "low")])
    store.write_run(spec.name, "2011-09-01", scored, _ok())  # window closed on 2011-10-01: due
    store.write_run(spec.name, "2011-09-20", scored, _ok())  # window closes on 2011-10-20: still open
    store.record_attempt(spec.name, "2011-08-01", {"status": "poor"})  # published nothing: nothing to track

    result = steps.track_outcomes(spec, now, tmp_path, store)

    assert result == {"tracked": ["2011-09-01"], "skipped": {}}
    assert store.read_outcomes(spec.name).empty  # the store gets them when this run publishes
    tracked = read_tracked(artifacts.staging_dir(tmp_path, spec.name, now))
    assert list(tracked) == ["2011-09-01"]
    outcomes = tracked["2011-09-01"]
    came_true = dict(zip(outcomes["group"], outcomes["realised_rate"], strict=True))
    assert came_true == {"all": 1 / 3, "low": 0.0, "medium": 0.0, "high": 1.0, "1": 1.0, "4": 0.0, "7": 0.0}
    assert outcomes["tracked_at"].str.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ").all()
    # once recorded (as publish does, with the run), a later run does not track it again
    store.write_outcomes(spec.name, "2011-09-01", outcomes)
    assert steps.track_outcomes(spec, now, tmp_path, store) == {"tracked": [], "skipped": {}}
    assert read_tracked(artifacts.staging_dir(tmp_path, spec.name, now)) == {}


def test_outcomes_of_a_run_split_into_partitions_are_those_of_one(tmp_path: Path) -> None:
    spec = make_spec()
    now = ts("2011-10-10")
    ids = [f"p{k:02d}" for k in range(40)]
    events = make_events(
        [(i, "2011-09-05" if k % 3 == 0 else "2011-08-05", "purchase") for k, i in enumerate(ids)]
        + [("p01", "2011-10-02", "purchase")]
    )
    rows = [
        (i, (k + 1) / 41, round(100 * (k + 1) / 41), k * 100 // 40 + 1, "high" if k > 30 else "low")
        for k, i in enumerate(ids)
    ]
    found = {}
    for count in (1, 3):
        home = tmp_path / str(count)
        write_run_events(artifacts.staging_dir(home, spec.name, now), events, count)
        store = SQLiteStore(home / "store.sqlite")
        store.write_run(spec.name, "2011-09-01", _past_scores(rows), _ok())
        assert steps.track_outcomes(spec, now, home, store) == {"tracked": ["2011-09-01"], "skipped": {}}
        found[count] = read_tracked(artifacts.staging_dir(home, spec.name, now))["2011-09-01"].drop(
            columns="tracked_at"
        )
    assert (artifacts.staging_dir(tmp_path / "3", spec.name, now) / "events" / "part-00002.parquet").exists()
    pd.testing.assert_frame_equal(found[3], found[1], check_exact=False, rtol=1e-12)
    overall = found[1].iloc[0]
    assert (overall["group"], overall["profiles"], overall["realised_rate"]) == ("all", 40, 14 / 40)
    assert overall["predicted_rate"] == pytest.approx(sum(range(1, 41)) / 41 / 40, rel=1e-12)


def test_a_past_run_that_scored_another_goal_is_not_tracked(tmp_path: Path) -> None:
    spec = make_spec()
    now = ts("2011-10-10")
    events = make_events([("a", "2011-09-05", "purchase"), ("a", "2011-10-05", "purchase")])
    write_run_events(artifacts.staging_dir(tmp_path, spec.name, now), events)
    then = artifacts.run_dir(tmp_path, spec.name, ts("2011-09-01"), "cli-0123456789")
    artifacts.write_json(then / "metadata.json", {"goal": "will buy a gift card within 7 days"})
    store = SQLiteStore(tmp_path / "store.sqlite")
    scored = _past_scores([("a", 0.7, 70, 100, "high")])
    store.write_run(spec.name, "2011-09-01", scored, {**_ok(), "run_id": "cli-0123456789"})

    result = steps.track_outcomes(spec, now, tmp_path, store)

    assert result == {
        "tracked": [],
        "skipped": {"2011-09-01": "it scored another goal (will buy a gift card within 7 days)"},
    }
    assert store.read_outcomes(spec.name).empty


def _models_of(home: Path, to: Path) -> Path:
    """Copy the models of ``home`` as they were right after the module's first run into a new home ``to``."""
    import shutil

    shutil.copytree(home.with_name(f"{home.name}-as-first-run") / "models", to / "models")
    return to


def test_a_broken_model_is_never_reused_and_is_moved_aside(
    first_run: tuple, events_file: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # before: a model.json cut short made the search fail with JSONDecodeError (every later run of the instance
    # failed), and a model.txt cut short was picked, then crashed LightGBM (SIGSEGV) when the run scored with it
    result, home, _ = first_run
    spec = make(events_file)
    copy = _models_of(home, tmp_path / "home")
    older = artifacts.read_json(result.artifact_dir / "model.json")["model_version"]
    newer = steps.run(spec, ts("2012-01-05"), copy, SQLiteStore(copy / "store.sqlite")).metadata["model_version"]
    assert steps.find_reusable_model(spec, ts("2012-01-08"), copy)["model_version"] == newer
    folder = artifacts.model_dir(copy, "unit", newer)
    text = (folder / "model.txt").read_bytes()
    (folder / "model.txt").write_bytes(text[: len(text) // 2])
    with caplog.at_level("WARNING", logger="customer_ai"):
        assert steps.find_reusable_model(spec, ts("2012-01-08"), copy)["model_version"] == older  # the next good one
    (aside,) = [p for p in folder.parent.iterdir() if p.name.startswith(f"{newer}.broken-")]
    assert not folder.exists()
    assert (aside / "model.txt").read_bytes() == text[: len(text) // 2]  # kept for inspection
    assert (
        f"model {newer} is broken: {folder / 'model.txt'}: is cut short: the end of a LightGBM model is missing "
        f"({len(text) // 2:,} bytes); its folder was moved aside to {aside} (kept for inspection, never used again)"
    ) in caplog.text

    older_folder = artifacts.model_dir(copy, "unit", older)
    (older_folder / "model.json").write_text('{"as_of": "2012-01-01", "model_ver')
    assert steps.find_reusable_model(spec, ts("2012-01-08"), copy) is None
    assert [p.name for p in artifacts.model_folders(copy, "unit")] == []
    assert f"model {older} is broken: {older_folder / 'model.json'}: is not valid JSON (" in caplog.text


def test_a_run_whose_model_to_reuse_broke_since_it_was_chosen_trains_instead(
    first_run: tuple, events_file: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # before: train read the reused model's model.json with a JSONDecodeError (in Airflow, the train task failed
    # on every retry: only its build_training_set task could have chosen to train)
    result, home, _ = first_run
    spec = make(events_file)
    copy = _models_of(home, tmp_path / "home")
    reused = artifacts.read_json(result.artifact_dir / "model.json")["model_version"]
    as_of = ts("2012-01-08")
    steps.validate_events(spec, as_of, copy)
    chosen = steps.build_training_set(spec, as_of, copy)
    assert (chosen["skipped"], chosen["reuse"], chosen["drift_check"]["status"]) == (True, reused, "ok")
    folder = artifacts.model_dir(copy, "unit", reused)
    (folder / "model.json").write_bytes(b"\x00" * 10)
    with caplog.at_level("WARNING", logger="customer_ai"):
        summary = steps.train(spec, as_of, copy)
    assert summary["reused"] is False
    assert summary["trained_as_of"] == "2012-01-08"
    staging = artifacts.staging_dir(copy, "unit", as_of)
    assert (staging / "training_set.parquet").exists()
    assert artifacts.read_json(staging / "plan.json")["skipped"] is False
    assert artifacts.read_json(staging / "model.json")["model_version"] == summary["model_version"]
    assert artifacts.model_problem(artifacts.model_dir(copy, "unit", summary["model_version"])) is None
    assert f"model {reused} is broken: {folder / 'model.json'}: is not valid JSON (Expecting value: line 1 " in (
        caplog.text
    )
    assert [p.name.split(".broken-")[0] for p in folder.parent.glob("*.broken-*")] == [reused]


def test_a_segment_testing_a_factor_the_model_lacks_is_said_when_the_run_publishes(
    good_home: tuple, events_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # before: a factor of an event type the data does not have (the file reads it as a possible feature) gave a
    # segment that stayed empty at every run, without a word when `check` was not run
    home, store = good_home
    settings = {"snapshots": 4, "snapshot_every_days": 30, "min_positives": 50, "min_negatives": 50}
    spec = make_spec(
        events={"path": str(events_file)},
        eligibility={"lookback_days": 365, "events": [{"where": [PURCHASE]}]},
        training=settings,
        output={"factors": 3},
        segments=[{"name": "viewers", "where": [{"factor": "view_count_30d", "op": "gt", "value": 0}]}],
    )
    with caplog.at_level("WARNING", logger="customer_ai"):
        result = steps.run(spec, LATER, home, store)
    version = result.metadata["model_version"]
    assert (
        f"segment viewers tests factor view_count_30d, which model {version} has no feature of: the condition is "
        "false for every profile (exists: false is true for every one)"
    ) in caplog.messages
    assert result.metadata["segments"]["viewers"] == 0


def test_the_next_run_applies_every_saved_audience_as_a_segment_and_keeps_its_rules(
    good_home: tuple, events_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    home, store = good_home
    spec = make(events_file).model_copy(update={"scoring": ScoringSettings(partitions=3)})
    spec = spec.model_copy(update={"segments": make_spec(segments=[LOYAL]).segments})
    kept = [
        store.save_audience("unit", SavedAudience("top_25", "top", 25, "ana")),
        store.save_audience("unit", SavedAudience("keen", "percentile", 90, "bo")),
        store.save_audience("unit", SavedAudience("loyal", "score", 1, "cy")),  # the file took the name since
    ]
    before = spec.spec_hash()
    with caplog.at_level("INFO", logger="customer_ai"):
        result = steps.run(spec, LATER, home, store)
    assert spec.spec_hash() == before  # a saved audience never changes the instance's definition
    meta = result.metadata
    applied = [a for a in store.read_audiences("unit") if a.name != "loyal"]  # the oldest first, then by name
    assert sorted(a.name for a in applied) == sorted(a.name for a in kept[:2])
    assert meta["audiences"] == [a.record() for a in applied]
    assert meta["audiences_skipped"] == [
        {"name": "loyal", "reason": "the instance file now has a segment named loyal: rename or delete the audience"}
    ]
    assert (
        "saved audience loyal is not applied: the instance file now has a segment named loyal: rename or delete "
        "the audience" in caplog.messages
    )
    assert "saved audience keen: percentile at least 90 (saved by bo)" in caplog.messages
    scores = store.read_scores("unit")  # by probability, then profile id
    assert sorted(meta["segments"]) == sorted(["low", "medium", "high", "loyal", *(a.name for a in applied)])
    assert meta["segments"]["top_25"] == 25
    assert store.read_segment("unit", "top_25")["profile_id"].tolist() == scores["profile_id"].head(25).tolist()
    keen = scores.loc[scores["percentile"] >= 90, "profile_id"].tolist()
    assert store.read_segment("unit", "keen")["profile_id"].tolist() == keen
    assert meta["segments"]["keen"] == len(keen) > 0
    # the file's segment is the file's, whatever the saved audience of the same name says
    loyal = store.read_segment("unit", "loyal")
    assert len(loyal) == meta["segments"]["loyal"] < len(scores)
    # deleted, an audience is no longer applied by the next run, and the run before keeps its members
    store.delete_audience("unit", "keen")
    again = steps.run(spec, LATER + pd.Timedelta(days=7), home, store).metadata
    assert [a["name"] for a in again["audiences"]] == ["top_25"]
    assert "keen" not in again["segments"]
    assert store.read_segment("unit", "keen", as_of=f"{LATER:%Y-%m-%d}")["profile_id"].tolist() == keen


def test_a_partition_no_profile_hashed_to_is_not_validated_and_no_events_at_all_still_fail(tmp_path: Path) -> None:
    rows = [("a", "2011-06-01", "purchase"), ("b", "2011-06-02", "visit"), ("a", "2011-07-01", "purchase")]
    path = tmp_path / "few.parquet"
    make_events(rows).to_parquet(path, index=False)
    spec = make(path).model_copy(update={"scoring": ScoringSettings(partitions=8)})  # 2 profiles, 8 partitions
    summary = steps.validate_events(spec, AS_OF, tmp_path / "home")
    folder = artifacts.staging_dir(tmp_path / "home", "unit", AS_OF)
    split = artifacts.read_json(folder / "source.json")["partitions"]
    assert (split["count"], sum(split["events"]), sum(split["profiles"])) == (8, 3, 2)
    assert sum(n > 0 for n in split["events"]) == 2  # six partitions hold nobody
    assert (summary["partitions"], summary["validation"]["success"]) == (8, True)
    validation = artifacts.read_json(folder / "validation" / "events.json")
    skipped = [p["partition"] for p in validation["parts"] if "skipped" in p]
    assert len(skipped) == 6
    assert sorted(p.name for p in (folder / "validation" / "events").iterdir()) == [
        f"part-{k:05d}.json" for k in range(8) if k not in skipped
    ]
    assert len(list((folder / "events").iterdir())) == 8  # every partition has its (maybe empty) file
    nothing = tmp_path / "nothing.parquet"
    make_events(rows).iloc[:0].to_parquet(nothing, index=False)
    empty = make(nothing).model_copy(update={"scoring": ScoringSettings(partitions=3)})
    with pytest.raises(DataValidationError, match="expect_table_row_count_to_be_between: observed 0"):
        steps.validate_events(empty, AS_OF, tmp_path / "home")


@pytest.mark.parametrize("partitions", [1, 4])
def test_the_attribute_join_is_counted_over_every_partition_as_over_all_events(tmp_path: Path, partitions: int):
    rows = [(p, "2011-06-01", "purchase") for p in ["a", "b", "d", "e", "f"]]
    path = tmp_path / "events.parquet"
    make_events(rows).to_parquet(path, index=False)
    profiles = tmp_path / "profiles.parquet"
    pd.DataFrame({"profile_id": ["a", "c", "e", "x"], "country": ["FR", "DE", "FR", "UK"]}).to_parquet(profiles)
    spec = make(path).model_copy(
        update={
            "scoring": ScoringSettings(partitions=partitions),
            "profiles": make_spec(profiles={"path": str(profiles), "columns": ["country"]}).profiles,
        }
    )
    summary = steps.validate_events(spec, AS_OF, tmp_path / "home")
    assert summary["attribute_join"] == {"profiles": 5, "with_attributes": 2, "without_attributes": 3}


def test_a_value_or_timing_model_no_better_than_its_baselines_makes_the_model_poor() -> None:
    spec = make_spec(
        goal={**make_spec().goal.model_dump(mode="json"), "value": {"field": "value"}}, output={"timing": True}
    )
    model = {
        "validation": {"metrics": {"model_roc_auc": 0.75}},
        "value": {"metrics": {"normalised_gini": 0.724, "baselines": {"past_spend": {"normalised_gini": 0.737}}}},
        "timing": {"metrics": {"concordance": 0.714, "baselines": {"bgnbd": {"concordance": 0.705}}}},
    }
    assert steps.model_verdict(spec, model, 0.65) == (
        "poor",
        "validation ROC AUC 0.750 meets the quality gate of 0.65; the value model's normalised Gini 0.724 is not "
        "above the past spend rate's 0.737",
    )
    model["value"]["metrics"]["normalised_gini"] = 0.745
    assert steps.model_verdict(spec, model, 0.65) == (
        "ok",
        "validation ROC AUC 0.750 meets the quality gate of 0.65; the value model's normalised Gini 0.745 is above "
        "the past spend rate's 0.737; the timing model's concordance 0.714 is above the repeat-buying model's 0.705",
    )
    model["timing"]["metrics"]["concordance"] = 0.70
    assert steps.model_verdict(spec, model, 0.65)[0] == "poor"
    lowered = spec.model_copy(
        update={"training": spec.training.model_copy(update={"min_timing_concordance_gain": -0.01})}
    )
    assert steps.model_verdict(lowered, model, 0.65)[0] == "ok"
    assert steps.model_verdict(spec, model, 0.8) == (
        "poor",
        "validation ROC AUC 0.750 is below the quality gate of 0.8",
    )
