"""The declared steps: `customer-ai run` follows them in order and stops at the gate, as the DAG does."""

from __future__ import annotations

from pathlib import Path

import pytest

from customer_ai import steps
from customer_ai.flow import GATE, STEPS, step_names

from conftest import make_spec, ts


def test_steps_are_unique_and_the_gate_is_not_retried() -> None:
    names = step_names()
    assert len(names) == len(set(names))
    assert names.index(GATE) == names.index("train") + 1
    assert [s.name for s in STEPS if not s.retry] == [GATE]
    assert all(callable(getattr(steps, name)) for name in names)


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    for name in step_names():
        monkeypatch.setattr(steps, name, lambda *args, name=name, **kwargs: seen.append(name))
    monkeypatch.setattr(steps, "read_scores", lambda *args: "scores")
    monkeypatch.setattr(steps.artifacts, "read_json", lambda path: {"quality": {"status": "ok"}, "path": str(path)})
    return seen


def test_run_calls_every_declared_step_in_order(calls: list[str], tmp_path: Path) -> None:
    result = steps.run(make_spec(), ts("2012-01-01"), tmp_path, store=None)
    assert calls == step_names()
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
