"""The declared steps: `customer-ai run` follows them in order and stops at the gate, as the DAG does."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from customer_ai import artifacts, steps
from customer_ai.flow import GATE, STEPS, mapped_step, step_names
from customer_ai.store.lease import RunLease

from conftest import make_spec, ts

AS_OF = ts("2012-01-01")


def test_steps_are_unique_and_the_gate_is_not_retried() -> None:
    names = step_names()
    assert names == [
        "validate_events",
        "build_training_set",
        "train",
        GATE,
        "plan_scoring",
        "score_partition",
        "combine_scores",
        "validate_scores",
        "track_outcomes",
        "write_report",
        "publish",  # the commit point, last
    ]
    assert len(names) == len(set(names))
    assert names.index(GATE) == names.index("train") + 1
    assert [s.name for s in STEPS if not s.retry] == [GATE]
    assert all(callable(getattr(steps, name)) for name in names)
    assert not hasattr(steps, "enrich_profiles")  # publish writes the store now
    assert [s.name for s in STEPS if s.mapped] == ["score_partition"]
    assert names[names.index(mapped_step().name) - 1] == "plan_scoring"  # it returns the partitions to map over


PLANNED = {"partitions": [0, 1, 2], "profiles": 7, "sizes": [3, 2, 2]}


class _Store:
    """What `run` itself asks of a store when its steps are stand-ins: the current run, failures, the run lock."""

    def __init__(self) -> None:
        self.attempts: list[tuple[str, str, dict]] = []
        self.locks: list[tuple[str, str, str]] = []

    def latest_run(self, instance: str) -> dict | None:
        return None

    def record_attempt(self, instance: str, as_of: str, attempt: dict) -> None:
        self.attempts.append((instance, as_of, attempt))

    def take_lock(self, instance: str, attempt: str, origin: str, scope: str, *, minutes: float) -> RunLease:
        self.locks.append(("take", instance, attempt))
        now = dt.datetime.now(dt.UTC)
        return RunLease(instance, attempt, origin, scope, now, now, now + dt.timedelta(minutes=minutes))

    def renew_lock(self, instance: str, attempt: str, *, minutes: float) -> bool:
        return True

    def release_lock(self, instance: str, attempt: str | None = None) -> None:
        self.locks.append(("release", instance, attempt or ""))


@pytest.fixture
def store() -> _Store:
    return _Store()


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[tuple[str, dict]]:
    """Every step replaced by a stand-in that notes its name and keywords; publish names a sealed folder."""
    seen: list[tuple[str, dict]] = []
    for name in step_names():
        monkeypatch.setattr(steps, name, lambda *args, name=name, **kwargs: seen.append((name, kwargs)))

    def plan(*args: object, **kwargs: object) -> dict:
        seen.append(("plan_scoring", kwargs))
        return PLANNED

    def publish(*args: object, **kwargs: object) -> dict:
        seen.append(("publish", kwargs))
        return {"artifacts": str(tmp_path / "sealed")}

    monkeypatch.setattr(steps, "plan_scoring", plan)
    monkeypatch.setattr(steps, "publish", publish)
    monkeypatch.setattr(steps, "score_partition", lambda *a, **kw: seen.append((f"score_partition {a[3]}", kw)))
    monkeypatch.setattr(steps, "read_scores", lambda folder: f"scores of {Path(folder).name}")
    monkeypatch.setattr(steps.artifacts, "read_json", lambda path: {"quality": {"status": "ok"}, "path": str(path)})
    return seen


def test_run_calls_every_declared_step_in_order_and_the_mapped_one_per_partition(
    calls: list[tuple[str, dict]], store: _Store, tmp_path: Path
) -> None:
    result = steps.run(make_spec(), AS_OF, tmp_path, store=store)
    names = step_names()
    at = names.index("score_partition")
    expected = [*names[:at], "score_partition 0", "score_partition 1", "score_partition 2", *names[at + 1 :]]
    assert [name for name, _ in calls] == expected
    assert result.written_to_store is True
    assert result.scores == "scores of sealed"  # read from the folder publish sealed
    assert result.artifact_dir == tmp_path / "sealed"
    assert result.metadata["path"] == str(tmp_path / "sealed" / "metadata.json")
    assert store.attempts == []  # the steps themselves record the start and the publish
    attempt = calls[0][1]["attempt"]
    assert store.locks == [("take", "unit", attempt), ("release", "unit", attempt)]  # held from start to end


def test_every_step_of_a_run_works_in_one_fresh_attempt(
    calls: list[tuple[str, dict]], store: _Store, tmp_path: Path
) -> None:
    steps.run(make_spec(), AS_OF, tmp_path, store=store)
    attempts = {kwargs["attempt"] for _, kwargs in calls}
    assert len(attempts) == 1
    (attempt,) = attempts
    assert re.fullmatch(r"cli-[0-9a-f]{10}", attempt)
    validate = dict(calls)["validate_events"]
    assert validate["store"] is store  # it records the start and clears the date's abandoned folders
    assert re.fullmatch(r"the customer-ai command \(process \d+ on .+\)", validate["origin"])
    calls.clear()
    steps.run(make_spec(), AS_OF, tmp_path, store=store)
    assert {kwargs["attempt"] for _, kwargs in calls} != {attempt}  # another run, another attempt
    calls.clear()
    steps.run(make_spec(), AS_OF, tmp_path, store=store, attempt="af-0123456789")
    assert {kwargs["attempt"] for _, kwargs in calls} == {"af-0123456789"}


def test_a_failed_step_is_recorded_as_a_failed_attempt_and_raised_again(
    calls: list[tuple[str, dict]], store: _Store, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        calls.append(("combine_scores", kwargs))
        raise OSError("No space left on device")

    monkeypatch.setattr(steps, "combine_scores", broken)
    with pytest.raises(OSError, match="No space left on device"):
        steps.run(make_spec(), AS_OF, tmp_path, store=store, attempt="cli-0123456789")
    assert [name for name, _ in calls][-2:] == ["score_partition 2", "combine_scores"]  # nothing ran after it
    assert store.attempts == [
        (
            "unit",
            "2012-01-01",
            {
                "attempt": "cli-0123456789",
                "step": "combine_scores",
                "try_number": 1,
                "status": "failed",
                "reason": "OSError: No space left on device",
            },
        )
    ]


def test_a_poor_model_stops_the_run_at_the_gate(
    calls: list[tuple[str, dict]], store: _Store, monkeypatch, tmp_path: Path
) -> None:
    def poor(*args: object, **kwargs: object) -> None:
        calls.append((GATE, kwargs))
        raise steps.QualityGateError("model v is poor")

    monkeypatch.setattr(steps, GATE, poor)
    model = {"validation": {"metrics": {"roc_auc": 0.5}}, "quality": {"status": "poor", "min_auc": 0.65}}
    read = []
    monkeypatch.setattr(steps.artifacts, "read_json", lambda path: read.append(path) or model)
    result = steps.run(make_spec(), AS_OF, tmp_path, store=store, attempt="cli-0123456789")
    assert [name for name, _ in calls] == step_names()[: step_names().index(GATE) + 1]
    assert result.scores is None
    assert result.written_to_store is False
    assert result.quality == "poor"
    assert result.metadata["quality"]["reason"] == "validation ROC AUC 0.500 is below the quality gate of 0.65"
    # the attempt's staging folder, left for inspection; the gate recorded the poor attempt, not a failure
    staging = artifacts.staging_dir(tmp_path, "unit", AS_OF, "cli-0123456789")
    assert result.artifact_dir == staging
    assert read == [staging / "model.json"]
    assert store.attempts == []
