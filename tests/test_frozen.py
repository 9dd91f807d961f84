"""The instance definition frozen into a run's folder: it reads back as the same definition, or says why not."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from customer_ai.frozen import FROZEN_FILE, FrozenDefinitionError, freeze, thaw

from conftest import ROOT, make_spec

SEGMENTED = {
    "custom_events": [{"name": "large_purchase", "where": [{"field": "value", "op": "gte", "value": 200}]}],
    "segments": [{"name": "likely", "where": [{"field": "percentile", "op": "gte", "value": 80}]}],
    "output": {"factors": 3},
}


@pytest.mark.parametrize("overrides", [{}, SEGMENTED], ids=["base", "custom-events-and-segments"])
def test_a_frozen_definition_reads_back_equal(tmp_path: Path, overrides: dict) -> None:
    spec = make_spec(**overrides)
    path = freeze(spec, tmp_path, "/instances/unit.yaml")
    assert path == tmp_path / "instance.json"
    written = json.loads(path.read_text())
    assert (written["source"], written["base_dir"], written["spec_hash"]) == (
        "/instances/unit.yaml",
        str(ROOT),
        spec.spec_hash(),
    )
    assert written["definition"]["goal"]["window_days"] == 30
    thawed = thaw(tmp_path)
    assert thawed == spec
    assert thawed.base_dir == ROOT  # relative paths still resolve against the instance file's folder
    assert thawed.resolve("events.parquet") == ROOT / "events.parquet"


def test_a_missing_definition_says_which_step_writes_it(tmp_path: Path) -> None:
    with pytest.raises(FrozenDefinitionError, match=r"instance.json: the run's instance definition is missing: it is"):
        thaw(tmp_path)


def test_a_definition_that_no_longer_validates_says_why(tmp_path: Path) -> None:
    freeze(make_spec(), tmp_path, "unit.yaml")
    written = json.loads((tmp_path / FROZEN_FILE).read_text())
    written["definition"]["goal"]["window_days"] = 0
    (tmp_path / FROZEN_FILE).write_text(json.dumps(written))
    with pytest.raises(FrozenDefinitionError, match=r"unit.yaml \(frozen in .*\): goal.window_days: Input should be"):
        thaw(tmp_path)


def test_a_definition_that_reads_back_as_another_is_refused(tmp_path: Path) -> None:
    freeze(make_spec(), tmp_path, "unit.yaml")
    written = json.loads((tmp_path / FROZEN_FILE).read_text())
    written["definition"]["goal"]["window_days"] = 14  # valid, but not what was frozen
    (tmp_path / FROZEN_FILE).write_text(json.dumps(written))
    with pytest.raises(FrozenDefinitionError, match=r"reads back as another definition \(hash [0-9a-f]{16} instead"):
        thaw(tmp_path)


def test_a_cut_file_is_refused_with_its_problem(tmp_path: Path) -> None:
    (tmp_path / FROZEN_FILE).write_text('{"source": "unit.yaml", "base_dir"')
    with pytest.raises(FrozenDefinitionError, match=r"does not read back: .*is not valid JSON"):
        thaw(tmp_path)
