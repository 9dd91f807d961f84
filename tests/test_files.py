"""Atomic file writes: JSON, Parquet with factors, and run folders started from nothing."""

from __future__ import annotations

import gc
import json
import math
import weakref

import pandas as pd
import pytest

from customer_ai import files

from conftest import hidden_entries


def scores_of() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "profile_id": ["p1", "p2"],
            "probability": [0.25, 0.75],
            "score": [25, 75],
            "factors": [
                [{"feature": "x", "description": "café visits", "value": 1.5, "contribution": 0.2}],
                [],
            ],
        }
    )


def test_write_frame_stores_factors_as_json_text(tmp_path):
    scores = scores_of()
    path = files.write_frame(tmp_path / "run" / "scores.parquet", scores)
    stored = pd.read_parquet(path)
    assert stored["profile_id"].tolist() == ["p1", "p2"]
    assert stored["factors"].tolist() == [
        '[{"feature": "x", "description": "café visits", "value": 1.5, "contribution": 0.2}]',
        "[]",
    ]
    assert [json.loads(f) for f in stored["factors"]] == scores["factors"].tolist()
    assert isinstance(scores["factors"].iloc[0], list)  # the caller's frame is left as it was
    plain = pd.DataFrame({"profile_id": ["p1"], "score": [3]})
    pd.testing.assert_frame_equal(pd.read_parquet(files.write_frame(tmp_path / "plain.parquet", plain)), plain)


def test_failed_write_leaves_the_previous_file_intact(tmp_path):
    path = files.write_frame(tmp_path / "scores.parquet", pd.DataFrame({"a": [1]}))
    before = path.read_bytes()
    with pytest.raises(Exception, match="object"):
        files.write_frame(path, pd.DataFrame({"thing": [object()]}))
    assert path.read_bytes() == before
    assert hidden_entries(tmp_path) == []


def test_json_round_trip_is_atomic_and_sorted(tmp_path):
    path = files.write_json(tmp_path / "a" / "meta.json", {"b": 1, "a": [1, 2]})
    assert path.read_text() == '{\n  "a": [\n    1,\n    2\n  ],\n  "b": 1\n}\n'
    assert files.read_json(path) == {"a": [1, 2], "b": 1}


def test_reset_dir_empties_a_run_folder(tmp_path):
    folder = tmp_path / "artifacts" / "unit" / "2024-01-31"
    files.write_json(folder / "old.json", {})
    assert files.reset_dir(folder) == folder
    assert list(folder.iterdir()) == []
    assert [p.name for p in folder.parent.iterdir()] == ["2024-01-31"]  # no retired folder left behind


def test_strict_json_refuses_what_json_cannot_hold(tmp_path):
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        files.write_json(tmp_path / "x.json", {"auc": math.nan}, strict=True)
    assert hidden_entries(tmp_path) == []
    assert not (tmp_path / "x.json").exists()
    files.write_json(tmp_path / "x.json", {"auc": math.nan})
    assert (tmp_path / "x.json").read_text() == '{\n  "auc": NaN\n}\n'


def test_copy_dir_copies_everything(tmp_path):
    files.write_json(tmp_path / "a" / "x.json", {"x": 1})
    files.write_json(tmp_path / "a" / "sub" / "y.json", {"y": 2})
    files.copy_dir(tmp_path / "a", tmp_path / "b")
    assert files.read_json(tmp_path / "b" / "sub" / "y.json") == {"y": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]


def test_frames_written_one_after_the_other_read_back_as_one(tmp_path):
    stamps = pd.to_datetime(["2011-01-01", "2011-01-02", "2011-01-03"], utc=True)
    whole = pd.DataFrame({"profile_id": ["a", "b", "c"], "timestamp": stamps, "value": [1.0, None, 3.0]})
    whole = whole.astype({"profile_id": "str"})
    path = files.write_frames(tmp_path / "x.parquet", (whole.iloc[at : at + 2].reset_index(drop=True) for at in (0, 2)))
    pd.testing.assert_frame_equal(files.read_frame(path), whole, check_exact=True)
    pd.testing.assert_frame_equal(pd.read_parquet(path), whole, check_exact=True)
    with pytest.raises(ValueError, match="no frames to write"):
        files.write_frames(tmp_path / "y.parquet", iter([]))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.parquet"]  # nothing left half-written


def test_release_memory_collects_garbage_unless_told_not_to() -> None:
    class Node:
        pass

    def cycle() -> weakref.ref:
        node = Node()
        node.itself = node  # only the garbage collector frees a cycle
        return weakref.ref(node)

    gc.disable()
    try:
        kept = cycle()
        files.release_memory(collect=False)
        assert kept() is not None
        files.release_memory()
        assert kept() is None
    finally:
        gc.enable()
