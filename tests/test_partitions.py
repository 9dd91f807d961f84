"""Scoring in hash partitions: stable partition numbers, the count, and scores that do not depend on the split."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from customer_ai import artifacts, event_split, steps
from customer_ai.event_split import part_path
from customer_ai.features import fit_repeat_models
from customer_ai.partitions import partition_count, partition_of
from customer_ai.spec import ScoringSettings, load_spec
from customer_ai.store import SQLiteStore
from customer_ai.validation import DataValidationError

from conftest import ROOT, RUN_FILES_WITH_ATTRIBUTES, make_spec, ts

AS_OF = ts("2011-12-11")


def test_a_profiles_partition_is_a_fixed_hash_of_its_id_alone() -> None:
    ids = ["a", "b", "c", "12345", "15311", "ü"]
    assert partition_of(ids, 4).tolist() == [3, 0, 2, 2, 3, 0]  # the same on every machine and process
    assert partition_of(pd.Index(ids, dtype="str"), 4).tolist() == [3, 0, 2, 2, 3, 0]
    assert partition_of(ids[::-1], 4).tolist() == [0, 3, 2, 2, 0, 3]  # its own id decides, not its neighbours
    assert partition_of(ids, 1).tolist() == [0] * 6
    assert partition_of([], 3).tolist() == []


def test_partitions_are_about_even() -> None:
    sizes = np.bincount(partition_of([f"c{i}" for i in range(100_000)], 4))
    assert sizes.tolist() == [24999, 24960, 25222, 24819]


def test_a_partition_count_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1, not 0"):
        partition_of(["a"], 0)


@pytest.mark.parametrize(
    ("setting", "events", "expected"),
    [
        ("auto", 0, 1),
        ("auto", 5_000_000, 1),
        ("auto", 5_000_001, 2),
        ("auto", 20_000_000, 4),
        ("auto", 500_000_000, 100),
        ("auto", 10**12, 256),
        (3, 10, 3),
        (3, 10**9, 3),
    ],
)
def test_the_count_is_the_setting_or_follows_the_events(setting: str | int, events: int, expected: int) -> None:
    assert partition_count(setting, events) == expected


def test_the_partition_setting_changes_neither_the_spec_nor_the_model_hash() -> None:
    plain, split = make_spec(), make_spec(scoring={"partitions": 4})
    assert split.scoring.partitions == 4
    assert plain.scoring.partitions == "auto"
    assert (split.spec_hash(), split.model_hash()) == (plain.spec_hash(), plain.model_hash())


# --- the example instance scored in 1 and in 4 partitions ------------------------------------------------------


@pytest.fixture(scope="module")
def example_run(tmp_path_factory: pytest.TempPathFactory) -> tuple:
    spec = load_spec(ROOT / "instances" / "repurchase_30d.yaml")
    home = tmp_path_factory.mktemp("home")
    result = steps.run(spec, AS_OF, home, SQLiteStore(home / "store.sqlite"))
    return spec, home, result


def _by_profile(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows in profile order (segments: by segment, then profile), as a scoring in one partition writes them."""
    keys = ["segment", "profile_id"] if "segment" in frame.columns else ["profile_id"]
    return frame.sort_values(keys, kind="stable", ignore_index=True)


def _attempt(result: steps.RunResult) -> str:
    """The run's attempt: steps run on their own after it work on a copy of its sealed folder."""
    return result.metadata["attempt"]


def test_the_example_runs_in_one_partition_by_default(example_run: tuple) -> None:
    spec, home, result = example_run
    assert result.artifact_dir == artifacts.run_dir(home, spec.name, AS_OF, _attempt(result))  # sealed
    assert sorted(p.name for p in result.artifact_dir.iterdir()) == RUN_FILES_WITH_ATTRIBUTES
    folder = result.artifact_dir / steps.SCORING
    assert sorted(p.name for p in folder.iterdir()) == [
        "drift-00000.json",
        "part-00000.parquet",
        "plan-00000.parquet",
        "plan.json",
    ]
    plan = artifacts.read_json(folder / "plan.json")
    assert {k: v for k, v in plan.items() if k != "repeat_models"} == {
        "partitions": 1,
        "resplit": False,  # scored in the partitions the events were split into
        "profiles": len(result.scores),
        "sizes": [len(result.scores)],
        "model_version": result.metadata["model_version"],
        # where the history the run read starts: every partition's goal rate is per 30 days of it
        "read_from": pd.read_parquet(part_path(result.artifact_dir, 0))["timestamp"].min().isoformat(),
    }
    assert sorted(p.name for p in (result.artifact_dir / "events").iterdir()) == ["part-00000.parquet"]
    # the repeat-buying model the partitions' features need, fitted on every profile's events
    events = pd.read_parquet(part_path(result.artifact_dir, 0))
    fitted = fit_repeat_models(events, [AS_OF], spec)[AS_OF]
    assert plan["repeat_models"] == {"2011-12-11": dataclasses.asdict(fitted)}


