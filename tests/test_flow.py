"""The declared steps: `customer-ai run` follows them in order and stops at the gate, as the DAG does."""

from __future__ import annotations

from pathlib import Path

import pytest

from customer_ai import steps
from customer_ai.flow import GATE, STEPS, mapped_step, step_names

from conftest import make_spec, ts


def test_steps_are_unique_and_the_gate_is_not_retried() -> None:
    names = step_names()
    assert len(names) == len(set(names))
    assert names.index(GATE) == names.index("train") + 1
    assert [s.name for s in STEPS if not s.retry] == [GATE]
    assert all(callable(getattr(steps, name)) for name in names)
    assert [s.name for s in STEPS if s.mapped] == ["score_partition"]
    assert names[names.index(mapped_step().name) - 1] == "plan_scoring"  # it returns the partitions to map over


PLANNED = {"partitions": [0, 1, 2], "profiles": 7, "sizes": [3, 2, 2]}


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    for name in step_names():
        monkeypatch.setattr(steps, name, lambda *args, name=name, **kwargs: seen.append(name))
    monkeypatch.setattr(steps, "plan_scoring", lambda *args, **kwargs: seen.append("plan_scoring") or PLANNED)
    monkeypatch.setattr(steps, "score_partition", lambda *args, **kwargs: seen.append(f"score_partition {args[3]}"))
    monkeypatch.setattr(steps, "read_scores", lambda *args: "scores")
    monkeypatch.setattr(steps.artifacts, "read_json", lambda path: {"quality": {"status": "ok"}, "path": str(path)})
    return seen


def test_run_calls_every_declared_step_in_order_and_the_mapped_one_per_partition(
    calls: list[str], tmp_path: Path
) -> None:
    result = steps.run(make_spec(), ts("2012-01-01"), tmp_path, store=None)
    names = step_names()
    at = names.index("score_partition")
    assert calls == [*names[:at], "score_partition 0", "score_partition 1", "score_partition 2", *names[at + 1 :]]
    assert result.written_to_store is True
    assert result.scores == "scores"


def test_a_poor_model_stops_the_run_at_the_gate(calls: list[str], monkeypatch, tmp_path: Path) -> None:
    def poor(*args: object, **kwargs: object) -> None:
        calls.append(GATE)
        raise steps.QualityGateError("model v is poor")

    monkeypatch.setattr(steps, GATE, poor)
    model = {"validation": {"metrics": {"roc_auc": 0.5}}, "quality": {"status": "poor", "min_auc": 0.65}}
    monkeypatch.setattr(steps.artifacts, "read_json", lambda path: model)
    result = steps.run(make_spec(), ts("2012-01-01"), tmp_path, store=None)
    assert calls == step_names()[: step_names().index(GATE) + 1]
    assert result.scores is None
    assert result.written_to_store is False
    assert result.quality == "poor"
    assert result.metadata["quality"]["reason"] == "validation ROC AUC 0.500 is below the quality gate of 0.65"
