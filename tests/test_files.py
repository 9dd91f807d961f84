"""Atomic file writes: JSON, Parquet with factors, and run folders started from nothing."""

from __future__ import annotations

import gc
import json
import math
import weakref

import numpy as np
import pandas as pd
import pytest
from faults import failing_writes

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
    valued = scores.assign(value_factors=[[{"feature": "y", "contribution": -0.5}], []])
    stored = pd.read_parquet(files.write_frame(tmp_path / "valued.parquet", valued))
    assert stored["value_factors"].tolist() == ['[{"feature": "y", "contribution": -0.5}]', "[]"]
    assert stored["factors"].tolist()[1] == "[]"
    assert isinstance(valued["value_factors"].iloc[0], list)


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
    groups = list(files.read_row_groups(path, columns=["profile_id"]))  # one row group per frame written
    assert [g["profile_id"].tolist() for g in groups] == [["a", "b"], ["c"]]
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


WRITERS = {
    "json": lambda path: files.write_json(path, {"text": "x" * 600_000}),
    "frame": lambda path: files.write_frame(path, pd.DataFrame({"x": np.random.default_rng(1).random(100_000)})),
    "frames": lambda path: files.write_frames(
        path, (pd.DataFrame({"x": np.random.default_rng(at).random(50_000)}) for at in range(2))
    ),
}


@pytest.mark.parametrize("fault", ["full disk", "file size limit"])
@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_a_write_the_machine_refuses_names_the_file_and_the_reason(tmp_path, fault, writer):
    # before: OSError(28, 'No space left on device') without a file name from Python's writes, and "Error writing
    # bytes to file. Detail: [errno 28] No space left on device" without one from Arrow's
    folder = tmp_path / "disk"
    path = folder / "run" / f"out.{'json' if writer == 'json' else 'parquet'}"
    with failing_writes(fault, folder, 256 * 1024) as (code, text), pytest.raises(OSError, match="Errno") as raised:
        WRITERS[writer](path)
    assert (raised.value.errno, raised.value.strerror, raised.value.filename) == (code, text, str(path))
    assert str(raised.value) == f"[Errno {code}] {text}: '{path}'"
    if fault == "file size limit":  # the tmpfs is gone after the block
        assert sorted(p.name for p in path.parent.iterdir()) == []  # nothing half-written left


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "is empty (0 bytes)"),
        (b" \n", "is empty (2 bytes)"),
        (b'{"as_of": "2011-', "is not valid JSON (Unterminated string starting at: line 1 column 11; 16 bytes)"),
        (b"\x00\x13garbage", "is not valid JSON (Expecting value: line 1 column 1; 9 bytes)"),
        (b'{"a": "caf\xe9"}', "is not UTF-8 text (byte 0xe9 at offset 10)"),
        (b"[1, 2]", "holds a JSON array, not an object"),
        (b'"text"', "holds a JSON string, not an object"),
        (b'{"calibration": {"slope": 1.0}, "as_of": "x"}', "lacks the key 'calibration.intercept'"),
        (b'{"calibration": 3, "as_of": "x"}', "lacks the key 'calibration.slope' ('calibration' is not an object)"),
        (b'{"calibration": {"slope": 1, "intercept": 0}}', "lacks the key 'as_of'"),
    ],
)
def test_a_json_file_that_does_not_read_back_says_what_is_wrong(tmp_path, content, problem):
    path = tmp_path / "model.json"
    path.write_bytes(content)
    with pytest.raises(files.FileContentError) as raised:
        files.read_json_object(path, ["calibration.slope", "calibration.intercept", "as_of"])
    assert str(raised.value) == f"{path}: {problem}"
    assert (raised.value.path, raised.value.problem) == (path, problem)


def test_a_json_object_with_its_keys_reads_back(tmp_path):
    path = files.write_json(tmp_path / "model.json", {"calibration": {"slope": 1.5, "intercept": 0}, "as_of": "x"})
    assert files.read_json_object(path, ["calibration.slope", "as_of"])["calibration"]["slope"] == 1.5
    with pytest.raises(files.FileContentError, match=f"^{tmp_path / 'gone.json'}: is missing$"):
        files.read_json_object(tmp_path / "gone.json")


def test_written_files_and_folders_get_the_permissions_of_ordinary_new_ones(tmp_path):
    # before: every file was written through mkstemp (mode 0600) and every model folder through mkdtemp (0700),
    # so another user of a shared home (an Airflow API server running as another user) could not read them
    import os
    import stat

    mask = os.umask(0o027)
    try:
        mode = files._umask()
    finally:
        os.umask(mask)
    assert mode == 0o027  # read back, and the process's own umask left as it was
    assert os.umask(mask) == mask
    written = [
        files.write_json(tmp_path / "a.json", {"x": 1}),
        files.write_text(tmp_path / "b.html", "<p>"),
        files.write_frame(tmp_path / "c.parquet", pd.DataFrame({"x": [1]})),
    ]
    assert {stat.S_IMODE(p.stat().st_mode) for p in written} == {files.FILE_MODE}
    assert files.FILE_MODE == 0o666 & ~mask
    assert files.FOLDER_MODE == 0o777 & ~mask