def test_each_partition_reads_its_own_profiles_events_only(example_run: tuple) -> None:
    spec, home, result = example_run
    steps.plan_scoring(spec, AS_OF, home, partitions=3, attempt=_attempt(result))
    staging = artifacts.staging_dir(home, spec.name, AS_OF, _attempt(result))
    plans = [pd.read_parquet(staging / steps.SCORING / f"plan-{k:05d}.parquet") for k in range(3)]
    events = pd.read_parquet(part_path(staging, 0))  # the run's events, split into one partition
    hashed = partition_of(events["profile_id"], 3)
    profiles = sum(len(plan) for plan in plans)
    for partition, plan in enumerate(plans):
        assert list(plan["profile_id"]) == sorted(plan["profile_id"])
        own = set(plan["profile_id"])
        expected = events.loc[hashed == partition].reset_index(drop=True)  # every profile's, eligible or not
        written = pd.read_parquet(staging / steps.SCORING / f"events-{partition:05d}.parquet")
        pd.testing.assert_frame_equal(written, expected, check_exact=True)  # in the events' order
        assert own <= set(written["profile_id"])  # every eligible profile of the example has events
        assert len(own) > profiles // 6
    artifacts.reset_dir(staging).rmdir()


def test_four_partitions_give_exactly_the_scores_of_one(example_run: tuple) -> None:
    spec, home, result = example_run
    one = result.scores
    attempt = _attempt(result)
    summary = steps.score(spec, AS_OF, home, partitions=4, attempt=attempt)
    staging = artifacts.staging_dir(home, spec.name, AS_OF, attempt)
    four = steps.read_scores(staging)
    sizes = artifacts.read_json(staging / steps.SCORING / "plan.json")["sizes"]
    assert summary["partitions"] == 4
    assert len(sizes) == 4
    assert sum(sizes) == len(one)
    assert min(sizes) > len(one) // 8  # every partition holds a real share of the profiles
    pd.testing.assert_frame_equal(_by_profile(four), one, check_exact=True)  # factors included
    assert one["factors"].map(len).min() > 0
    parts = [pd.read_parquet(staging / steps.SCORING / f"part-{k:05d}.parquet") for k in range(4)]
    assert [len(p) for p in parts] == sizes
    # scores.parquet holds the partitions one after the other, one row group each
    row_groups = list(artifacts.read_row_groups(staging / "scores.parquet", columns=["profile_id"]))
    assert [list(group["profile_id"]) for group in row_groups] == [list(p["profile_id"]) for p in parts]
    # each partition counts its features in the training rows' bins: the parts add up to one scoring's drift
    drift_four = artifacts.read_json(staging / "drift.json")
    drift_one = artifacts.read_json(result.artifact_dir / "drift.json")
    assert drift_four.pop("features") == [
        {k: pytest.approx(v, rel=1e-12) if k == "mean_current" and v is not None else v for k, v in feature.items()}
        for feature in drift_one.pop("features")
    ]  # a mean is summed in another order
    assert drift_four == drift_one
    assert set().union(*(set(p["profile_id"]) for p in parts)) == set(one["profile_id"])
    # publishing again seals the rescored copy under a name of its own; the first sealed folder is left as it was
    store = SQLiteStore(home / "store.sqlite")
    before = store.read_scores(spec.name)
    published = steps.publish(spec, AS_OF, home, store, attempt=attempt)
    assert published["run_id"] == f"{attempt}.2"
    assert Path(published["artifacts"]) == artifacts.run_dir(home, spec.name, AS_OF, f"{attempt}.2")
    assert store.latest_run(spec.name)["run_id"] == f"{attempt}.2"
    assert not staging.exists()
    pd.testing.assert_frame_equal(_by_profile(steps.read_scores(Path(published["artifacts"]))), one, check_exact=True)
    pd.testing.assert_frame_equal(store.read_scores(spec.name), before, check_exact=True)  # the store's rows too
    pd.testing.assert_frame_equal(steps.read_scores(result.artifact_dir), one, check_exact=True)
    assert artifacts.read_json(result.artifact_dir / steps.SCORING / "plan.json")["partitions"] == 1


def test_scores_and_segments_are_validated_and_written_a_partition_at_a_time(example_run: tuple) -> None:
    spec, home, result = example_run
    attempt = _attempt(result)
    steps.score(spec, AS_OF, home, partitions=3, attempt=attempt)
    staging = artifacts.staging_dir(home, spec.name, AS_OF, attempt)
    sizes = artifacts.read_json(staging / steps.SCORING / "plan.json")["sizes"]
    summary = steps.validate_scores(spec, AS_OF, home, attempt=attempt)
    assert (summary["success"], summary["failed"]) == (True, 0)
    merged = artifacts.read_json(staging / "validation" / "scores.json")
    assert (merged["partitions"], merged["rows"]) == (3, len(result.scores))
    assert [part["rows"] for part in merged["parts"]] == sizes
    assert (
        merged["summary"] == f"all {summary['evaluated']} expectations passed in each of the 3 partitions of the scores"
    )
    assert sorted(p.name for p in (staging / "validation" / "scores").iterdir()) == [
        f"part-{k:05d}.json" for k in range(3)
    ]
    # the segments: one row group per partition of the scores, each its own profiles' membership
    sealed = steps._write_segments(spec, staging)
    assert sealed == result.metadata["segments"]
    groups = list(artifacts.read_row_groups(staging / steps.SEGMENTS))
    scores = list(artifacts.read_row_groups(staging / "scores.parquet", columns=["profile_id"]))
    assert len(groups) == 3
    for members, part in zip(groups, scores, strict=True):
        assert set(members["profile_id"]) <= set(part["profile_id"])
    # a partition whose scores break an expectation is named
    broken = [
        frame.assign(probability=1.5) if k == 1 else frame
        for k, frame in enumerate(artifacts.read_row_groups(staging / "scores.parquet"))
    ]
    artifacts.write_frames(staging / "scores.parquet", iter(broken))
    with pytest.raises(DataValidationError, match=r"scores of partition 2 of 3 \(the [0-9,]+ scores of the profiles"):
        steps.validate_scores(spec, AS_OF, home, attempt=attempt)
    failed = artifacts.read_json(staging / "validation" / "scores.json")
    assert (failed["success"], failed["partition"], failed["rows"]) == (False, 1, sizes[1])
    artifacts.reset_dir(staging).rmdir()


def test_empty_partitions_score_nothing_and_the_combination_is_unchanged(
    example_run: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec, home, result = example_run
    monkeypatch.setattr(event_split, "partition_of", lambda ids, count: np.zeros(len(ids), dtype="int64"))
    summary = steps.score(spec, AS_OF, home, partitions=3, attempt=_attempt(result))  # 1 and 2 hold nobody
    staging = artifacts.staging_dir(home, spec.name, AS_OF, _attempt(result))
    assert summary["partitions"] == 3
    assert artifacts.read_json(staging / steps.SCORING / "plan.json")["sizes"] == [len(result.scores), 0, 0]
    pd.testing.assert_frame_equal(steps.read_scores(staging), result.scores, check_exact=True)
    assert steps.validate_scores(spec, AS_OF, home, attempt=_attempt(result))["success"]  # the empty ones: skipped
    parts = artifacts.read_json(staging / "validation" / "scores.json")["parts"]
    assert [part.get("skipped") for part in parts] == [None, *["no profile hashed to it: no scores to check"] * 2]
    artifacts.reset_dir(staging).rmdir()


def test_a_missing_partition_stops_the_combination_and_names_it(example_run: tuple) -> None:
    spec, home, result = example_run
    attempt = _attempt(result)
    steps.plan_scoring(spec, AS_OF, home, partitions=3, attempt=attempt)
    steps.score_partition(spec, AS_OF, home, 0, attempt=attempt)
    steps.score_partition(spec, AS_OF, home, 2, attempt=attempt)
    with pytest.raises(FileNotFoundError, match="run the score_partition step for partition 1"):
        steps.combine_scores(spec, AS_OF, home, attempt=attempt)
    with pytest.raises(ValueError, match=r"partition 3 does not exist: the run's scoring has partitions 0 \.\. 2"):
        steps.score_partition(spec, AS_OF, home, 3, attempt=attempt)
    artifacts.reset_dir(artifacts.staging_dir(home, spec.name, AS_OF, attempt)).rmdir()


def test_scoring_needs_its_plan(example_run: tuple, tmp_path: Path) -> None:
    spec, _, _ = example_run
    with pytest.raises(FileNotFoundError, match="run the plan_scoring step first"):
        steps.score_partition(spec, AS_OF, tmp_path, 0)


def test_a_plan_from_an_earlier_version_asks_for_a_new_plan(example_run: tuple) -> None:
    spec, home, result = example_run
    steps.plan_scoring(spec, AS_OF, home, partitions=2, attempt=_attempt(result))
    staging = artifacts.staging_dir(home, spec.name, AS_OF, _attempt(result))
    plan_path = staging / steps.SCORING / "plan.json"
    old = {k: v for k, v in artifacts.read_json(plan_path).items() if k in ("partitions", "profiles", "sizes")}
    artifacts.write_json(plan_path, old)
    with pytest.raises(FileNotFoundError, match="earlier version of customer-ai: run the plan_scoring step again"):
        steps.score_partition(spec, AS_OF, home, 0, attempt=_attempt(result))
    artifacts.reset_dir(staging).rmdir()


def test_a_run_split_into_three_partitions_at_its_first_step_is_the_run_in_one(
    example_run: tuple, tmp_path: Path
) -> None:
    spec, _, one = example_run
    split = spec.model_copy(update={"scoring": ScoringSettings(partitions=3)})
    three = steps.run(split, AS_OF, tmp_path, SQLiteStore(tmp_path / "store.sqlite"))
    names = sorted(p.name for p in (three.artifact_dir / "events").iterdir())
    assert names == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    kept = sorted(p.name for p in (three.artifact_dir / "attributes").iterdir())
    assert kept == ["categories.json", *names]  # each partition's profiles' attributes, read by the later steps
    source = artifacts.read_json(three.artifact_dir / "source.json")["partitions"]
    assert source["count"] == 3
    assert sum(source["events"]) == len(pd.read_parquet(part_path(one.artifact_dir, 0)))
    assert min(source["profiles"]) > sum(source["profiles"]) // 5
    events = event_split.read_all_parts(three.artifact_dir, 3)
    pd.testing.assert_frame_equal(events, pd.read_parquet(part_path(one.artifact_dir, 0)), check_exact=True)
    for name in ("training_set.parquet", "training_events.parquet", "scores.parquet", "segments.parquet"):
        theirs, ours = (pd.read_parquet(run.artifact_dir / name) for run in (one, three))
        if name in ("scores.parquet", "segments.parquet"):  # written a partition at a time
            theirs, ours = _by_profile(theirs), _by_profile(ours)
        pd.testing.assert_frame_equal(ours, theirs, check_exact=True, obj=name)  # factors included
    for name in ("evaluation.json", "plan.json"):
        assert artifacts.read_json(three.artifact_dir / name) == artifacts.read_json(one.artifact_dir / name), name
    models = [artifacts.read_json(run.artifact_dir / "model.json") for run in (one, three)]
    for model in models:
        del model["created_at"]
        assert model["spec"].pop("scoring") in ({"partitions": "auto"}, {"partitions": 3})
    assert models[0] == models[1]  # drift at training included: the drift sample's profiles and features are the same
    assert three.metadata["model_version"] == one.metadata["model_version"]
    validation = artifacts.read_json(three.artifact_dir / "validation" / "events.json")
    assert (validation["success"], validation["partitions"], validation["rows"]) == (True, 3, len(events))
    assert len(list((three.artifact_dir / "validation" / "events").iterdir())) == 3


def test_a_run_is_published_a_partition_at_a_time_or_whole_when_its_files_do_not_match(tmp_path: Path) -> None:
    scores = pd.DataFrame({"profile_id": ["a", "b", "c"], "probability": [0.1, 0.2, 0.3]})
    members = pd.DataFrame({"segment": ["low", "low", "high"], "profile_id": ["a", "b", "c"]})
    artifacts.write_frames(tmp_path / "scores.parquet", iter([scores.iloc[:2], scores.iloc[2:]]))
    artifacts.write_frames(tmp_path / steps.SEGMENTS, iter([members.iloc[:2], members.iloc[2:]]))
    parts = list(steps._published_parts(tmp_path))
    assert [(list(s["profile_id"]), list(m["profile_id"])) for s, m in parts] == [
        (["a", "b"], ["a", "b"]),
        (["c"], ["c"]),
    ]
    # a folder sealed before segments were written a partition at a time: its files, whole, as one part
    artifacts.write_frame(tmp_path / steps.SEGMENTS, members)
    (whole,) = steps._published_parts(tmp_path)
    pd.testing.assert_frame_equal(whole[0], scores)
    pd.testing.assert_frame_equal(whole[1], members)
